"""Training patches for the progressive schedule, and the lazy ``Dataset`` that reads them.

A patch file holds aligned triples ``gt`` (N, L, p, p), ``lr_hsi`` (N, L, p/r, p/r) and
``hr_msi`` (N, l, p, p) cut from the degraded training scenes, chunked one patch per chunk so
that a random patch costs one read. Patch origins are multiples of the ratio ``r``, so the LR
patch is exactly the LR pixels of the HR patch's blocks. ``base_<name>`` (N, L, p, p), when
asked for, is the network base of the whole scene cut like ``gt``: a base computed on the patch
alone differs from it (on CAVE x32 training patches, GLP-HS on the 2x2 LR pixels of a 64x64 patch
scores 42.1 dB where the scene's scores 44.8 dB), and a network trained to correct the former
meets the latter at test time.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from hsrdiff.baselines import fusion_base
from hsrdiff.bases import parse_base_name
from hsrdiff.degradation import PSF, dihedral
from hsrdiff.errors import DataError
from hsrdiff.files import base_identity, copy_operators, observation_shapes, read_base, read_observations, read_operators, read_ratio
from hsrdiff.io import atomic_h5, open_h5, require, write_attrs

log = logging.getLogger(__name__)

KEYS = ("gt", "lr_hsi", "hr_msi")  # the patch file's images, named as in the observation files
BASE_PREFIX = "base_"  # + model.base: that base of the whole scene, cut like gt


def patch_origins(length: int, patch: int, stride: int) -> list[int]:
    """Start positions along one axis: every ``stride`` and one flush with the far edge."""
    starts = list(range(0, length - patch + 1, stride))
    last = length - patch
    if starts[-1] != last:
        starts.append(last)
    return starts


def _scene_shapes(paths: Sequence[Path]) -> list[dict]:
    shapes = []
    for path in paths:
        found = observation_shapes(path)
        shapes.append({"path": path, "gt": found["gt"], "lr": found["lr_hsi"], "msi": found["hr_msi"], "ratio": found["ratio"]})
    first = shapes[0]
    for s in shapes[1:]:
        if (s["gt"][0], s["msi"][0], s["ratio"]) != (first["gt"][0], first["msi"][0], first["ratio"]):
            raise DataError(
                f"{s['path']}: {s['gt'][0]} HSI bands, {s['msi'][0]} MSI bands, ratio {s['ratio']}; "
                f"but {first['path']} has {first['gt'][0]}, {first['msi'][0]}, {first['ratio']}"
            )
    return shapes


def extract_patches(
    degraded_paths: Sequence[str | Path],
    patch_size: int | str,
    out_path: str | Path,
    stride_fraction: float = 0.5,
    max_per_scene: int | None = None,
    bases: Sequence[str] = (),
    base_files: Sequence[str | Path] = (),
) -> dict:
    """Cut patches of ``patch_size`` (or "full": the largest size common to all scenes).

    ``bases``: the network bases by name (``hsrdiff.bases.base_name``) to store beside each
    patch as ``base_<name>``, cut from the base of the whole scene, which is what fusion adds the
    network's output to. ``base_files``: bases already computed (``hsrdiff.files.write_base``, the
    workflow's ``base`` rule), matched to the scenes by their ``base`` and ``scene`` attributes; a
    base without a file is computed here.

    Raises :class:`DataError` when a scene is smaller than the patch or the size is not a
    multiple of the ratio.
    """
    paths = [Path(p) for p in degraded_paths]
    if not paths:
        raise DataError(f"{out_path}: no training scenes to cut patches from")
    shapes = _scene_shapes(paths)
    ratio = shapes[0]["ratio"]
    if patch_size == "full":
        ph = min(s["gt"][1] for s in shapes)
        pw = min(s["gt"][2] for s in shapes)
    else:
        ph = pw = int(patch_size)
        if ph % ratio:
            raise DataError(f"patch size {ph} is not a multiple of the ratio {ratio} (config training.stages)")
        small = [f"{s['path'].stem} ({s['gt'][1]}x{s['gt'][2]})" for s in shapes if s["gt"][1] < ph or s["gt"][2] < pw]
        if small:
            raise DataError(
                f"patch size {ph} is larger than training scene(s) {', '.join(small)}; "
                "use a smaller patch_size in config training.stages, or 'full'"
            )
    stride_h = max(ratio, int(ph * stride_fraction) // ratio * ratio)
    stride_w = max(ratio, int(pw * stride_fraction) // ratio * ratio)

    plan = []
    for i, s in enumerate(shapes):
        origins = [(r, c) for r in patch_origins(s["gt"][1], ph, stride_h) for c in patch_origins(s["gt"][2], pw, stride_w)]
        if max_per_scene and len(origins) > max_per_scene:
            keep = np.linspace(0, len(origins) - 1, max_per_scene).round().astype(int)
            origins = [origins[k] for k in keep]
        plan.extend((i, r, c) for r, c in origins)

    for name in bases:
        try:
            parse_base_name(name)
        except ValueError as err:
            raise DataError(f"{out_path}: {err}") from None
    n, bands, msi_bands = len(plan), shapes[0]["gt"][0], shapes[0]["msi"][0]
    lh, lw = ph // ratio, pw // ratio
    with atomic_h5(out_path) as out:
        dsets = {
            "gt": out.create_dataset("gt", (n, bands, ph, pw), "f4", chunks=(1, bands, ph, pw)),
            "lr_hsi": out.create_dataset("lr_hsi", (n, bands, lh, lw), "f4", chunks=(1, bands, lh, lw)),
            "hr_msi": out.create_dataset("hr_msi", (n, msi_bands, ph, pw), "f4", chunks=(1, msi_bands, ph, pw)),
        }
        given = {base_identity(file): file for file in base_files}  # each image is read once, below
        for name in bases:
            dsets[BASE_PREFIX + name] = out.create_dataset(BASE_PREFIX + name, (n, bands, ph, pw), "f4", chunks=(1, bands, ph, pw))
        out.create_dataset("scene_index", data=np.array([p[0] for p in plan], dtype=np.int32))
        out.create_dataset("origin", data=np.array([p[1:] for p in plan], dtype=np.int32).reshape(n, 2))
        k = 0
        for i, s in enumerate(shapes):
            # One scene in memory at a time: full-scale scenes are large, the patch file larger.
            obs = read_observations(s["path"])
            scene = {"gt": obs.need("gt"), "lr_hsi": obs.lr_hsi, "hr_msi": obs.hr_msi}
            lr, msi = torch.from_numpy(obs.lr_hsi)[None], torch.from_numpy(obs.hr_msi)[None]
            for name in bases:
                if (name, s["path"].stem) in given:
                    scene[BASE_PREFIX + name] = read_base(given[name, s["path"].stem], name, obs.need("gt").shape).base
                else:
                    try:
                        scene[BASE_PREFIX + name] = fusion_base(name, lr, msi, obs.psf, obs.srf)[0].numpy()
                    except ValueError as err:  # an operator the file lacks
                        raise DataError(f"{s['path']}: {err}") from None
            if i == 0:
                copy_operators(s["path"], out)
            for _, r, c in (p for p in plan if p[0] == i):
                for key in ("gt", "hr_msi", *(BASE_PREFIX + name for name in bases)):
                    dsets[key][k] = scene[key][:, r : r + ph, c : c + pw]
                dsets["lr_hsi"][k] = scene["lr_hsi"][:, r // ratio : r // ratio + lh, c // ratio : c // ratio + lw]
                k += 1
        write_attrs(out, {
            "patch_size": str(patch_size), "patch_height": ph, "patch_width": pw,
            "stride": f"{stride_h}x{stride_w}", "scenes": ",".join(s["path"].stem for s in shapes),
            "bases": ",".join(bases),
        })
    summary = {"patches": n, "patch": (ph, pw), "stride": (stride_h, stride_w), "scenes": len(shapes)}
    log.info("wrote %s: %s", out_path, summary)
    return summary


class PatchDataset(Dataset):
    """Lazy reader of a patch file: item ``i`` is ``{"gt", "lr_hsi", "hr_msi"}`` float32 tensors,
    plus ``base_<name>`` for each network base the file holds.

    With ``augment``, each item gets one of the 8 flips/rotations (rotations only for square
    patches), the same for the three images so their geometry stays consistent. The HDF5 file is
    opened on first access in each process, so the dataset works with DataLoader workers.
    """

    def __init__(self, path: str | Path, augment: bool = False, bases: Sequence[str] | None = None):
        """``bases``: the network bases to read (those the file holds); None: all of them."""
        self.path = Path(path)
        self.augment = augment
        with open_h5(self.path) as fh:
            for key in KEYS:
                require(fh, key, ndim=4)
            held = sorted(k for k in fh if k.startswith(BASE_PREFIX))
            self.keys = (*KEYS, *(k for k in held if bases is None or k[len(BASE_PREFIX):] in bases))
            self._len = fh["gt"].shape[0]
            self.square = fh["gt"].shape[2] == fh["gt"].shape[3]
            self.ratio = read_ratio(fh)
        self._fh: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self._len

    def _file(self) -> h5py.File:
        if self._fh is None or self._pid != os.getpid():
            self._fh = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._fh

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fh"] = None
        return state

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        """``index``: an int, or ``(int, rot, flip)`` to choose the transform (reproducible training)."""
        rot, flip = None, None
        if isinstance(index, (tuple, list)):
            index, rot, flip = int(index[0]), int(index[1]), bool(index[2])
        if not 0 <= index < self._len:
            raise IndexError(f"patch index {index} out of range 0..{self._len - 1}")
        fh = self._file()
        item = {key: torch.from_numpy(fh[key][index]) for key in self.keys}
        if rot is None and self.augment:
            rot = int(torch.randint(0, 4 if self.square else 1, ()).item())
            flip = bool(torch.randint(0, 2, ()).item())
        if rot or flip:
            item = {key: dihedral(value, rot if self.square else 0, flip) for key, value in item.items()}
        return item

    def operators(self) -> tuple[PSF, np.ndarray]:
        """The PSF and SRF the patches were simulated with (for the loss's observation terms)."""
        with open_h5(self.path) as fh:
            return read_operators(fh)
