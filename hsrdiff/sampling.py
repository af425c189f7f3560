"""Fusion with a trained network: the diffusion sampler, tiled for images of any size.

Tiles overlap and their predictions are blended with a smooth window (sin^2 ramps, normalised by
the summed weights), so memory follows the tile size and tiling leaves no seams. The SR stream
(``encode``) runs once per tile; every refinement step calls ``denoise`` only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from hsrdiff.diffusion import AncestralSampler, Schedule, to_data_range, to_model_range
from hsrdiff.errors import DataError
from hsrdiff.io import atomic_h5, write_attrs
from hsrdiff.models import Denoiser
from hsrdiff.provenance import code_version, describe


def tile_boxes(height: int, width: int, tile: int | None, overlap: int, ratio: int) -> list[tuple[int, int, int, int]]:
    """(row0, row1, col0, col1) of overlapping tiles covering the image; edges are multiples of ``ratio``."""
    if tile is None or (height <= tile and width <= tile):
        return [(0, height, 0, width)]
    if tile % ratio or overlap % ratio or not 0 <= overlap < tile:
        raise DataError(f"tile {tile} and overlap {overlap} must be multiples of the ratio {ratio} with overlap < tile")

    def starts(length):
        if length <= tile:
            return [(0, length)]
        pos = list(range(0, length - tile + 1, tile - overlap))
        if pos[-1] != length - tile:
            pos.append(length - tile)
        return [(p, p + tile) for p in pos]

    return [(r0, r1, c0, c1) for r0, r1 in starts(height) for c0, c1 in starts(width)]


def blend_window(height: int, width: int) -> torch.Tensor:
    """Separable sin^2 window, positive everywhere, highest in the tile's centre."""
    def ramp(n):
        return torch.sin(torch.pi * (torch.arange(n, dtype=torch.float32) + 0.5) / n) ** 2
    return ramp(height)[:, None] * ramp(width)[None, :]


class TiledDenoiser:
    """x0 predictions of a whole image assembled from overlapping tiles."""

    def __init__(self, model: Denoiser, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, ratio: int,
                 tile: int | None = None, overlap: int = 0):
        height, width = hr_msi.shape[-2:]
        self.model = model
        self.boxes = tile_boxes(height, width, tile, overlap, ratio)
        self.conditions = []
        self.windows = []
        norm = torch.zeros(height, width, device=hr_msi.device)
        for r0, r1, c0, c1 in self.boxes:
            lr_tile = lr_hsi[..., r0 // ratio : r1 // ratio, c0 // ratio : c1 // ratio]
            self.conditions.append(model.encode(lr_tile, hr_msi[..., r0:r1, c0:c1]))
            window = blend_window(r1 - r0, c1 - c0).to(hr_msi.device) if len(self.boxes) > 1 else torch.ones(r1 - r0, c1 - c0, device=hr_msi.device)
            self.windows.append(window)
            norm[r0:r1, c0:c1] += window
        self.norm = norm

    def __call__(self, x_t: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        if len(self.boxes) == 1:
            return self.model.denoise(x_t, noise_level, self.conditions[0])
        out = torch.zeros_like(x_t)
        for (r0, r1, c0, c1), cond, window in zip(self.boxes, self.conditions, self.windows):
            out[..., r0:r1, c0:c1] += window * self.model.denoise(x_t[..., r0:r1, c0:c1], noise_level, cond)
        return out / self.norm


@dataclass
class FusionResult:
    fused: np.ndarray  # (bands, H, W) on [0, 1]: the mean of the samples
    std: np.ndarray | None  # per-pixel standard deviation over samples (n_samples > 1)
    seconds: float


@torch.no_grad()
def fuse(model: Denoiser, lr_hsi, hr_msi, ratio: int, schedule: Schedule | None = None, mode: str = "diffusion",
         tile: int | None = None, overlap: int = 0, n_samples: int = 1, seed: int = 0,
         device: str | torch.device = "cpu") -> FusionResult:
    """Estimate the HR-HSI from one ``lr_hsi`` (L, h, w) and ``hr_msi`` (l, H, W) on [0, 1]."""
    import time

    lr = to_model_range(torch.as_tensor(np.asarray(lr_hsi), dtype=torch.float32)[None].to(device))
    msi = to_model_range(torch.as_tensor(np.asarray(hr_msi), dtype=torch.float32)[None].to(device))
    if msi.shape[-2] != lr.shape[-2] * ratio or msi.shape[-1] != lr.shape[-1] * ratio:
        raise DataError(f"hr_msi {tuple(msi.shape[1:])} is not lr_hsi {tuple(lr.shape[1:])} times the ratio {ratio}")
    model = model.to(device).eval()
    t0 = time.perf_counter()
    x0_fn = TiledDenoiser(model, lr, msi, ratio, tile, overlap)
    shape = (1, lr.shape[1], *msi.shape[-2:])
    if mode == "regression":
        samples = [x0_fn(torch.zeros(shape, device=device), torch.zeros(1, device=device))]
    else:
        sampler = AncestralSampler(schedule)
        samples = []
        for i in range(n_samples):
            generator = torch.Generator(device=device).manual_seed(seed + i)
            samples.append(sampler.sample(x0_fn, shape, device=device, generator=generator))
    stack = torch.cat([to_data_range(s).clamp(0, 1) for s in samples])
    if device != "cpu" and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    std = stack.std(dim=0, unbiased=False).cpu().numpy() if len(samples) > 1 else None
    return FusionResult(stack.mean(dim=0).cpu().numpy(), std, time.perf_counter() - t0)


def write_fused(path: str | Path, result: FusionResult, wavelengths: np.ndarray | None, provenance: Mapping[str, Any]) -> None:
    """One HDF5 per scene: ``fused`` (L, H, W), ``std`` when several samples, ``wavelengths``, provenance attributes."""
    with atomic_h5(path) as fh:
        fh.create_dataset("fused", data=result.fused.astype(np.float32), chunks=(1,) + result.fused.shape[1:])
        if result.std is not None:
            fh.create_dataset("std", data=result.std.astype(np.float32), chunks=(1,) + result.std.shape[1:])
        if wavelengths is not None:
            fh.create_dataset("wavelengths", data=wavelengths)
        write_attrs(fh, {"seconds": result.seconds, "code_version": code_version(), **provenance})


def resolve_device(name: str = "auto") -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def fuse_files(weights: str | Path, lr_hsi: np.ndarray, hr_msi: np.ndarray, out: str | Path,
               schedule_cfg: Mapping[str, Any], sampling_cfg: Mapping[str, Any],
               wavelengths: np.ndarray | None = None, provenance: Mapping[str, Any] | None = None) -> FusionResult:
    """Load a weights file, fuse one scene and write it with its provenance."""
    from hsrdiff.training.checkpoint import load_weights

    device = resolve_device(sampling_cfg.get("device", "auto"))
    model, blob = load_weights(weights, device)
    if lr_hsi.shape[0] != blob["model_config"]["hsi_bands"] or hr_msi.shape[0] != blob["model_config"]["msi_bands"]:
        raise DataError(
            f"{weights}: the model fuses {blob['model_config']['hsi_bands']} HSI and {blob['model_config']['msi_bands']} "
            f"MSI bands; the inputs have {lr_hsi.shape[0]} and {hr_msi.shape[0]}"
        )
    ratio = int(blob["ratio"])
    settings = {k: sampling_cfg.get(k) for k in ("tile", "overlap", "n_samples", "seed")}
    result = fuse(model, lr_hsi, hr_msi, ratio, Schedule.from_config(schedule_cfg), mode=blob["mode"],
                  tile=settings["tile"], overlap=int(settings["overlap"] or 0), n_samples=int(settings["n_samples"] or 1),
                  seed=int(settings["seed"] or 0), device=device)
    write_fused(out, result, wavelengths, {
        "method": "hsrdiff", "weights_file": str(weights), "weights_sha256": describe(weights)["sha256"], "mode": blob["mode"],
        "stage": blob.get("stage", ""), "schedule": json.dumps(dict(schedule_cfg)), "sampling": json.dumps(settings),
        "device": str(device), **(provenance or {}),
    })
    return result
