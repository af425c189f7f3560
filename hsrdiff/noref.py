"""Judging a fusion without a reference: consistency with both observations and QNR.

At full resolution a real pair has no high-resolution hyperspectral image to compare with. Two
kinds of evidence remain (formulas and references in docs/evaluation.md):

- consistency: the fused cube, degraded back through the estimated PSF and SRF, should give the
  observed LR-HSI and HR-MSI (PSNR and SAM against each); a necessary condition, which bicubic
  upsampling meets spatially without adding any detail;
- QNR (Alparone et al., 2008), adapted to a multiband MSI: the spectral distortion D_lambda
  compares the inter-band similarities of the fused cube with those of the LR-HSI, the spatial
  distortion D_s compares each fused band's similarity to each MSI band with the same at low
  resolution; QNR = (1 - D_lambda)(1 - D_s), 1 at best. The similarity is Wang and Bovik's
  universal image quality index Q, averaged over blocks.
"""

from __future__ import annotations

import numpy as np

from hsrdiff.degradation import PSF, spatial_degrade
from hsrdiff.errors import DataError
from hsrdiff.metrics import psnr, sam

LR_BLOCK = 8  # Q's block at low resolution, in LR pixels; ratio times that at high resolution


def _blocks(cube: np.ndarray, size: int) -> np.ndarray:
    """(L, H, W) -> (n_blocks, L, size * size), the image cut into non-overlapping blocks."""
    bands, height, width = cube.shape
    rows, cols = height // size, width // size
    if rows == 0 or cols == 0:
        raise DataError(f"an image of {height}x{width} pixels holds no block of {size}x{size} for the Q index")
    c = np.asarray(cube[:, : rows * size, : cols * size], dtype=np.float64)
    c = c.reshape(bands, rows, size, cols, size).transpose(1, 3, 0, 2, 4)
    return c.reshape(rows * cols, bands, size * size)


def q_matrix(a: np.ndarray, b: np.ndarray, block: int) -> np.ndarray:
    """Q(a_i, b_j) for every band i of ``a`` and j of ``b`` (both (bands, H, W) of one size),
    averaged over non-overlapping ``block`` x ``block`` blocks. Q = 4 cov mu_a mu_b /
    ((var_a + var_b)(mu_a^2 + mu_b^2)); 1 for identical blocks."""
    if a.shape[1:] != b.shape[1:]:
        raise DataError(f"Q needs images of one size; got {a.shape[1:]} and {b.shape[1:]}")
    xa, xb = _blocks(a, block), _blocks(b, block)
    pixels = xa.shape[-1]
    ma, mb = xa.mean(-1), xb.mean(-1)  # (n, La), (n, Lb)
    va, vb = xa.var(-1), xb.var(-1)
    cov = np.matmul(xa, xb.transpose(0, 2, 1)) / pixels - ma[:, :, None] * mb[:, None, :]
    mean_term = ma[:, :, None] ** 2 + mb[:, None, :] ** 2
    var_term = va[:, :, None] + vb[:, None, :]
    num = 4 * cov * ma[:, :, None] * mb[:, None, :]
    den = var_term * mean_term
    # Flat blocks: identical means give 1, as the index's limit does; otherwise the means' ratio.
    flat = 2 * ma[:, :, None] * mb[:, None, :] / np.maximum(mean_term, 1e-300)
    q = np.where(den > 1e-20, num / np.where(den > 1e-20, den, 1.0), flat)
    return q.mean(0)


def qnr(fused: np.ndarray, lr_hsi: np.ndarray, hr_msi: np.ndarray, psf: PSF, block: int = LR_BLOCK) -> dict[str, float]:
    """D_lambda, D_s and QNR of ``fused`` (L, H, W) against the observations it came from."""
    ratio = psf.ratio
    if fused.shape[1:] != hr_msi.shape[1:] or fused.shape[0] != lr_hsi.shape[0]:
        raise DataError(f"fused {fused.shape} does not match lr_hsi {lr_hsi.shape} and hr_msi {hr_msi.shape}")
    bands = fused.shape[0]
    off_diagonal = ~np.eye(bands, dtype=bool)
    d_lambda = float(np.abs(q_matrix(fused, fused, block * ratio) - q_matrix(lr_hsi, lr_hsi, block))[off_diagonal].mean())
    msi_lr = np.asarray(spatial_degrade(hr_msi, psf))
    d_s = float(np.abs(q_matrix(fused, hr_msi, block * ratio) - q_matrix(lr_hsi, msi_lr, block)).mean())
    return {"d_lambda": d_lambda, "d_s": d_s, "qnr": (1 - d_lambda) * (1 - d_s)}


def consistency(fused: np.ndarray, lr_hsi: np.ndarray, hr_msi: np.ndarray, psf: PSF, srf: np.ndarray) -> dict[str, float]:
    """PSNR and SAM of the fused cube degraded back to each observation."""
    back_lr = np.asarray(spatial_degrade(fused, psf))
    back_msi = np.einsum("lb,bhw->lhw", srf, fused)
    return {"lr_psnr": psnr(back_lr, lr_hsi), "lr_sam": sam(back_lr, lr_hsi),
            "msi_psnr": psnr(back_msi, hr_msi), "msi_sam": sam(back_msi, hr_msi)}


def assess(fused: np.ndarray, lr_hsi: np.ndarray, hr_msi: np.ndarray, psf: PSF, srf: np.ndarray) -> dict[str, float]:
    return {**consistency(fused, lr_hsi, hr_msi, psf, srf), **qnr(fused, lr_hsi, hr_msi, psf)}
