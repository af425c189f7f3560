"""hsrdiff: hyperspectral image super-resolution (LR-HSI + HR-MSI fusion) with conditional diffusion (HSR-Diff)."""

__version__ = "0.1.0"
