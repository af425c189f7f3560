"""The training loss of METHOD.md §3 on the [0, 1] data scale:

L = |x0_hat - X|_1 + lambda_lr |(x0_hat * psf) down_ratio - lr_hsi|_1 + lambda_msi |srf x0_hat - hr_msi|_1
    + lambda_sam mean_pixels angle(x0_hat, X)

The last term (ours, off by default) is the spectral angle in radians: L1 weighs an error by its
size, so a dark pixel's spectrum may be wrong in shape at little cost; the angle weighs it
relative to the pixel's brightness, as the SAM metric does.

The observation terms re-apply the very degradation of the data stage (hsrdiff.degradation).
A training patch's LR pixels at its edges were simulated from the whole scene, whose pixels
beyond the patch the loss cannot see: the LR term compares only the LR pixels whose blur lies
inside the patch (``psf.margin`` of them dropped at each edge), so that it compares like with like
and is exactly zero on the ground truth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hsrdiff.degradation import PSF, spatial_degrade, spectral_degrade


def spectral_angle(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-pixel angle in radians between the spectra (dim -3) of ``x`` and ``y``. The cosine is
    kept off +-1 by 1e-6, where acos's slope is infinite."""
    cos = (x * y).sum(-3) / (x.norm(dim=-3) * y.norm(dim=-3) + eps)
    return torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))


def fusion_loss(x0_hat: torch.Tensor, gt: torch.Tensor, lr_hsi: torch.Tensor, hr_msi: torch.Tensor,
                psf: PSF, srf: torch.Tensor, lambda_lr: float = 1.0, lambda_msi: float = 1.0,
                lambda_sam: float = 0.0) -> dict[str, torch.Tensor]:
    """All tensors on the [0, 1] scale; returns the total and each term (scalars)."""
    terms = {"l1": F.l1_loss(x0_hat, gt)}
    if lambda_lr:
        m = psf.margin
        inner = (..., slice(m, lr_hsi.shape[-2] - m), slice(m, lr_hsi.shape[-1] - m))
        terms["lr_term"] = F.l1_loss(spatial_degrade(x0_hat, psf)[inner], lr_hsi[inner])
    else:
        terms["lr_term"] = x0_hat.new_zeros(())
    terms["msi_term"] = F.l1_loss(spectral_degrade(x0_hat, srf), hr_msi) if lambda_msi else x0_hat.new_zeros(())
    terms["sam_term"] = spectral_angle(x0_hat, gt).mean() if lambda_sam else x0_hat.new_zeros(())
    terms["loss"] = (terms["l1"] + lambda_lr * terms["lr_term"] + lambda_msi * terms["msi_term"]
                     + lambda_sam * terms["sam_term"])
    return terms
