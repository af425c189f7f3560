"""Real pairs without ground truth.

:func:`full_resolution`: a pair used as a registry entry (``msi_variable``; trained on the pair at
reduced resolution, hsrdiff.data.pair) is fused at full resolution by every compared method and
judged without a reference (hsrdiff.noref).

:func:`generalise`, the paper's HypSen experiment: a model trained on one dataset
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

from hsrdiff import noref
from hsrdiff.baselines import bicubic
from hsrdiff.degradation import crop_to_ratio, make_psf, spatial_degrade
from hsrdiff.errors import DataError
from hsrdiff.files import write_pair_result
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


def fuse_with(method: str, lr_hsi: np.ndarray, hr_msi: np.ndarray, psf, srf: np.ndarray, weights: str | Path | None = None,
              schedule_cfg: Mapping[str, Any] | None = None, sampling_cfg: Mapping[str, Any] | None = None,
              settings: Mapping[str, Mapping[str, Any]] | None = None):
    """One compared method on observations without ground truth: a trained method (``weights``),
    cnmf or hysure (with the given response and blur, and their ``settings`` by method name:
    ``evaluation.cnmf``, ``evaluation.hysure``), gsa, glp-hs or bicubic."""
    from hsrdiff.baselines import classical
    from hsrdiff.methods import BASELINES

    if weights is not None:
        return Fuser(weights, schedule_cfg or {}, sampling_cfg or {})(lr_hsi, hr_msi)
    if method not in BASELINES:
        raise DataError(f"method '{method}' is neither trained (no weights given) nor a classical baseline")
    return classical(method, lr_hsi, hr_msi, psf, srf, settings)


def full_resolution(pair, methods, weights: Mapping[str, str | Path], schedule_cfg: Mapping[str, Any],
                    sampling_cfg: Mapping[str, Any], settings: Mapping[str, Mapping[str, Any]], fused_paths: Mapping[str, str | Path],
                    provenance: Mapping[str, Any] | None = None) -> tuple[list[dict], dict]:
    """Fuse a real pair (:class:`hsrdiff.data.pair.Pair`) at full resolution with each method and
    judge each result without a reference (:func:`hsrdiff.noref.assess`, through the operators
    estimated from the pair). Writes each fused file; returns the table's rows and the fused cubes
    (and the uncertainty map of each trained method sampled more than once)."""
    from hsrdiff.data.pair import msi_without_offset
    from hsrdiff.files import write_fused
    from hsrdiff.noref import assess

    psf, srf = pair.fit.psf, pair.fit.srf
    lr_hsi, hr_msi = pair.hsi, msi_without_offset(pair.msi, pair.fit.offset)
    rows, cubes = [], {}
    for method in methods:
        result = fuse_with(method, lr_hsi, hr_msi, psf, srf, weights.get(method), schedule_cfg, sampling_cfg, settings)
        write_fused(fused_paths[method], result, pair.wavelengths,
                    {"method": method, "protocol": "full resolution, no reference", **(provenance or {})})
        row = {"method": method, **assess(result.fused, lr_hsi, hr_msi, psf, srf), "seconds": result.seconds}
        if result.std is not None:
            row["mean_std"] = float(result.std.mean())
            cubes[f"{method} std"] = result.std
        rows.append(row)
        cubes[method] = result.fused
    return rows, cubes


NOREF_COLUMNS = {"lr_psnr": "LR PSNR", "lr_sam": "LR SAM (°)", "msi_psnr": "MSI PSNR", "msi_sam": "MSI SAM (°)",
                 "d_lambda": "D_lambda", "d_s": "D_s", "qnr": "QNR", "mean_std": "mean std", "seconds": "s"}


def write_full_resolution_table(rows, csv_path: str | Path, md_path: str | Path, pair) -> None:
    """The no-reference table of :func:`full_resolution` as CSV and Markdown (with the fit of the
    operators it rests on)."""
    import pandas as pd

    from hsrdiff.io import atomic_path

    table = pd.DataFrame(rows)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    shown = table.rename(columns=NOREF_COLUMNS)
    cols = ["method", *[v for k, v in NOREF_COLUMNS.items() if v in shown.columns]]
    lines = [f"Full resolution, no reference: {pair.path.name}, HSI {pair.hsi.shape}, MSI {pair.msi.shape}. Consistency: "
             "the result degraded back through the operators estimated from the pair (fit residual "
             f"{pair.fit.residual:.3f}, {pair.fit.psnr:.1f} dB) against each observation; QNR = (1 - D_lambda)(1 - D_s), 1 at best "
             "(docs/evaluation.md).", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in shown.iterrows():
        cells = [str(r["method"])] + ["" if pd.isna(r[c]) else (f"{r[c]:.4f}" if c in ("D_lambda", "D_s", "QNR", "mean std")
                                                                 else f"{r[c]:.2f}") for c in cols[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


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
    of_bicubic = noref.consistency(bicubic(pair.lr_hsi, ratio).fused, pair.lr_hsi, pair.msi, psf, srf)
    consistency = {
        **noref.consistency(fused, pair.lr_hsi, pair.msi, psf, srf),
        # the same checks for bicubic upsampling, for scale
        "bicubic_lr_psnr": of_bicubic["lr_psnr"], "bicubic_msi_psnr": of_bicubic["msi_psnr"],
        "seconds": result.seconds,
    }
    write_pair_result(out, fused, pair.lr_hsi, pair.msi, srf, {
        "note": pair.note, "weights_file": str(weights), "weights_sha256": sha256_file(weights),
        "band_resampling": f"{pair.hsi.shape[0]}->{fuser.hsi_bands} HSI, {pair.msi.shape[0]}->{fuser.msi_bands} MSI bands, linear",
        "consistency": json.dumps(consistency), **(metadata or {})})
    return consistency
