"""Real-scenario generalisation (the paper's HypSen experiment): a model trained on one dataset
fuses a real LR-HSI + HR-MSI pair that has no ground truth.

Band counts rarely match the training data, so, as the paper does, both inputs are resampled
along the band axis to the model's counts (linear interpolation over the normalised band
position) and the result back to the pair's HSI bands. Without ground truth the result is judged
by consistency: degraded back with the pair's PSF and SRF, it should reproduce the observed inputs
(PSNR and SAM against each). The pair's SRF is fitted to the data (non-negative least squares of
each MSI band on the HSI bands, as HySure estimates it) when the sensors' curves are not at hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import scipy.io

from hsrdiff.baselines import bicubic
from hsrdiff.degradation import crop_to_ratio, make_psf, spatial_degrade
from hsrdiff.errors import DataError
from hsrdiff.files import write_pair_result
from hsrdiff.metrics import psnr, sam
from hsrdiff.operators import estimate_srf
from hsrdiff.provenance import sha256_file
from hsrdiff.sampling import Fuser


def resample_bands(cube: np.ndarray, n_bands: int) -> np.ndarray:
    """(L, H, W) -> (n_bands, H, W) by linear interpolation over the normalised band position."""
    src = np.linspace(0.0, 1.0, cube.shape[0])
    dst = np.linspace(0.0, 1.0, n_bands)
    flat = cube.reshape(cube.shape[0], -1)
    out = np.empty((n_bands, flat.shape[1]), dtype=np.float32)
    idx = np.clip(np.searchsorted(src, dst, side="right") - 1, 0, len(src) - 2) if len(src) > 1 else np.zeros(n_bands, int)
    if len(src) == 1:
        return np.repeat(cube[:1], n_bands, axis=0).astype(np.float32)
    frac = ((dst - src[idx]) / (src[idx + 1] - src[idx]))[:, None]
    out[:] = (1 - frac) * flat[idx] + frac * flat[idx + 1]
    return out.reshape(n_bands, *cube.shape[1:])


def fit_srf(hsi: np.ndarray, msi: np.ndarray) -> np.ndarray:
    """Non-negative (l, L) matrix with msi ≈ srf @ hsi, from co-registered images of one size
    (:func:`hsrdiff.operators.estimate_srf` without the smoothness penalty; its offset dropped)."""
    if hsi.shape[1:] != msi.shape[1:]:
        raise DataError(f"fitting an SRF needs co-registered images of one size; got {hsi.shape[1:]} and {msi.shape[1:]}")
    return estimate_srf(hsi, msi, smoothness=0.0)[0]


@dataclass
class RealPair:
    hsi: np.ndarray  # (L, H, W) on [0, 1]
    msi: np.ndarray  # (l, H, W) on [0, 1]
    lr_hsi: np.ndarray  # (L, H / ratio, W / ratio)
    note: str


def load_pair(path: str | Path, hsi_variable: str, msi_variable: str, ratio: int) -> RealPair:
    """A MATLAB pair stored (H, W, bands), each scaled by its own maximum. When both images have
    one size (as the Hyperion/ALI pair), the LR side is simulated by ``ratio`` (the note says so)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"real pair not found: {path}")
    data = scipy.io.loadmat(path, variable_names=[hsi_variable, msi_variable])
    for name in (hsi_variable, msi_variable):
        if name not in data:
            raise DataError(f"{path}: no variable '{name}'")
    hsi = np.transpose(np.asarray(data[hsi_variable], dtype=np.float32), (2, 0, 1))
    msi = np.transpose(np.asarray(data[msi_variable], dtype=np.float32), (2, 0, 1))
    hsi, msi = np.clip(hsi / hsi.max(), 0, 1), np.clip(msi / msi.max(), 0, 1)
    hsi, _ = crop_to_ratio(hsi, ratio)
    msi, _ = crop_to_ratio(msi, ratio)
    if hsi.shape[1:] != msi.shape[1:]:
        raise DataError(f"{path}: HSI {hsi.shape} and MSI {msi.shape} differ in size; expected a co-registered pair")
    psf = make_psf({}, ratio)
    note = (f"HSI and MSI have the same resolution ({hsi.shape[1]}x{hsi.shape[2]}); the LR-HSI was simulated "
            f"from the HSI by the Gaussian PSF (FWHM {ratio}) and decimation by {ratio}")
    return RealPair(hsi, msi, np.asarray(spatial_degrade(hsi, psf)), note)


def generalise(weights: str | Path, pair: RealPair, ratio: int, schedule_cfg: Mapping[str, Any],
               sampling_cfg: Mapping[str, Any], out: str | Path, metadata: Mapping[str, Any] | None = None) -> dict:
    """Fuse ``pair`` with a model trained elsewhere and write the result and its consistency."""
    fuser = Fuser(weights, schedule_cfg, sampling_cfg)
    if fuser.ratio != ratio:
        raise DataError(f"{weights}: the model was trained at ratio {fuser.ratio}, the pair is used at ratio {ratio}")
    result = fuser(resample_bands(pair.lr_hsi, fuser.hsi_bands), resample_bands(pair.msi, fuser.msi_bands))
    fused = np.clip(resample_bands(result.fused, pair.hsi.shape[0]), 0, 1)

    srf = fit_srf(pair.hsi, pair.msi)
    psf = make_psf({}, ratio)
    back_lr = np.asarray(spatial_degrade(fused, psf))
    back_msi = np.einsum("lb,bhw->lhw", srf, fused)
    upsampled = bicubic(pair.lr_hsi, ratio).fused
    consistency = {
        "lr_psnr": psnr(back_lr, pair.lr_hsi), "lr_sam": sam(back_lr, pair.lr_hsi),
        "msi_psnr": psnr(back_msi, pair.msi), "msi_sam": sam(back_msi, pair.msi),
        # the same checks for bicubic upsampling, for scale
        "bicubic_lr_psnr": psnr(np.asarray(spatial_degrade(upsampled, psf)), pair.lr_hsi),
        "bicubic_msi_psnr": psnr(np.einsum("lb,bhw->lhw", srf, upsampled), pair.msi),
        "seconds": result.seconds,
    }
    write_pair_result(out, fused, pair.lr_hsi, pair.msi, srf, {
        "note": pair.note, "weights_file": str(weights), "weights_sha256": sha256_file(weights),
        "band_resampling": f"{pair.hsi.shape[0]}->{fuser.hsi_bands} HSI, {pair.msi.shape[0]}->{fuser.msi_bands} MSI bands, linear",
        "consistency": json.dumps(consistency), **(metadata or {})})
    return consistency
