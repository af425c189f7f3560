"""Diffusion: schedules, the forward/posterior maths, samplers and the loss (no networks here)."""

from hsrdiff.diffusion.gaussian import posterior, q_sample, sample_noise_level, sample_noise_level_log_uniform
from hsrdiff.diffusion.loss import fusion_loss
from hsrdiff.diffusion.samplers import SAMPLERS, AncestralSampler, DDIMSampler, DPMSolverPlusPlus, Sampler, make_sampler
from hsrdiff.diffusion.scaling import to_data_range, to_model_range
from hsrdiff.diffusion.schedules import SPACINGS, Schedule, linear_betas, sampling_levels

__all__ = ["SAMPLERS", "SPACINGS", "AncestralSampler", "DDIMSampler", "DPMSolverPlusPlus", "Sampler", "Schedule", "fusion_loss",
           "linear_betas", "make_sampler", "posterior", "q_sample", "sample_noise_level", "sample_noise_level_log_uniform",
           "sampling_levels", "to_data_range", "to_model_range"]

