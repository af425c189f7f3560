"""Classical baselines: bicubic upsampling and CNMF.

CNMF (Yokoya, Yairi and Iwasaki, "Coupled nonnegative matrix factorization unmixing for
hyperspectral and multispectral data fusion", IEEE TGRS 50(2), 2012): both observations are
unmixed with one set of endmembers and one set of abundances, coupled through the observation
model. With ``W`` (L x M) the endmembers and ``H`` (M x pixels) the abundances:

    lr_hsi ~ W_h H_h,   hr_msi ~ W_m H_m,   W_m = srf W_h,   H_h = spatially degraded H_m,

fitted by alternating Lee-Seung multiplicative updates, with the abundance sum-to-one constraint
imposed by an extra row delta * 1 appended to data and endmembers (as in the paper). The
estimate is W_h H_m. Endmembers start from VCA (Nascimento and Dias, 2005) on the LR-HSI.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from hsrdiff.degradation import PSF, spatial_degrade
from hsrdiff.files import FusionResult

EPS = 1e-9


def bicubic(lr_hsi: np.ndarray, ratio: int) -> FusionResult:
    """The floor: bicubic upsampling of the LR-HSI (L, h, w) -> (L, h*ratio, w*ratio), clipped to [0, 1]."""
    t0 = time.perf_counter()
    lr = torch.as_tensor(lr_hsi, dtype=torch.float32)[None]
    up = F.interpolate(lr, scale_factor=ratio, mode="bicubic", align_corners=False)[0].clamp(0, 1)
    return FusionResult(up.numpy(), None, time.perf_counter() - t0)


def vca(data: np.ndarray, n_endmembers: int, rng: np.random.Generator) -> np.ndarray:
    """Vertex component analysis: ``n_endmembers`` pixels of ``data`` (L, N) at the simplex's
    vertices, found by successive projections orthogonal to those already chosen. (L, M)."""
    n_bands, n_pixels = data.shape
    m = min(n_endmembers, n_bands)
    u, _, _ = np.linalg.svd(data @ data.T / n_pixels)
    x = u[:, :m].T @ data  # (m, N) in the signal subspace
    mean = x.mean(axis=1)
    projected = x / np.maximum(mean @ x, EPS)  # projective projection onto a hyperplane
    basis = np.zeros((m, n_endmembers))
    basis[-1, 0] = 1.0
    picks = []
    for i in range(n_endmembers):
        w = rng.standard_normal(m)
        f = w - basis @ np.linalg.pinv(basis) @ w
        f /= max(np.linalg.norm(f), EPS)
        idx = int(np.argmax(np.abs(f @ projected)))
        basis[:, i] = projected[:, idx]
        picks.append(idx)
    return np.maximum(data[:, picks], EPS)


def _update_h(y, w, h, iterations):
    for _ in range(iterations):
        h *= (w.T @ y) / np.maximum(w.T @ w @ h, EPS)
    return h


def _update_wh(y, w, h, iterations, fixed_rows: int = 0):
    """Alternate W and H updates; the last ``fixed_rows`` rows of W (the sum-to-one row) stay."""
    for _ in range(iterations):
        w_new = w * (y @ h.T) / np.maximum(w @ h @ h.T, EPS)
        if fixed_rows:
            w_new[-fixed_rows:] = w[-fixed_rows:]
        w = w_new
        h *= (w.T @ y) / np.maximum(w.T @ w @ h, EPS)
    return w, h


def cnmf(lr_hsi: np.ndarray, hr_msi: np.ndarray, srf: np.ndarray, psf: PSF, n_endmembers: int = 30,
         inner_iterations: int = 200, outer_iterations: int = 2, delta: float = 0.15, seed: int = 0) -> FusionResult:
    """Fuse ``lr_hsi`` (L, h, w) and ``hr_msi`` (l, H, W) on [0, 1]; returns (L, H, W)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_bands, h, w = lr_hsi.shape
    _, height, width = hr_msi.shape
    srf = np.asarray(srf, dtype=np.float64)
    y_h = lr_hsi.reshape(n_bands, -1).astype(np.float64)
    y_m = hr_msi.reshape(hr_msi.shape[0], -1).astype(np.float64)
    m = n_endmembers

    def with_sum_row(mat, value):
        return np.vstack([mat, np.full((1, mat.shape[1]), value)])

    def degrade_abundances(h_m):
        maps = h_m.reshape(m, height, width)
        return np.maximum(np.asarray(spatial_degrade(maps, psf)).reshape(m, -1), EPS)

    # Initialisation: unmix the LR-HSI.
    w_h = vca(y_h, m, rng)
    h_h = np.full((m, y_h.shape[1]), 1.0 / m)
    yh_aug = with_sum_row(y_h, delta)
    wh_aug = with_sum_row(w_h, delta)
    h_h = _update_h(yh_aug, wh_aug, h_h, inner_iterations)
    wh_aug, h_h = _update_wh(yh_aug, wh_aug, h_h, inner_iterations, fixed_rows=1)

    ym_aug = with_sum_row(y_m, delta)
    h_m = np.full((m, y_m.shape[1]), 1.0 / m)
    for _ in range(outer_iterations):
        # MSI: endmembers seen through the SRF; abundances at high resolution.
        wm_aug = with_sum_row(srf @ wh_aug[:-1], delta)
        h_m = _update_h(ym_aug, wm_aug, h_m, inner_iterations)
        wm_aug, h_m = _update_wh(ym_aug, wm_aug, h_m, inner_iterations, fixed_rows=1)
        # HSI: abundances seen through the PSF; spectral endmembers.
        h_h = degrade_abundances(h_m)
        wh_aug, h_h = _update_wh(yh_aug, wh_aug, h_h, inner_iterations, fixed_rows=1)
    fused = (wh_aug[:-1] @ h_m).reshape(n_bands, height, width)
    return FusionResult(np.clip(fused, 0, 1).astype(np.float32), None, time.perf_counter() - t0)
