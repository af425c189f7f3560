"""The sensor operators of a real pair, estimated from the pair itself (no ground truth).

An LR-HSI ``Y_h = S B X`` and an HR-MSI ``Y_m = R X`` of one scene ``X`` satisfy

    S B Y_m = R Y_h (+ an offset per MSI band)                        (both l x h x w)

whatever ``X`` is: the MSI blurred and decimated by the PSF ``B`` equals the HSI seen through the
spectral response ``R``. HySure (Simoes, Bioucas-Dias, Almeida and Chanussot, "A convex
formulation for hyperspectral image superresolution via subspace-based regularization", IEEE
TGRS 2015, section IV) fits both from this identity with regularised least squares; we do the
same, alternating between the two, each a non-negative least-squares problem:

- ``R`` (l, L), given ``B``: per MSI band, non-negative weights over the HSI bands, with a
  penalty on their second differences along the wavelength axis (responses are smooth; it also
  fixes the weights where the scene's spectra do not, a scene of few materials being of low
  spectral rank). ``R`` carries the radiometric gain between the sensors: its rows need not sum
  to 1.
- ``B`` (k, k), given ``R``: a non-negative kernel summing to 1, centred on each LR pixel's
  block as :class:`hsrdiff.degradation.PSF` samples it (mode ``convolve``).

The fit's residual (relative, and as a PSNR of ``S B Y_m`` against ``R Y_h``) says how well the
pair obeys the model: misregistration or a wrong ratio shows there first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F

from hsrdiff.degradation import PSF, spatial_degrade
from hsrdiff.errors import DataError


@dataclass
class OperatorFit:
    psf: PSF
    srf: np.ndarray  # (l, L)
    offset: np.ndarray  # (l,): hr_msi ≈ R X + offset
    residual: float  # ||S B Y_m - R Y_h|| / ||R Y_h||
    psnr: float  # of S B Y_m against R Y_h, on the data's scale (peak 1)
    iterations: int
    excluded: float = 0.0  # fraction of LR pixels left out of the fit (their footprint holds MSI no-data)


def _second_difference(n: int) -> np.ndarray:
    d = np.zeros((max(n - 2, 0), n))
    for i in range(n - 2):
        d[i, i : i + 3] = (1.0, -2.0, 1.0)
    return d


def estimate_srf(lr_hsi: np.ndarray, msi_at_lr: np.ndarray, smoothness: float = 1e-4,
                 valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative (l, L) ``R`` and an offset (l,) with ``msi_at_lr ≈ R lr_hsi + offset``, ``R``
    smooth along the HSI bands.

    ``lr_hsi`` (L, h, w) and ``msi_at_lr`` (l, h, w): the MSI brought to the HSI's grid.
    ``smoothness``: weight of the second-difference penalty relative to the data's energy per band.
    The offset (either sign) takes up what the sensors' dark levels and processing add. ``valid``
    (h, w): the pixels to fit on (default all).
    """
    if lr_hsi.shape[1:] != msi_at_lr.shape[1:]:
        raise DataError(f"estimating an SRF needs images on one grid; got {lr_hsi.shape[1:]} and {msi_at_lr.shape[1:]}")
    bands = lr_hsi.shape[0]
    keep = np.ones(lr_hsi.shape[1:], bool) if valid is None else np.asarray(valid, bool)
    a = lr_hsi[:, keep].T.astype(np.float64)  # (n, L)
    ones = np.ones((a.shape[0], 1))
    scale = np.sqrt(smoothness * (a * a).sum() / bands)
    penalty = np.hstack([scale * _second_difference(bands), np.zeros((max(bands - 2, 0), 2))])
    design = np.vstack([np.hstack([a, ones, -ones]), penalty])  # offset = w[L] - w[L + 1]
    zeros = np.zeros(penalty.shape[0])
    rows = [scipy.optimize.nnls(design, np.concatenate([band[keep].astype(np.float64), zeros]), maxiter=50 * bands)[0]
            for band in msi_at_lr]
    weights = np.stack(rows)
    return weights[:, :bands].astype(np.float32), (weights[:, bands] - weights[:, bands + 1]).astype(np.float32)


def estimate_kernel(hr_msi: np.ndarray, target: np.ndarray, ratio: int, size: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Non-negative (size, size) kernel summing to 1 with ``S B hr_msi ≈ target`` (l, h, w), ``B``
    block-centred with reflect padding (:func:`hsrdiff.degradation.spatial_degrade`, mode convolve);
    ``valid`` (h, w): the LR pixels to fit on (default all)."""
    if (size - ratio) % 2 or size < ratio:
        raise DataError(f"a block-centred kernel needs a side >= the ratio {ratio} and of its parity; got {size}")
    pad = (size - ratio) // 2
    msi = torch.as_tensor(np.ascontiguousarray(hr_msi), dtype=torch.float64)[:, None]  # (l, 1, H, W)
    padded = F.pad(msi, (pad, pad, pad, pad), mode="reflect") if pad else msi
    patches = F.unfold(padded, size, stride=ratio)  # (l, size*size, h*w)
    design = patches.permute(0, 2, 1).reshape(-1, size * size).numpy()
    rhs = np.asarray(target, dtype=np.float64).reshape(-1)
    if design.shape[0] != rhs.size:
        raise DataError(f"hr_msi {hr_msi.shape} at ratio {ratio} gives {design.shape[0]} LR values; the target has {rhs.size}")
    if valid is not None:
        keep = np.tile(np.asarray(valid, bool).reshape(-1), hr_msi.shape[0])
        design, rhs = design[keep], rhs[keep]
    # The sum-to-one constraint as a heavily weighted extra row.
    weight = 1e3 * np.sqrt((design * design).sum() / design.shape[1])
    kernel, _ = scipy.optimize.nnls(np.vstack([design, weight * np.ones((1, size * size))]),
                                    np.concatenate([rhs, [weight]]), maxiter=100 * size * size)
    kernel = kernel.reshape(size, size)
    return kernel / max(kernel.sum(), 1e-12)


def nodata_footprint(hr_msi: np.ndarray, ratio: int, size: int) -> np.ndarray:
    """(h, w) True where an LR pixel's kernel footprint (``size`` x ``size``, block-centred) holds
    an MSI pixel that is 0 in every band: no data (a masked or missing part of the image)."""
    empty = torch.as_tensor(np.ascontiguousarray(~np.any(hr_msi != 0, axis=0)), dtype=torch.float32)[None, None]
    pad = (size - ratio) // 2
    padded = F.pad(empty, (pad, pad, pad, pad), mode="reflect") if pad else empty
    return (F.max_pool2d(padded, size, stride=ratio)[0, 0] > 0).numpy()


def estimate_operators(lr_hsi: np.ndarray, hr_msi: np.ndarray, ratio: int, kernel_size: int | None = None,
                       iterations: int = 8, smoothness: float = 1e-4, tolerance: float = 1e-5) -> OperatorFit:
    """``R`` and ``B`` of a co-registered pair, ``lr_hsi`` (L, h, w) and ``hr_msi`` (l, h*ratio, w*ratio).

    LR pixels whose footprint holds MSI no-data (0 in every band) are left out of the fit and of
    its residual (:func:`nodata_footprint`; ``OperatorFit.excluded``).
    """
    lr_hsi = np.asarray(lr_hsi, dtype=np.float32)
    hr_msi = np.asarray(hr_msi, dtype=np.float32)
    if lr_hsi.ndim != 3 or hr_msi.ndim != 3:
        raise DataError(f"expected (bands, H, W) cubes; got lr_hsi {lr_hsi.shape} and hr_msi {hr_msi.shape}")
    if hr_msi.shape[1:] != (lr_hsi.shape[1] * ratio, lr_hsi.shape[2] * ratio):
        raise DataError(f"hr_msi {hr_msi.shape} is not lr_hsi {lr_hsi.shape} times the ratio {ratio} (H and W)")
    size = kernel_size or 2 * ratio + 1 + (ratio % 2 == 0)  # as hsrdiff.degradation.make_psf's default
    valid = ~nodata_footprint(hr_msi, ratio, size)
    if valid.sum() < 4 * size * size:
        raise DataError(f"only {int(valid.sum())} LR pixels lie clear of the MSI's no-data (pixels 0 in every band): too few "
                        f"to fit a {size}x{size} kernel")
    # Start from the block average: the ratio x ratio mean, padded to the kernel's size.
    kernel = np.zeros((size, size))
    pad = (size - ratio) // 2
    kernel[pad : pad + ratio, pad : pad + ratio] = 1.0 / ratio**2
    previous = np.inf
    for iteration in range(1, iterations + 1):
        psf = PSF(kernel=kernel.astype(np.float32), ratio=ratio, mode="convolve")
        msi_at_lr = spatial_degrade(hr_msi, psf)
        srf, offset = estimate_srf(lr_hsi, msi_at_lr, smoothness, valid)
        target = np.einsum("lb,bhw->lhw", srf, lr_hsi) + offset[:, None, None]
        kernel = estimate_kernel(hr_msi, target, ratio, size, valid)
        psf = PSF(kernel=kernel.astype(np.float32), ratio=ratio, mode="convolve")
        misfit = (spatial_degrade(hr_msi, psf) - target)[:, valid]
        residual = float(np.linalg.norm(misfit) / max(np.linalg.norm(target[:, valid]), 1e-12))
        if previous - residual < tolerance * max(residual, 1e-12):
            break
        previous = residual
    mse = float(np.mean(misfit.astype(np.float64) ** 2))
    return OperatorFit(psf=psf, srf=srf, offset=offset, residual=residual, psnr=float(10 * np.log10(1.0 / max(mse, 1e-20))),
                       iterations=iteration, excluded=float(1 - valid.mean()))
