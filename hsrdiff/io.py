"""HDF5 files of the pipeline: atomic writes and checked reads.

Every file a stage writes goes to a temporary name in the same folder and is renamed into place
only when complete, so a killed job never leaves a truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from hsrdiff.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates 0600; give the final file the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_h5(path: str | Path) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears at ``path`` only once closed successfully."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as fh:
            yield fh


def open_h5(path: str | Path) -> h5py.File:
    """Open an HDF5 file for reading, with an error that names the file when it cannot be."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc


def require(fh: h5py.File, key: str, ndim: int | None = None) -> h5py.Dataset:
    """The dataset ``key`` of an open file, checked to exist (and to have ``ndim`` axes)."""
    if key not in fh:
        raise DataError(f"{fh.filename}: no dataset '{key}'; it has: {', '.join(sorted(fh.keys()))}")
    dset = fh[key]
    if ndim is not None and dset.ndim != ndim:
        raise DataError(f"{fh.filename}: dataset '{key}' has shape {dset.shape}; expected {ndim} axes")
    return dset


def read_arrays(path: str | Path, *keys: str) -> dict[str, np.ndarray]:
    """Read whole datasets ``keys`` of ``path`` into memory."""
    with open_h5(path) as fh:
        return {k: require(fh, k)[()] for k in keys}


def write_attrs(obj: h5py.HLObject, attrs: dict) -> None:
    """Store attributes, turning None into an empty string (HDF5 has no null)."""
    for key, value in attrs.items():
        obj.attrs[key] = "" if value is None else value
