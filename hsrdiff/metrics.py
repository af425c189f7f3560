"""Quality metrics of the fusion literature (METHOD.md §6), on the [0, 1] scale.

One implementation in PyTorch; NumPy arrays are accepted and floats returned. Images are
(bands, height, width) or batches (batch, bands, height, width); a batch is averaged.

- PSNR: per band 10 log10(1 / MSE_b), averaged over bands.
- SSIM: per band with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range 1,
  averaged over the valid (unpadded) pixels and over bands — scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
- SAM: the angle in degrees between the spectra of each pixel, averaged over pixels; pixels where
  either spectrum is all zero have no angle and are left out (0 if no pixel is left).
- ERGAS: 100 / ratio * sqrt(mean_b (RMSE_b / mean(reference_b))^2).
- RMSE: over all values.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _pair(estimate, reference) -> tuple[torch.Tensor, torch.Tensor]:
    est = torch.as_tensor(np.asarray(estimate) if isinstance(estimate, np.ndarray) else estimate).double()
    ref = torch.as_tensor(np.asarray(reference) if isinstance(reference, np.ndarray) else reference).double()
    if est.shape != ref.shape:
        raise ValueError(f"estimate {tuple(est.shape)} and reference {tuple(ref.shape)} differ in shape")
    if est.ndim == 3:
        est, ref = est[None], ref[None]
    if est.ndim != 4:
        raise ValueError(f"expected (bands, H, W) or (batch, bands, H, W), got {tuple(est.shape)}")
    return est, ref


def psnr(estimate, reference, data_range: float = 1.0) -> float:
    est, ref = _pair(estimate, reference)
    mse = (est - ref).pow(2).mean(dim=(2, 3)).clamp_min(1e-20)
    return float((10 * torch.log10(data_range**2 / mse)).mean())


def rmse(estimate, reference) -> float:
    est, ref = _pair(estimate, reference)
    return float((est - ref).pow(2).mean(dim=(1, 2, 3)).sqrt().mean())


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised 1-D Gaussian; the 2-D window is its outer product, applied as two passes."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    # separable: 2 x 11 taps per pixel instead of 121 (a 512x512x31 cube's SSIM: 42 s -> a few s)
    return F.conv2d(F.conv2d(x, g[None, None, None, :]), g[None, None, :, None])


def ssim(estimate, reference, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> float:
    est, ref = _pair(estimate, reference)
    b, c, h, w = est.shape
    if min(h, w) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window}, got {h}x{w}")
    g = _gaussian_window(window, sigma).to(est)
    x, y = est.reshape(b * c, 1, h, w), ref.reshape(b * c, 1, h, w)
    mu_x, mu_y = _filter(x, g), _filter(y, g)
    sxx = _filter(x * x, g) - mu_x**2
    syy = _filter(y * y, g) - mu_y**2
    sxy = _filter(x * y, g) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(s.mean(dim=(1, 2, 3)).mean())


def sam_map(estimate, reference) -> torch.Tensor:
    """Per-pixel spectral angle in degrees (batch, H, W); NaN where a spectrum is all zero."""
    est, ref = _pair(estimate, reference)
    dot = (est * ref).sum(1)
    norms = est.norm(dim=1) * ref.norm(dim=1)
    cos = (dot / norms.clamp_min(1e-30)).clamp(-1, 1)
    angle = torch.rad2deg(torch.arccos(cos))
    return torch.where(norms > 0, angle, torch.full_like(angle, float("nan")))


def sam(estimate, reference) -> float:
    angles = sam_map(estimate, reference)
    valid = ~torch.isnan(angles)
    return float(angles[valid].mean()) if valid.any() else 0.0


def ergas(estimate, reference, ratio: float) -> float:
    est, ref = _pair(estimate, reference)
    rmse_b = (est - ref).pow(2).mean(dim=(2, 3)).sqrt()
    mean_b = ref.mean(dim=(2, 3)).abs().clamp_min(1e-12)
    return float((100.0 / ratio * ((rmse_b / mean_b) ** 2).mean(dim=1).sqrt()).mean())


def all_metrics(estimate, reference, ratio: float) -> dict[str, float]:
    """PSNR, SSIM, SAM, ERGAS and RMSE of one image (or the mean over a batch)."""
    return {"psnr": psnr(estimate, reference), "ssim": ssim(estimate, reference), "sam": sam(estimate, reference),
            "ergas": ergas(estimate, reference, ratio), "rmse": rmse(estimate, reference)}


__all__ = ["all_metrics", "ergas", "psnr", "rmse", "sam", "sam_map", "ssim"]
