"""Training: the loop of one stage, checkpoints, EMA and distributed set-up."""
