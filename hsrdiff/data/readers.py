"""Readers of native hyperspectral formats, all returning ``(bands, height, width)`` cubes.

Formats: a folder of per-band PNGs (CAVE), MATLAB v5 (scipy) and v7.3 (HDF5), HDF5, TIFF and
NumPy. Large files (Chikusei is 3 GB as MATLAB v7.3) are read lazily: only the region of the
requested scene is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from hsrdiff.data.registry import Scene
from hsrdiff.errors import ConfigError, DataError


@dataclass
class RawScene:
    """A scene as stored, before scaling: ``cube`` (bands, height, width) in the file's dtype."""

    cube: np.ndarray
    wavelengths: np.ndarray
    path: Path
    source_max: float  # largest value of the image the scene is cut from (for scale "max")


def scene_path(dataset: str, scene: Scene, reader: Mapping[str, Any], raw: str | Path) -> Path:
    """The file (or, for cave_png, the folder) under ``raw`` that holds ``scene``."""
    root = Path(raw).expanduser()
    if root.is_file():
        return root
    if not root.exists():
        raise DataError(f"dataset '{dataset}': raw data not found at {root}")
    pattern = reader.get("file", ".").format(scene=scene.key)
    if not any(ch in pattern for ch in "*?["):
        return root / pattern
    matches = sorted(root.glob(pattern))
    if len(matches) != 1:
        found = ", ".join(str(m) for m in matches[:5]) or "nothing"
        raise DataError(f"dataset '{dataset}': config 'file' pattern '{pattern}' under {root} must match one path; found {found}")
    return matches[0]


def read_scene(dataset: str, scene: Scene, reader: Mapping[str, Any], raw: str | Path) -> RawScene:
    """Read one scene from the raw data at ``raw`` (a file or folder) with a registry entry's
    reader settings (:meth:`DatasetSpec.reader_settings`): crop, region and band selection applied."""
    path = scene_path(dataset, scene, reader, raw)
    if reader["reader"] == "cave_png":
        arr, axes = _read_cave_png(path, scene.key), "bhw"
    else:
        arr, axes = _open_array(path, reader["reader"], _variable(reader, scene), reader)
    try:
        cube, source_max = _cut(arr, axes, reader, scene, path)
    finally:
        if isinstance(arr, h5py.Dataset):
            arr.file.close()
    wavelengths = resolve_wavelengths(reader, path, n_stored=_n_bands(arr, axes, reader))
    if reader.get("bands") is not None:
        wavelengths = wavelengths[np.asarray(reader["bands"])]
    return RawScene(cube=cube, wavelengths=wavelengths, path=path, source_max=source_max)


def _variable(entry: Mapping[str, Any], scene: Scene) -> str | None:
    var = entry.get("variable")
    return var.format(scene=scene.key) if var else None


# -- opening -----------------------------------------------------------------------------------
def _open_array(path: Path, reader: str, variable: str | None, entry: Mapping[str, Any]):
    """Return (array-like, axes of that array as stored)."""
    if not path.is_file():
        raise DataError(f"file not found: {path} (reader '{reader}')")
    axis_order = entry.get("axis_order", "hwb")
    if reader == "mat":
        if h5py.is_hdf5(path):
            # MATLAB v7.3 writes column-major arrays: HDF5 shows the axes reversed.
            return _h5_dataset(path, variable), axis_order[::-1]
        return _mat5_variable(path, variable), axis_order
    if reader == "hdf5":
        return _h5_dataset(path, variable), axis_order
    if reader == "tiff":
        import tifffile

        try:
            return tifffile.imread(path), axis_order
        except Exception as exc:  # tifffile raises several types for non-TIFF input
            raise DataError(f"{path}: not a readable TIFF file ({exc})") from exc
    if reader == "npy":
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False), axis_order
        except ValueError as exc:
            raise DataError(f"{path}: not a readable .npy file ({exc})") from exc
    raise ConfigError(f"unknown reader '{reader}'")


def _mat5_variable(path: Path, variable: str | None) -> np.ndarray:
    import scipy.io

    if not variable:
        raise ConfigError(f"{path}: reader 'mat' needs the config key 'variable' (the MATLAB variable name)")
    try:
        data = scipy.io.loadmat(path, variable_names=[variable])
    except (ValueError, OSError, TypeError) as exc:
        raise DataError(f"{path}: not a readable MATLAB file ({exc})") from exc
    if variable not in data:
        names = [name for name, *_ in scipy.io.whosmat(path)]
        raise DataError(f"{path}: no variable '{variable}'; the file has: {', '.join(names)}")
    return data[variable]


def _h5_dataset(path: Path, variable: str | None) -> h5py.Dataset:
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc
    names: list[str] = []
    fh.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    if not variable or variable not in fh or not isinstance(fh[variable], h5py.Dataset):
        fh.close()
        what = f"no dataset '{variable}'" if variable else "the config key 'variable' is needed"
        raise DataError(f"{path}: {what}; the file has: {', '.join(names) or 'no datasets'}")
    return fh[variable]


def _read_cave_png(folder: Path, key: str) -> np.ndarray:
    """Stack ``<key>_ms_NN.png`` files found under ``folder`` in band order NN."""
    import imageio.v3 as iio

    if not folder.is_dir():
        raise DataError(f"CAVE scene folder not found: {folder}")
    pattern = re.compile(rf"^{re.escape(key)}_ms_(\d+)\.png$", re.IGNORECASE)
    files = sorted(
        (int(m.group(1)), p) for p in folder.rglob("*.png") if (m := pattern.match(p.name))
    )
    if not files:
        raise DataError(f"{folder}: no band images named '{key}_ms_NN.png' found (searched recursively)")
    bands = []
    for _, p in files:
        img = iio.imread(p)
        if img.ndim == 3:  # a few CAVE bands are stored as RGB(A) with equal channels
            img = img[..., 0]
        bands.append(img)
    shapes = {b.shape for b in bands}
    if len(shapes) != 1:
        raise DataError(f"{folder}: band images of '{key}' differ in size: {sorted(shapes)}")
    return np.stack(bands)


# -- cutting -------------------------------------------------------------------------------------
def _logical_shape(arr, axes: str, entry: Mapping[str, Any]) -> tuple[int, int, int]:
    """(bands, height, width) of the stored image."""
    if axes in ("bp", "pb"):
        pix = entry.get("pixels")
        return arr.shape[axes.index("b")], pix["height"], pix["width"]
    return tuple(arr.shape[axes.index(a)] for a in "bhw")


def _n_bands(arr, axes: str, entry: Mapping[str, Any]) -> int:
    return _logical_shape(arr, axes, entry)[0]


def _unfold_pixels(arr: np.ndarray, axes: str, entry: Mapping[str, Any], path: Path) -> np.ndarray:
    pix = entry.get("pixels")
    if pix is None:
        raise ConfigError(f"{path}: axis_order '{axes}' needs the config key 'pixels' ({{height, width}})")
    if arr.ndim != 2:
        raise DataError(f"{path}: axis_order '{axes}' expects a 2-D (bands, pixels) array, got shape {arr.shape}")
    mat = np.asarray(arr) if axes == "bp" else np.asarray(arr).T
    h, w = pix["height"], pix["width"]
    if mat.shape[1] != h * w:
        raise DataError(f"{path}: {mat.shape[1]} pixels cannot form a {h}x{w} image (config 'pixels')")
    order = "F" if pix.get("order", "column_major") == "column_major" else "C"
    return mat.reshape(mat.shape[0], h, w, order=order)


def _cut(arr, axes: str, entry: Mapping[str, Any], scene: Scene, path: Path) -> tuple[np.ndarray, float]:
    if axes in ("bp", "pb"):
        arr, axes = _unfold_pixels(arr, axes, entry, path), "bhw"
    if arr.ndim != 3:
        raise DataError(f"{path}: expected a 3-D cube (axis_order '{axes}'), got shape {arr.shape}")
    n_bands, height, width = _logical_shape(arr, axes, entry)
    r0, r1, c0, c1 = _crop_window(entry.get("crop"), height, width, path)
    if scene.region is not None:
        sr0, sr1, sc0, sc1 = scene.region
        if sr1 > r1 - r0 or sc1 > c1 - c0:
            raise DataError(
                f"{path}: region {list(scene.region)} of scene '{scene.name}' exceeds the "
                f"{'cropped ' if entry.get('crop') else ''}image of size {r1 - r0}x{c1 - c0}"
            )
        r0, r1, c0, c1 = r0 + sr0, r0 + sr1, c0 + sc0, c0 + sc1
    index = {"b": slice(None), "h": slice(r0, r1), "w": slice(c0, c1)}
    # One hyperslab read: lazy h5py datasets load only this region.
    cube = np.asarray(arr[tuple(index[a] for a in axes)])
    cube = np.transpose(cube, [axes.index(a) for a in "bhw"])
    bands = entry.get("bands")
    if bands is not None:
        bad = [b for b in bands if b >= n_bands]
        if bad:
            raise DataError(f"{path}: config 'bands' lists {bad[:5]} but the cube has {n_bands} bands (0-based)")
        cube = cube[np.asarray(bands)]
    source_max = _source_max(arr, axes, entry, scene.region is None, cube)
    return np.ascontiguousarray(cube), source_max


def _source_max(arr, axes, entry, scene_is_whole_image: bool, cube) -> float:
    """Max of the whole (cropped) image for scale 'max', so regions of one image share a scale."""
    if entry.get("scale") != "max":
        return float("nan")
    if scene_is_whole_image:
        return float(np.nanmax(cube))
    height, width = _logical_shape(arr, axes, entry)[1:]
    r0, r1, c0, c1 = _crop_window(entry.get("crop"), height, width, None)
    band_axis = axes.index("b")
    bands = entry.get("bands")
    best = -np.inf
    # Band by band keeps memory bounded for multi-gigabyte cubes.
    for b in range(arr.shape[band_axis]) if bands is None else bands:
        index = {"b": b, "h": slice(r0, r1), "w": slice(c0, c1)}
        best = max(best, float(np.nanmax(np.asarray(arr[tuple(index[a] for a in axes)]))))
    return best


def _crop_window(crop, height: int, width: int, path) -> tuple[int, int, int, int]:
    if crop is None:
        return 0, height, 0, width
    if isinstance(crop, Mapping):
        ch, cw = crop["center"]
        if ch > height or cw > width:
            raise DataError(f"{path}: centre crop {ch}x{cw} is larger than the image {height}x{width}")
        r0, c0 = (height - ch) // 2, (width - cw) // 2
        return r0, r0 + ch, c0, c0 + cw
    r0, r1, c0, c1 = crop
    if r1 > height or c1 > width or r1 <= r0 or c1 <= c0:
        raise DataError(f"{path}: crop {list(crop)} does not fit the image of size {height}x{width}")
    return r0, r1, c0, c1


# -- wavelengths ---------------------------------------------------------------------------------
def resolve_wavelengths(entry: Mapping[str, Any], path: Path, n_stored: int) -> np.ndarray:
    """Band centres (nm) of the stored cube, checked against its band count."""
    spec = entry["wavelengths"]
    if isinstance(spec, list):
        wavelengths = np.asarray(spec, dtype=np.float64)
    elif "variable" in spec and "start" not in spec:
        wavelengths = np.ravel(_read_variable(path, spec["variable"], entry["reader"])).astype(np.float64)
    else:
        wavelengths = np.linspace(spec["start"], spec["stop"], spec["count"])
        if "select" in spec:
            sel = np.ravel(_read_variable(path, spec["select"]["variable"], entry["reader"])).astype(int)
            sel = sel - spec["select"].get("index_base", 1)
            if sel.min() < 0 or sel.max() >= len(wavelengths):
                raise DataError(
                    f"{path}: '{spec['select']['variable']}' selects bands outside 0..{len(wavelengths) - 1}"
                )
            wavelengths = wavelengths[sel]
    if len(wavelengths) != n_stored:
        raise DataError(
            f"{path}: the cube has {n_stored} bands but the config 'wavelengths' gives {len(wavelengths)}"
        )
    return wavelengths


def _read_variable(path: Path, name: str, reader: str) -> np.ndarray:
    if reader == "mat" and not h5py.is_hdf5(path):
        return _mat5_variable(path, name)
    if reader in ("mat", "hdf5"):
        dset = _h5_dataset(path, name)
        try:
            return dset[()]
        finally:
            dset.file.close()
    raise ConfigError(f"{path}: wavelengths from a variable need reader 'mat' or 'hdf5', not '{reader}'")


CUBE_SUFFIXES = {".npy": "npy", ".npz": "npz", ".mat": "mat", ".h5": "hdf5", ".hdf5": "hdf5", ".he5": "hdf5",
                 ".tif": "tiff", ".tiff": "tiff"}


def split_cube_spec(spec: str) -> tuple[Path, str | None]:
    """``file`` or ``file:name`` -> (path, name). The name follows the last colon, so that paths
    holding colons (``C:/data/x.h5:cube``) split where the file name ends."""
    head, sep, tail = str(spec).rpartition(":")
    if sep and Path(head).suffix.lower() in CUBE_SUFFIXES and "/" not in tail and "\\" not in tail:
        return Path(head), tail
    return Path(spec), None


def read_cube(spec: str, scale: str | float | None = None) -> np.ndarray:
    """A user's cube for fusion: ``file.npy``, ``file.tif``, or ``file.{h5,mat,npz}:name``, as the
    software that wrote it shows it, which must be (bands, H, W); float data as stored, integer
    data divided by ``scale`` ("dtype": the type's maximum, or a number). float32."""
    path, name = split_cube_spec(spec)
    reader = CUBE_SUFFIXES.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{spec}: unknown file type '{path.suffix}'; expected one of {', '.join(sorted(CUBE_SUFFIXES))}")
    if not path.is_file():
        raise DataError(f"{spec}: file not found: {path}")
    if reader in ("mat", "hdf5", "npz") and not name:
        raise DataError(f"{spec}: name the variable or dataset as {path}:NAME")
    if reader == "npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                if name not in data:
                    raise DataError(f"{path}: no array '{name}'; the file has: {', '.join(data.files)}")
                arr = data[name]
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    else:
        arr, stored_axes = _open_array(path, reader, name, {"axis_order": "bhw"})
        if isinstance(arr, h5py.Dataset):
            dset = arr
            try:
                arr = dset[()]
            finally:
                dset.file.close()
        arr = np.asarray(arr)
        if stored_axes != "bhw":  # MATLAB v7.3: back to the axes MATLAB shows
            arr = arr.transpose(*reversed(range(arr.ndim)))
    if arr.ndim != 3:
        raise DataError(f"{spec}: a cube of shape {arr.shape}; expected 3 axes (bands, H, W)")
    if np.issubdtype(arr.dtype, np.integer):
        from hsrdiff.data.prepare import scale_factor  # prepare imports this module

        if scale is None:
            raise DataError(f"{spec}: integer data ({arr.dtype}, largest value {arr.max()}); fusion works on [0, 1]: "
                            f"pass --scale dtype to divide by {np.iinfo(arr.dtype).max}, or --scale N to divide by N")
        divisor = scale_factor(scale, arr, float(arr.max()), Path(spec))
    elif not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{spec}: data of type {arr.dtype}; expected numbers")
    else:
        divisor = 1.0 if scale in (None, "dtype") else float(scale)
    if not divisor > 0:
        raise DataError(f"{spec}: --scale must be positive; got {scale}")
    return (arr.astype(np.float64) / divisor).astype(np.float32)
