"""Degrade: simulate the observations ``lr_hsi`` and ``hr_msi`` from a prepared ground truth."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import torch

from hsrdiff.data.registry import DatasetSpec
from hsrdiff.degradation import add_noise, crop_to_ratio, make_psf, spatial_degrade, spectral_degrade
from hsrdiff.errors import DataError
from hsrdiff.io import atomic_h5, open_h5, require, write_attrs
from hsrdiff.srf import read_response, srf_matrix

log = logging.getLogger(__name__)


def degrade_scene(spec: DatasetSpec, scene: str, prepared_path: str | Path, out_path: str | Path) -> dict:
    """Write ``gt``, ``lr_hsi``, ``hr_msi``, ``psf``, ``srf`` and ``wavelengths`` of one scene."""
    with open_h5(prepared_path) as fh:
        gt = require(fh, "hsi", ndim=3)[()]
        wavelengths = require(fh, "wavelengths", ndim=1)[()]
    if gt.shape[0] != len(wavelengths):
        raise DataError(f"{prepared_path}: 'hsi' has {gt.shape[0]} bands but 'wavelengths' has {len(wavelengths)}")
    entry = spec.entry
    ratio = spec.ratio
    gt, old_size = crop_to_ratio(gt, ratio)
    if old_size:
        log.warning(
            "%s: size %dx%d is not a multiple of the ratio %d; cropped to %dx%d (bottom/right)",
            prepared_path, *old_size, ratio, *gt.shape[1:],
        )
    psf = make_psf(entry.get("psf", {}), ratio)
    srf = srf_matrix(read_response(entry["srf"]), wavelengths)
    lr_hsi = spatial_degrade(gt, psf)
    hr_msi = spectral_degrade(gt, srf.matrix)

    noise = entry.get("noise", {})
    # A per-scene seed: scenes get different noise, reruns get the same.
    generator = torch.Generator().manual_seed(int(noise.get("seed", 0)) * 1_000_003 + zlib.crc32(scene.encode()))
    lr_hsi = add_noise(lr_hsi, noise.get("snr_db_lr_hsi"), generator)
    hr_msi = add_noise(hr_msi, noise.get("snr_db_hr_msi"), generator)

    with atomic_h5(out_path) as fh:
        fh.create_dataset("gt", data=gt.astype(np.float32), chunks=(1,) + gt.shape[1:])
        fh.create_dataset("lr_hsi", data=lr_hsi.astype(np.float32), chunks=(1,) + lr_hsi.shape[1:])
        fh.create_dataset("hr_msi", data=hr_msi.astype(np.float32), chunks=(1,) + hr_msi.shape[1:])
        fh.create_dataset("psf", data=psf.kernel)
        fh.create_dataset("srf", data=srf.matrix)
        fh.create_dataset("wavelengths", data=wavelengths)
        write_attrs(
            fh,
            {
                "dataset": spec.name,
                "scene": scene,
                "split": spec.scene(scene).split,
                "ratio": ratio,
                "psf_mode": psf.mode,
                "psf_offset": psf.offset,
                "srf_source": srf.source,
                "srf_bands": ",".join(srf.names),
                "snr_db_lr_hsi": noise.get("snr_db_lr_hsi"),
                "snr_db_hr_msi": noise.get("snr_db_hr_msi"),
                "noise_seed": noise.get("seed", 0),
                "cropped_from": "" if old_size is None else f"{old_size[0]}x{old_size[1]}",
            },
        )
    summary = {"scene": scene, "gt": gt.shape, "lr_hsi": lr_hsi.shape, "hr_msi": hr_msi.shape, "msi_bands": srf.names}
    log.info("degraded %s/%s: %s", spec.name, scene, summary)
    return summary
