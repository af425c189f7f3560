"""Prepare: native format -> one HDF5 file per scene, ``hsi`` (bands, height, width) float32 in [0, 1]."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hsrdiff.data.readers import read_scene
from hsrdiff.data.registry import Scene
from hsrdiff.errors import ConfigError, DataError
from hsrdiff.files import write_prepared

log = logging.getLogger(__name__)


def scale_factor(scale, cube: np.ndarray, source_max: float, path: Path) -> float:
    """The divisor that maps raw values to [0, 1] for the config value ``scale``."""
    if scale == "dtype":
        if not np.issubdtype(cube.dtype, np.integer):
            raise ConfigError(
                f"{path}: scale 'dtype' needs integer data but the cube is {cube.dtype}; "
                "set the dataset's 'scale' to a number or 'max'"
            )
        return float(np.iinfo(cube.dtype).max)
    if scale == "max":
        if not np.isfinite(source_max) or source_max <= 0:
            raise DataError(f"{path}: scale 'max' needs a positive maximum, got {source_max}")
        return float(source_max)
    return float(scale)


def normalise(cube: np.ndarray, divisor: float, path: Path) -> tuple[np.ndarray, dict]:
    """Scale to [0, 1]; NaN/Inf are errors, values outside [0, 1] are clipped and counted."""
    data = cube.astype(np.float32) / np.float32(divisor)
    bad = ~np.isfinite(data)
    if bad.any():
        bands = np.unique(np.nonzero(bad)[0])
        raise DataError(
            f"{path}: {int(bad.sum())} NaN/Inf values in bands {bands[:10].tolist()}"
            f"{' ...' if len(bands) > 10 else ''}; remove those bands (config 'bands') or fix the file"
        )
    counts = {"clipped_negative": int((data < 0).sum()), "clipped_above_one": int((data > 1).sum())}
    np.clip(data, 0.0, 1.0, out=data)
    return data, counts


def prepare_scene(dataset: str, scene: Scene, reader: Mapping[str, Any], raw: str | Path, out_path: str | Path) -> dict:
    """Read, check and normalise one scene from the raw data at ``raw`` and write it to
    ``out_path``. ``reader``: the entry's :meth:`DatasetSpec.reader_settings`. Returns a summary."""
    if reader.get("msi_variable"):
        return _prepare_pair_scene(dataset, scene, reader, raw, out_path)
    raw_scene = read_scene(dataset, scene, reader, raw)
    divisor = scale_factor(reader["scale"], raw_scene.cube, raw_scene.source_max, raw_scene.path)
    hsi, counts = normalise(raw_scene.cube, divisor, raw_scene.path)
    n_values = hsi.size
    for what, count in counts.items():
        if count:
            log.warning("%s: %s %d of %d values (%.3f%%)", raw_scene.path, what.replace("_", " "), count, n_values, 100 * count / n_values)
    write_prepared(out_path, hsi, raw_scene.wavelengths, {
        "dataset": dataset, "scene": scene.name, "split": scene.split, "source_file": str(raw_scene.path),
        "source_dtype": str(raw_scene.cube.dtype), "scale_divisor": divisor, **counts,
    })
    summary = {"scene": scene.name, "split": scene.split, "shape": hsi.shape, "divisor": divisor, **counts}
    log.info("prepared %s/%s: %s", dataset, scene.name, summary)
    return summary


def _prepare_pair_scene(dataset: str, scene: Scene, reader: Mapping[str, Any], raw: str | Path, out_path: str | Path) -> dict:
    """A region of a real pair: its HSI (the reference at reduced resolution), its MSI, and the
    operators estimated from the whole pair (the same for every region)."""
    from hsrdiff.data.pair import fit_attrs, on_one_grid, pair_region, read_pair

    pair = read_pair(dataset, reader, raw)
    hsi, msi = pair_region(pair, scene)
    write_prepared(out_path, hsi, pair.wavelengths, {
        "dataset": dataset, "scene": scene.name, "split": scene.split, "source_file": str(pair.path), **fit_attrs(pair.fit),
        "msi_grid": "the HSI's" if on_one_grid(pair) else f"{pair.fit.psf.ratio} x the HSI's",
    }, pair={"msi": msi, "psf_estimated": pair.fit.psf.kernel, "srf_estimated": pair.fit.srf.astype(np.float32),
             "srf_offset": pair.fit.offset.astype(np.float32)})
    summary = {"scene": scene.name, "split": scene.split, "hsi": hsi.shape, "msi": msi.shape, "fit_residual": pair.fit.residual}
    log.info("prepared %s/%s from a real pair: %s", dataset, scene.name, summary)
    return summary
