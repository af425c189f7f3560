"""A real HSI + MSI pair without a high-resolution reference, used as one registry entry.

Two kinds: an MSI at ``ratio`` times the HSI's size (Houston's CASI + RGB), below; and an MSI on
the HSI's own grid (Paris's Hyperion + ALI), where only the response is fitted, the HSI is a
full reference and the LR-HSI is simulated with the entry's PSF as for any dataset, while the MSI
stays the real one.

The reduced-resolution protocol of Wald et al. (1997): the operators of the pair (the MSI's
spectral response and the relative blur) are estimated from the pair itself
(:func:`hsrdiff.operators.estimate_operators`); both observations are then degraded once more by
the ratio with them, so that the observed HSI becomes the reference of a fusion one scale down.
A network trained there is applied to the pair at full resolution, where it is judged without a
reference (:mod:`hsrdiff.noref`). Wald's assumption is that the fusion behaves alike at both
scales; docs/evaluation.md says where that fails.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from hsrdiff.data.readers import _open_array, read_scene
from hsrdiff.data.registry import Scene
from hsrdiff.degradation import PSF, make_psf
from hsrdiff.errors import ConfigError, DataError
from hsrdiff.operators import OperatorFit, estimate_operators, estimate_srf

log = logging.getLogger(__name__)


@dataclass
class Pair:
    hsi: np.ndarray  # (L, h, w) on [0, 1]: the observed HSI
    msi: np.ndarray  # (l, h * ratio, w * ratio), or (l, h, w) on one grid, on [0, 1]: the observed MSI
    wavelengths: np.ndarray
    path: Path
    fit: OperatorFit


def read_pair(dataset: str, reader: Mapping[str, Any], raw: str | Path) -> Pair:
    """The whole pair of a registry entry with ``msi_variable``, each image on [0, 1], and the
    operators estimated from it. Regions are cut by the caller (:func:`pair_region`)."""
    from hsrdiff.data.prepare import normalise, scale_factor

    if reader.get("crop") is not None:
        raise ConfigError(f"datasets.{dataset}: 'crop' is not supported with msi_variable; cut regions with scenes")
    ratio = int(reader["ratio"])
    scene = read_scene(dataset, Scene("pair", "test"), reader, raw)
    hsi, _ = normalise(scene.cube, scale_factor(reader["scale"], scene.cube, scene.source_max, scene.path), scene.path)
    stored, axes = _open_array(scene.path, reader["reader"], reader["msi_variable"], reader)
    if isinstance(stored, h5py.Dataset):
        with stored.file:
            stored = stored[()]
    stored = np.asarray(stored)
    if stored.ndim != 3 or sorted(axes) != ["b", "h", "w"]:
        raise DataError(f"{scene.path}: MSI '{reader['msi_variable']}' has shape {stored.shape}; expected 3 axes ({axes})")
    msi_raw = np.transpose(stored, [axes.index(a) for a in "bhw"])
    divisor = float(np.iinfo(msi_raw.dtype).max) if np.issubdtype(msi_raw.dtype, np.integer) else float(np.nanmax(msi_raw))
    msi, _ = normalise(msi_raw, divisor, scene.path)
    expected = (hsi.shape[1] * ratio, hsi.shape[2] * ratio)
    if msi.shape[1:] == hsi.shape[1:]:
        # One grid (Hyperion + ALI): only the response can be fitted; the HSI is a full reference
        # and its LR-HSI is simulated with the entry's PSF (degrade).
        if reader.get("psf") == "estimate":
            raise ConfigError(f"datasets.{dataset}.psf: the pair's images have one size ({hsi.shape[1]}x{hsi.shape[2]}), so "
                              "there is no blur between them to estimate; give the PSF that simulates the LR-HSI (e.g. {})")
        srf, offset = estimate_srf(hsi, msi)
        misfit = np.einsum("lb,bhw->lhw", srf, hsi) + offset[:, None, None] - msi
        residual = float(np.linalg.norm(misfit) / max(np.linalg.norm(msi - misfit), 1e-12))
        mse = float(np.mean(misfit.astype(np.float64) ** 2))
        # The PSF is the entry's, not an estimate (degrade simulates the LR-HSI with it).
        fit = OperatorFit(psf=make_psf(reader.get("psf") or {}, ratio), srf=srf, offset=offset, residual=residual,
                          psnr=float(10 * np.log10(1.0 / max(mse, 1e-20))), iterations=1)
    elif msi.shape[1:] != expected:
        raise DataError(f"{scene.path}: MSI '{reader['msi_variable']}' is {msi.shape[1]}x{msi.shape[2]}; the HSI "
                        f"{hsi.shape[1]}x{hsi.shape[2]} at ratio {ratio} needs {expected[0]}x{expected[1]} (or the HSI's "
                        "own size, for a pair on one grid)")
    elif reader.get("psf") != "estimate":
        raise ConfigError(f"datasets.{dataset}.psf: the MSI is {ratio} x the HSI's size, so the relative blur is estimated "
                          "from the pair: set psf: estimate")
    else:
        fit = estimate_operators(hsi, msi, ratio)
        msi = _fill_nodata(msi, hsi, fit)
    log.info("%s: operators estimated from the pair: residual %.4f (%.1f dB), %d iterations, %.1f%% of LR pixels left out "
             "(MSI no-data)", scene.path, fit.residual, fit.psnr, fit.iterations, 100 * fit.excluded)
    return Pair(hsi, msi, scene.wavelengths, scene.path, fit)


def _fill_nodata(msi: np.ndarray, hsi: np.ndarray, fit: OperatorFit) -> np.ndarray:
    """MSI pixels that are 0 in every band (no data: Houston's RGB has a hole of 5065 pixels) filled
    with what the HSI predicts there through the estimated response (R bicubic(HSI) + offset), so
    that fusion falls back on the HSI there instead of reading a black hole as detail."""
    from hsrdiff.baselines import bicubic

    empty = ~np.any(msi != 0, axis=0)
    if not empty.any():
        return msi
    predicted = np.einsum("lb,bhw->lhw", fit.srf, bicubic(hsi, fit.psf.ratio).fused) + fit.offset[:, None, None]
    log.warning("MSI: %d pixels (%.2f%%) are 0 in every band (no data); filled from the HSI through the estimated response",
                int(empty.sum()), 100 * empty.mean())
    return np.where(empty[None], np.clip(predicted, 0, 1), msi).astype(np.float32)


def on_one_grid(pair: Pair) -> bool:
    """An MSI of the HSI's own size: the HSI is a full reference (the Paris Hyperion + ALI pair)."""
    return pair.msi.shape[1:] == pair.hsi.shape[1:]


def pair_region(pair: Pair, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """The HSI and MSI of ``scene``'s region (given in HSI pixels; the MSI's is ratio times it,
    or the same on one grid)."""
    if scene.region is None:
        return pair.hsi, pair.msi
    r0, r1, c0, c1 = scene.region
    ratio = 1 if on_one_grid(pair) else pair.fit.psf.ratio
    if r1 > pair.hsi.shape[1] or c1 > pair.hsi.shape[2]:
        raise DataError(f"{pair.path}: region {list(scene.region)} of scene '{scene.name}' exceeds the HSI of size "
                        f"{pair.hsi.shape[1]}x{pair.hsi.shape[2]}")
    return pair.hsi[:, r0:r1, c0:c1], pair.msi[:, r0 * ratio : r1 * ratio, c0 * ratio : c1 * ratio]


def fit_attrs(fit: OperatorFit) -> dict:
    return {"operators": "estimated from the pair", "fit_residual": fit.residual, "fit_psnr_db": fit.psnr,
            "fit_iterations": fit.iterations, "fit_excluded_lr_pixels": fit.excluded}


def estimated_psf(kernel: np.ndarray, ratio: int) -> PSF:
    return PSF(kernel=np.asarray(kernel, dtype=np.float32), ratio=ratio, mode="convolve")


def msi_without_offset(msi: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The MSI less the offset of its estimated response, so that msi = srf @ hsi holds as in
    simulated data (the training loss, CNMF and the consistency checks assume it). The few values
    the linear fit leaves below zero (2.2% of the Houston RGB's pixels, down to -0.12) are set to 0."""
    return np.clip(np.asarray(msi, dtype=np.float32) - np.asarray(offset, dtype=np.float32)[:, None, None], 0.0, None)
