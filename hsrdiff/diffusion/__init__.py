"""Diffusion: schedules, the forward/posterior maths, samplers and the loss (no networks here)."""

from hsrdiff.diffusion.gaussian import posterior, q_sample, sample_noise_level, sample_noise_level_log_uniform
from hsrdiff.diffusion.loss import fusion_loss
from hsrdiff.diffusion.samplers import AncestralSampler
from hsrdiff.diffusion.scaling import to_data_range, to_model_range
from hsrdiff.diffusion.schedules import Schedule, linear_betas

__all__ = ["AncestralSampler", "Schedule", "fusion_loss", "linear_betas", "posterior", "q_sample", "sample_noise_level",
           "sample_noise_level_log_uniform",
           "to_data_range", "to_model_range"]

