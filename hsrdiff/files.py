"""The pipeline's data files and their HDF5 layout: prepared scenes, observations, fused results.

This module alone spells the dataset and attribute names of these files, so that a stage that
writes one and every stage that reads it agree by construction:

- prepared scene (``prepare``): ``hsi`` (L, H, W) on [0, 1], ``wavelengths`` (L,);
- observations (``degrade``): ``gt``, ``lr_hsi`` (L, H/r, W/r), ``hr_msi`` (l, H, W), and the
  operators that made them: ``psf`` (k, k), ``srf`` (l, L), ``wavelengths``, with the attributes
  ``ratio``, ``psf_mode``, ``psf_offset``, ``srf_bands``. Patch files carry the same operators
  (:func:`write_operators`, :func:`read_operators`);
- fused result (``sample``, baselines, ``hsrdiff fuse``): ``fused`` (L, H, W), ``std`` when several
  samples were drawn, ``wavelengths``, and provenance attributes;
- network base (``base``): ``base`` (L, H, W), the image a network adds its output to
  (``hsrdiff.baselines.fusion_base``), with the attributes ``base`` (its name) and ``scene``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from hsrdiff.degradation import PSF
from hsrdiff.errors import DataError
from hsrdiff.io import atomic_h5, open_h5, require, write_attrs
from hsrdiff.provenance import code_version


def _chunked(fh: h5py.File, name: str, cube: np.ndarray) -> None:
    """A float32 cube stored one band per chunk (readers take bands or whole cubes)."""
    fh.create_dataset(name, data=cube.astype(np.float32), chunks=(1,) + cube.shape[1:])


def _attrs(fh: h5py.File) -> dict[str, Any]:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in fh.attrs.items()}


# -- prepared scenes ------------------------------------------------------------------------------
def write_prepared(path: str | Path, hsi: np.ndarray, wavelengths: np.ndarray, attrs: Mapping[str, Any],
                   pair: Mapping[str, np.ndarray] | None = None) -> None:
    """A prepared scene; ``pair``: a real pair's MSI and estimated operators (PAIR_KEYS)."""
    with atomic_h5(path) as fh:
        _chunked(fh, "hsi", hsi)
        fh.create_dataset("wavelengths", data=np.asarray(wavelengths, dtype=np.float64))
        for key, value in (pair or {}).items():
            fh.create_dataset(key, data=value)
        write_attrs(fh, dict(attrs))


# What a real pair's prepared scene adds (hsrdiff.data.pair): its observed MSI and the operators
# estimated from the whole pair.
PAIR_KEYS = ("msi", "psf_estimated", "srf_estimated", "srf_offset")


def read_prepared_pair(path: str | Path) -> dict[str, np.ndarray]:
    with open_h5(path) as fh:
        missing = [k for k in PAIR_KEYS if k not in fh]
        if missing:
            raise DataError(f"{path}: no {', '.join(missing)}: not a real pair's prepared scene (prepare it again with "
                            "the entry's msi_variable)")
        return {k: fh[k][()] for k in PAIR_KEYS}


def read_prepared(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``hsi`` (L, H, W) and ``wavelengths`` (L,) of a prepared scene, checked to agree."""
    with open_h5(path) as fh:
        hsi = require(fh, "hsi", ndim=3)[()]
        wavelengths = require(fh, "wavelengths", ndim=1)[()]
    if hsi.shape[0] != len(wavelengths):
        raise DataError(f"{path}: 'hsi' has {hsi.shape[0]} bands but 'wavelengths' has {len(wavelengths)}")
    return hsi, wavelengths


# -- operators (observation and patch files) ------------------------------------------------------
def write_operators(fh: h5py.File, psf: PSF, srf: np.ndarray, wavelengths: np.ndarray | None,
                    srf_bands: str = "") -> None:
    fh.create_dataset("psf", data=psf.kernel)
    fh.create_dataset("srf", data=srf)
    if wavelengths is not None:
        fh.create_dataset("wavelengths", data=wavelengths)
    # psf_offset "" (HDF5 has no null): the block-centred sampling
    write_attrs(fh, {"ratio": psf.ratio, "psf_mode": psf.mode, "psf_offset": psf.offset, "srf_bands": srf_bands})


def read_ratio(fh: h5py.File) -> int:
    if "ratio" not in fh.attrs:
        raise DataError(f"{fh.filename}: no attribute 'ratio' (the HR-MSI / LR-HSI resolution ratio)")
    return int(fh.attrs["ratio"])


def read_operators(fh: h5py.File) -> tuple[PSF, np.ndarray]:
    """The PSF and the SRF (l, L) an open observation or patch file was simulated with."""
    kernel, srf = require(fh, "psf", ndim=2)[()], require(fh, "srf", ndim=2)[()]
    for key in ("psf_mode", "psf_offset"):
        if key not in fh.attrs:
            raise DataError(f"{fh.filename}: no attribute '{key}' beside its 'psf'")
    offset = fh.attrs["psf_offset"]
    # "" is the block-centred sampling; files simulated before it was the default hold the integer
    # offset they were made with, and are read as such
    offset = None if isinstance(offset, (str, bytes)) and not offset else int(offset)
    return PSF(kernel=kernel, ratio=read_ratio(fh), mode=str(fh.attrs["psf_mode"]), offset=offset), srf


def copy_operators(observations: str | Path, target: h5py.File) -> None:
    """Copy the operators of an observation file into an open file (a patch file)."""
    with open_h5(observations) as source:
        psf, srf = read_operators(source)
        wavelengths = source["wavelengths"][()] if "wavelengths" in source else None
        write_operators(target, psf, srf, wavelengths, str(source.attrs.get("srf_bands", "")))


# -- observations -----------------------------------------------------------------------------------
OBSERVATION_IMAGES = ("gt", "lr_hsi", "hr_msi")


@dataclass
class Observations:
    """One scene's degraded file: the simulated observations, the ground truth and the operators.

    ``gt`` (L, H, W), ``lr_hsi`` (L, H/ratio, W/ratio), ``hr_msi`` (l, H, W) on [0, 1];
    ``psf`` and ``srf`` (l, L) are None in files written without them (hand-made test files).
    """

    path: Path
    gt: np.ndarray | None
    lr_hsi: np.ndarray
    hr_msi: np.ndarray
    ratio: int
    wavelengths: np.ndarray | None = None
    psf: PSF | None = None
    srf: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def need(self, name: str):
        """The array or operator ``name``, with an error naming the file when it is absent."""
        value = getattr(self, name)
        if value is None:
            raise DataError(f"{self.path}: no '{name}' in this observation file")
        return value


def write_observations(path: str | Path, gt: np.ndarray, lr_hsi: np.ndarray, hr_msi: np.ndarray, psf: PSF,
                       srf: np.ndarray, wavelengths: np.ndarray, srf_bands: str, attrs: Mapping[str, Any]) -> None:
    with atomic_h5(path) as fh:
        _chunked(fh, "gt", gt)
        _chunked(fh, "lr_hsi", lr_hsi)
        _chunked(fh, "hr_msi", hr_msi)
        write_operators(fh, psf, srf, wavelengths, srf_bands)
        write_attrs(fh, dict(attrs))


def _check_sizes(path, gt_shape, lr_shape, msi_shape, ratio) -> None:
    if lr_shape[1] * ratio != msi_shape[1] or lr_shape[2] * ratio != msi_shape[2]:
        raise DataError(f"{path}: lr_hsi {tuple(lr_shape)} is not hr_msi {tuple(msi_shape)} divided by the ratio {ratio}")
    if gt_shape is not None and (gt_shape[1:] != msi_shape[1:] or gt_shape[0] != lr_shape[0]):
        raise DataError(f"{path}: gt {tuple(gt_shape)} does not match lr_hsi {tuple(lr_shape)} and hr_msi {tuple(msi_shape)}")


def observation_shapes(path: str | Path) -> dict[str, Any]:
    """Shapes and attributes of an observation file, without reading its images."""
    with open_h5(path) as fh:
        shapes = {key: require(fh, key, ndim=3).shape for key in OBSERVATION_IMAGES}
        ratio = read_ratio(fh)
        _check_sizes(path, shapes["gt"], shapes["lr_hsi"], shapes["hr_msi"], ratio)
        return {**shapes, "ratio": ratio, "attrs": _attrs(fh)}


def read_observations(path: str | Path) -> Observations:
    """Every array and operator of an observation file (``gt``, ``psf``, ``srf`` when present)."""
    path = Path(path)
    with open_h5(path) as fh:
        lr_hsi, hr_msi = require(fh, "lr_hsi", ndim=3)[()], require(fh, "hr_msi", ndim=3)[()]
        gt = require(fh, "gt", ndim=3)[()] if "gt" in fh else None
        ratio = read_ratio(fh)
        _check_sizes(path, None if gt is None else gt.shape, lr_hsi.shape, hr_msi.shape, ratio)
        psf, srf = read_operators(fh) if "psf" in fh and "srf" in fh else (None, None)
        wavelengths = require(fh, "wavelengths", ndim=1)[()] if "wavelengths" in fh else None
        return Observations(path, gt, lr_hsi, hr_msi, ratio, wavelengths, psf, srf, _attrs(fh))


def read_ground_truth(path: str | Path) -> tuple[np.ndarray, int, np.ndarray | None]:
    """``gt`` (L, H, W), the ratio and the wavelengths of an observation file (for metrics and figures)."""
    with open_h5(path) as fh:
        gt = require(fh, "gt", ndim=3)[()]
        wavelengths = require(fh, "wavelengths", ndim=1)[()] if "wavelengths" in fh else None
        return gt, read_ratio(fh), wavelengths


# -- fused results -------------------------------------------------------------------------------------
@dataclass
class FusionResult:
    fused: np.ndarray  # (bands, H, W) on [0, 1]: the mean of the samples
    std: np.ndarray | None  # per-pixel standard deviation over samples (n_samples > 1)
    seconds: float


def write_fused(path: str | Path, result: FusionResult, wavelengths: np.ndarray | None, provenance: Mapping[str, Any]) -> None:
    """One HDF5 per scene: ``fused`` (L, H, W), ``std`` when several samples, ``wavelengths``, provenance attributes."""
    with atomic_h5(path) as fh:
        _chunked(fh, "fused", result.fused)
        if result.std is not None:
            _chunked(fh, "std", result.std)
        if wavelengths is not None:
            fh.create_dataset("wavelengths", data=wavelengths)
        write_attrs(fh, {"seconds": result.seconds, "code_version": code_version(), **provenance})


@dataclass
class FusedFile:
    path: Path
    result: FusionResult
    wavelengths: np.ndarray | None
    attrs: dict[str, Any]


def read_fused(path: str | Path) -> FusedFile:
    path = Path(path)
    with open_h5(path) as fh:
        fused = require(fh, "fused", ndim=3)[()]
        std = require(fh, "std", ndim=3)[()] if "std" in fh else None
        wavelengths = require(fh, "wavelengths", ndim=1)[()] if "wavelengths" in fh else None
        attrs = _attrs(fh)
    return FusedFile(path, FusionResult(fused, std, float(attrs.get("seconds", np.nan))), wavelengths, attrs)


# -- network bases -------------------------------------------------------------------------------------
@dataclass
class BaseFile:
    path: Path
    name: str  # hsrdiff.bases.base_name
    scene: str
    base: np.ndarray  # (L, H, W) on [0, 1]


def write_base(path: str | Path, base: np.ndarray, name: str, scene: str, provenance: Mapping[str, Any]) -> None:
    """One scene's network base, computed once for every network and patch file that uses it."""
    with atomic_h5(path) as fh:
        _chunked(fh, "base", np.asarray(base, dtype=np.float32))
        write_attrs(fh, {"base": name, "scene": scene, "code_version": code_version(), **provenance})


def _identity(attrs: Mapping[str, Any], path: Path) -> tuple[str, str]:
    return str(attrs.get("base", "")), str(attrs.get("scene", path.stem))


def base_identity(path: str | Path) -> tuple[str, str]:
    """A base file's (base name, scene), from its attributes alone (the image is not read)."""
    with open_h5(path) as fh:
        attrs = _attrs(fh)
    return _identity(attrs, Path(path))


def read_base(path: str | Path, name: str | None = None, shape: tuple[int, ...] | None = None) -> BaseFile:
    """A base file; with ``name`` or ``shape``, refused unless it holds that base of that shape."""
    path = Path(path)
    with open_h5(path) as fh:
        base = require(fh, "base", ndim=3)[()]
        attrs = _attrs(fh)
    held, scene = _identity(attrs, path)
    if name is not None and held != name:
        raise DataError(f"{path}: holds the base '{held}', expected '{name}' (the model's base)")
    if shape is not None and tuple(base.shape) != tuple(shape):
        raise DataError(f"{path}: base of shape {tuple(base.shape)}, expected {tuple(shape)} (the scene's HR-HSI)")
    return BaseFile(path, held, scene, base)


def write_pair_result(path: str | Path, fused: np.ndarray, lr_hsi: np.ndarray, hr_msi: np.ndarray, srf_fitted: np.ndarray,
                      attrs: Mapping[str, Any]) -> None:
    """The real-pair experiment's file: ``fused`` beside the observed ``lr_hsi`` and ``hr_msi`` (no
    ground truth exists) and the SRF fitted to the pair, ``srf_fitted`` (l, L)."""
    with atomic_h5(path) as fh:
        fh.create_dataset("fused", data=fused.astype(np.float32))
        fh.create_dataset("lr_hsi", data=lr_hsi)
        fh.create_dataset("hr_msi", data=hr_msi)
        fh.create_dataset("srf_fitted", data=srf_fitted)
        write_attrs(fh, dict(attrs))
