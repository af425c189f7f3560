"""The diffusion works on [-1, 1] (ours, as SR3); data and observations live on [0, 1]."""


def to_model_range(x):
    """[0, 1] -> [-1, 1]."""
    return x * 2.0 - 1.0


def to_data_range(x):
    """[-1, 1] -> [0, 1]."""
    return (x + 1.0) * 0.5
