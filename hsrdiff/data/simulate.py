"""Degrade: simulate the observations ``lr_hsi`` and ``hr_msi`` from a prepared ground truth."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from hsrdiff.data.registry import OBSERVATION_MODEL, Scene
from hsrdiff.degradation import add_noise, crop_to_ratio, make_psf, spatial_degrade, spectral_degrade
from hsrdiff.errors import DataError
from hsrdiff.files import read_prepared, write_observations
from hsrdiff.srf import read_response, srf_matrix

log = logging.getLogger(__name__)


def degrade_scene(dataset: str, scene: Scene, degradation: Mapping[str, Any], prepared_path: str | Path,
                  out_path: str | Path) -> dict:
    """Write the observation file of one scene (:func:`hsrdiff.files.write_observations`).

    ``degradation``: the entry's :meth:`DatasetSpec.degradation_settings` (ratio, psf, srf, noise).
    """
    gt, wavelengths = read_prepared(prepared_path)
    ratio = int(degradation["ratio"])
    if degradation.get("srf") == "estimate":
        return _degrade_pair_scene(dataset, scene, ratio, degradation.get("psf"), gt, wavelengths, prepared_path, out_path)
    gt, old_size = crop_to_ratio(gt, ratio)
    if old_size:
        log.warning(
            "%s: size %dx%d is not a multiple of the ratio %d; cropped to %dx%d (bottom/right)",
            prepared_path, *old_size, ratio, *gt.shape[1:],
        )
    psf = make_psf(degradation.get("psf") or {}, ratio)
    srf = srf_matrix(read_response(degradation["srf"]), wavelengths)
    lr_hsi = spatial_degrade(gt, psf)
    hr_msi = spectral_degrade(gt, srf.matrix)

    noise = degradation.get("noise") or {}
    # A per-scene seed: scenes get different noise, reruns get the same.
    generator = torch.Generator().manual_seed(int(noise.get("seed", 0)) * 1_000_003 + zlib.crc32(scene.name.encode()))
    lr_hsi = add_noise(lr_hsi, noise.get("snr_db_lr_hsi"), generator)
    hr_msi = add_noise(hr_msi, noise.get("snr_db_hr_msi"), generator)

    write_observations(out_path, gt, lr_hsi, hr_msi, psf, srf.matrix, wavelengths, ",".join(srf.names), {
        "dataset": dataset,
        "scene": scene.name,
        "split": scene.split,
        "srf_source": srf.source,
        "snr_db_lr_hsi": noise.get("snr_db_lr_hsi"),
        "snr_db_hr_msi": noise.get("snr_db_hr_msi"),
        "noise_seed": noise.get("seed", 0),
        "cropped_from": "" if old_size is None else f"{old_size[0]}x{old_size[1]}",
        "observation_model": OBSERVATION_MODEL,
    })
    summary = {"scene": scene.name, "gt": gt.shape, "lr_hsi": lr_hsi.shape, "hr_msi": hr_msi.shape, "msi_bands": srf.names}
    log.info("degraded %s/%s: %s", dataset, scene.name, summary)
    return summary


def _degrade_pair_scene(dataset: str, scene: Scene, ratio: int, psf_cfg, gt: np.ndarray, wavelengths: np.ndarray,
                        prepared_path: str | Path, out_path: str | Path) -> dict:
    """The observations of a real pair's region (hsrdiff.data.pair), its estimated response
    ``srf`` and the MSI less its estimated offset (:func:`hsrdiff.data.pair.msi_without_offset`).

    MSI at ratio x the HSI's size: Wald's reduced resolution, the observed HSI is the reference and
    both observed images, blurred and decimated by the ratio with the estimated PSF, the inputs.
    MSI on the HSI's grid: the HSI is the reference, the LR-HSI is simulated with the entry's PSF
    and the real MSI is the HR-MSI as it is.
    """
    from hsrdiff.data.pair import estimated_psf, msi_without_offset
    from hsrdiff.files import read_prepared_pair

    pair = read_prepared_pair(prepared_path)
    msi = pair["msi"]
    reduced = msi.shape[1:] == (gt.shape[1] * ratio, gt.shape[2] * ratio)
    if gt.shape[1] % ratio or gt.shape[2] % ratio:
        raise DataError(f"{prepared_path}: region of {gt.shape[1]}x{gt.shape[2]} HSI pixels is not a multiple of the ratio "
                        f"{ratio}; choose regions in multiples of {ratio}")
    psf = estimated_psf(pair["psf_estimated"], ratio) if psf_cfg == "estimate" else make_psf(psf_cfg or {}, ratio)
    lr_hsi = spatial_degrade(gt, psf)
    hr_msi = msi_without_offset(np.asarray(spatial_degrade(msi, psf)) if reduced else msi, pair["srf_offset"])
    srf = np.asarray(pair["srf_estimated"], dtype=np.float32)
    names = ",".join(f"msi_{i}" for i in range(srf.shape[0]))
    protocol = ("reduced resolution (Wald): the observed HSI is the reference" if reduced else
                "one grid: the observed HSI is the reference, the LR-HSI simulated, the MSI real")
    write_observations(out_path, gt, lr_hsi, hr_msi, psf, srf, wavelengths, names, {
        "dataset": dataset, "scene": scene.name, "split": scene.split, "srf_source": "estimated from the pair",
        "protocol": protocol, "observation_model": OBSERVATION_MODEL,
    })
    summary = {"scene": scene.name, "gt": gt.shape, "lr_hsi": tuple(lr_hsi.shape), "hr_msi": hr_msi.shape, "protocol": protocol}
    log.info("degraded %s/%s: %s", dataset, scene.name, summary)
    return summary
