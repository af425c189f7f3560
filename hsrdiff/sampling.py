"""Fusion with a trained network: the diffusion sampler (or one pass in regression mode)."""

from __future__ import annotations

import torch

from hsrdiff.diffusion import AncestralSampler, Schedule, to_data_range, to_model_range
from hsrdiff.models import Denoiser


@torch.no_grad()
def fuse(model: Denoiser, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, schedule: Schedule | None,
         generator: torch.Generator | None = None, mode: str = "diffusion") -> torch.Tensor:
    """Estimate the HR-HSI (B, L, H, W) on [0, 1] from ``lr_hsi`` (B, L, h, w) and ``hr_msi`` (B, l, H, W) on [0, 1].

    The SR stream runs once (``encode``); each of the sampler's steps calls ``denoise`` only.
    """
    cond = model.encode(to_model_range(lr_hsi), to_model_range(hr_msi))
    shape = (hr_msi.shape[0], lr_hsi.shape[1], *hr_msi.shape[-2:])
    if mode == "regression":
        zeros = torch.zeros(shape, device=hr_msi.device)
        x0 = model.denoise(zeros, torch.zeros(shape[0], device=hr_msi.device), cond)
    else:
        sampler = AncestralSampler(schedule)
        x0 = sampler.sample(lambda x_t, sg: model.denoise(x_t, sg, cond), shape, device=hr_msi.device, generator=generator)
    return to_data_range(x0).clamp(0.0, 1.0)
