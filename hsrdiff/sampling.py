"""Fusion with a trained network: the diffusion sampler, tiled for images of any size.

Tiles overlap and their predictions are blended with a smooth window (sin^2 ramps, normalised by
the summed weights), so memory follows the tile size and tiling leaves no seams. The SR stream
(``encode``) runs once per tile; every refinement step calls ``denoise`` only.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from hsrdiff.degradation import DIHEDRAL_VIEWS, PSF, dihedral, project_onto_observations, undo_dihedral
from hsrdiff.diffusion import AncestralSampler, Sampler, Schedule, make_sampler, sampling_levels, to_data_range, to_model_range
from hsrdiff.errors import DataError
from hsrdiff.files import FusionResult, read_base, write_fused
from hsrdiff.models import Denoiser, load_weights
from hsrdiff.provenance import describe


# How far outside [0, 1] an input may stray (sensor noise, simulated noise) before it is refused.
INPUT_TOLERANCE = 0.05


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
    """x0 predictions of a whole image assembled from overlapping tiles.

    Tiles all have one size, so up to ``tile_batch`` of them go through the network together;
    their conditions (the SR stream's features) are computed once, here, and reused by every step.
    Takes and returns the model's diffusion variable (the image, or the scaled residual of
    ``model.diffuse: residual``); the image it stands for is clipped to [-1, 1] on the way, and
    ``to_image`` turns a sample back into the image.
    """

    def __init__(self, model: Denoiser, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, ratio: int,
                 tile: int | None = None, overlap: int = 0, tile_batch: int = 8, base: torch.Tensor | None = None):
        if tile_batch < 1:
            raise DataError(f"sampling.tile_batch must be at least 1; got {tile_batch}")
        height, width = hr_msi.shape[-2:]
        self.model = model
        self.boxes = tile_boxes(height, width, tile, overlap, ratio)
        self.chunks = [self.boxes[i : i + tile_batch] for i in range(0, len(self.boxes), tile_batch)]
        self.conditions = []
        # Each tile's base is cut from the whole image's, as in training (patches.BASE_PREFIX).
        self.base = base = model.base(lr_hsi, hr_msi) if base is None else base
        for chunk in self.chunks:
            lr_tiles = torch.cat([lr_hsi[..., r0 // ratio : r1 // ratio, c0 // ratio : c1 // ratio] for r0, r1, c0, c1 in chunk])
            msi_tiles = torch.cat([hr_msi[..., r0:r1, c0:c1] for r0, r1, c0, c1 in chunk])
            base_tiles = torch.cat([base[..., r0:r1, c0:c1] for r0, r1, c0, c1 in chunk])
            self.conditions.append(model.encode(lr_tiles, msi_tiles, base_tiles))
        r0, r1, c0, c1 = self.boxes[0]
        if len(self.boxes) > 1:
            self.window = blend_window(r1 - r0, c1 - c0).to(hr_msi.device)
            norm = torch.zeros(height, width, device=hr_msi.device)
            for r0, r1, c0, c1 in self.boxes:
                norm[r0:r1, c0:c1] += self.window
            self.norm = norm
        self.reset()

    def reset(self) -> None:
        """Forget the previous estimate (before each sample of a self-conditioned network)."""
        self.previous: torch.Tensor | None = None

    @property
    def evaluations(self) -> int:
        """Network calls per denoising step."""
        return len(self.chunks)

    def to_image(self, y: torch.Tensor) -> torch.Tensor:
        return self.model.from_diffusion(y, self.base)

    def __call__(self, x_t: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        x0_hat = self._image(x_t, noise_level).clamp(-1, 1)
        if self.model.config.self_condition:  # the next step refines this estimate
            self.previous = x0_hat
        return self.model.to_diffusion(x0_hat, self.base)

    def _image(self, x_t: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        previous = self.previous
        if len(self.boxes) == 1:
            return self.model.denoise(x_t, noise_level, self.conditions[0], previous)
        if x_t.shape[0] != 1:
            raise ValueError("tiled denoising takes one image at a time")
        out = torch.zeros_like(x_t)
        for chunk, cond in zip(self.chunks, self.conditions):
            tiles = torch.cat([x_t[..., r0:r1, c0:c1] for r0, r1, c0, c1 in chunk])
            prev_tiles = None if previous is None else torch.cat([previous[..., r0:r1, c0:c1] for r0, r1, c0, c1 in chunk])
            x0_tiles = self.model.denoise(tiles, noise_level.expand(len(chunk)), cond, prev_tiles)
            for (r0, r1, c0, c1), x0_tile in zip(chunk, x0_tiles):
                out[0, :, r0:r1, c0:c1] += self.window * x0_tile
        return out / self.norm


def regression_passes(model: Denoiser, sampler: Sampler | Schedule | None) -> int:
    """Network passes of a regression twin: one, or, self-conditioned, as many as ``sampler`` has
    steps (the diffusion's network evaluations), each refining the last estimate."""
    return sampler.steps if model.config.self_condition and isinstance(sampler, Sampler) else 1


@torch.no_grad()
def fuse(model: Denoiser, lr_hsi, hr_msi, ratio: int, sampler: Sampler | Schedule | None = None, mode: str = "diffusion",
         tile: int | None = None, overlap: int = 0, n_samples: int = 1, seed: int = 0,
         device: str | torch.device = "cpu", tile_batch: int = 8, views: int = 1,
         operators: tuple[PSF, np.ndarray] | None = None, consistency: int = 0,
         base: np.ndarray | None = None) -> FusionResult:
    """Estimate the HR-HSI from one ``lr_hsi`` (L, h, w) and ``hr_msi`` (l, H, W) on [0, 1].

    ``sampler``: any ``hsrdiff.diffusion.Sampler`` (a ``Schedule`` means the ancestral sampler on
    its levels); unused in regression mode. Sample i starts from the seed ``seed + i`` and fuses
    view ``i mod views`` of the inputs (``DIHEDRAL_VIEWS``: rotated and mirrored, the result turned
    back); regression, which draws no noise, gives one sample per view. With ``consistency`` > 0
    each sample is then projected onto the images that explain the observations under
    ``operators`` (the PSF and the SRF matrix): ``consistency`` CGLS iterations of
    :func:`hsrdiff.degradation.project_onto_observations`. ``base``: the model's base of these
    observations (L, H, W) on [0, 1], computed beforehand (the workflow's base file); None: the
    model computes it (per view).
    """
    import time

    if not 1 <= views <= len(DIHEDRAL_VIEWS):
        raise DataError(f"sampling.views must be 1 to {len(DIHEDRAL_VIEWS)}; got {views}")
    if consistency < 0:
        raise DataError(f"sampling.consistency must be 0 (off) or a number of iterations; got {consistency}")
    if consistency and operators is None:
        raise DataError(f"sampling.consistency {consistency} needs the observations' PSF and SRF; none were given "
                        "(set sampling.consistency to 0 to fuse without the projection)")
    lr_data = torch.as_tensor(np.asarray(lr_hsi), dtype=torch.float32)[None].to(device)
    msi_data = torch.as_tensor(np.asarray(hr_msi), dtype=torch.float32)[None].to(device)
    lr, msi = to_model_range(lr_data), to_model_range(msi_data)
    if msi.shape[-2] != lr.shape[-2] * ratio or msi.shape[-1] != lr.shape[-1] * ratio:
        raise DataError(f"hr_msi {tuple(msi.shape[1:])} is not lr_hsi {tuple(lr.shape[1:])} times the ratio {ratio}")
    model = model.to(device).eval()
    if base is not None:
        if tuple(np.shape(base)) != (lr.shape[1], *msi.shape[-2:]):
            raise DataError(f"base of shape {tuple(np.shape(base))}; expected {(lr.shape[1], *msi.shape[-2:])} (the HR-HSI's)")
        base = to_model_range(torch.as_tensor(np.asarray(base), dtype=torch.float32)[None].to(device))
    passes = regression_passes(model, sampler)
    if mode == "regression":
        n_samples = min(n_samples, views)
    else:
        if sampler is None or isinstance(sampler, Schedule):
            sampler = AncestralSampler(sampler or Schedule.from_config({"steps": 100, "beta_start": 1e-4, "beta_end": 0.1}))
        # x0_fn clips the image itself; the variable it returns need not lie in [-1, 1]
        sampler = copy.copy(sampler)
        sampler.clip = None
    t0 = time.perf_counter()
    samples: list[torch.Tensor] = [torch.empty(0)] * n_samples
    with torch.inference_mode():
        # One view at a time: only its conditions are held in memory.
        for view in range(min(views, n_samples)):
            rot, flip = DIHEDRAL_VIEWS[view]
            x0_fn = TiledDenoiser(model, dihedral(lr, rot, flip), dihedral(msi, rot, flip), ratio, tile, overlap, tile_batch,
                                  None if base is None else dihedral(base, rot, flip))
            shape = (1, lr.shape[1], *x0_fn.base.shape[-2:])
            for i in range(view, n_samples, views):
                x0_fn.reset()
                if mode == "regression":
                    # a self-conditioned twin refines its own estimate as often as the sampler
                    # calls the diffusion network
                    for _ in range(passes):
                        y = x0_fn(torch.zeros(shape, device=device), torch.zeros(1, device=device))
                else:
                    generator = torch.Generator(device=device).manual_seed(seed + i)
                    y = sampler.sample(x0_fn, shape, device=device, generator=generator)
                samples[i] = undo_dihedral(to_data_range(x0_fn.to_image(y)).clamp(0, 1), rot, flip)
                if consistency:
                    psf, srf = operators
                    samples[i] = project_onto_observations(samples[i], lr_data, msi_data, psf, srf, consistency).clamp(0, 1)
        stack = torch.cat(samples)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        std = stack.std(dim=0, unbiased=False).cpu().numpy() if len(samples) > 1 else None
        return FusionResult(stack.mean(dim=0).cpu().numpy(), std, time.perf_counter() - t0)


def build_sampler(schedule_cfg: Mapping[str, Any], sampling_cfg: Mapping[str, Any],
                  train_schedule_cfg: Mapping[str, Any] | None = None, sampler: str | None = None,
                  steps: int | None = None) -> Sampler:
    """The sampler of ``sampling.sampler`` (or ``sampler``) over the levels of
    ``diffusion.sample_schedule`` (``steps`` overrides its count); ``train_schedule_cfg`` is
    needed by the ``train`` spacing only."""
    try:
        levels = sampling_levels(schedule_cfg, train_schedule_cfg, steps)
        return make_sampler(sampler or sampling_cfg.get("sampler") or "ancestral", levels, eta=float(sampling_cfg.get("eta") or 0.0))
    except ValueError as exc:
        raise DataError(f"sampling settings: {exc}") from exc


def resolve_device(name: str = "auto") -> torch.device:
    """auto (CUDA when present), cpu, or cuda[:N], refused with a message when absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DataError(f"device '{name}': expected auto, cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device '{name}': this PyTorch build or machine has no CUDA device; use --device cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise DataError(f"device '{name}': expected auto, cpu or cuda[:N]")
    return device


class Fuser:
    """A weights file ready to fuse: the network loaded once on the chosen device, with the
    sampling schedule and settings of the configuration (``diffusion.sample_schedule``, ``sampling``).

    The one inference path of the package: the workflow's ``sample`` rule, ``hsrdiff fuse`` and
    the real-pair experiment all fuse through it.
    """

    def __init__(self, weights: str | Path, schedule_cfg: Mapping[str, Any], sampling_cfg: Mapping[str, Any]):
        self.weights = Path(weights)
        self.device = resolve_device(sampling_cfg.get("device", "auto"))
        self.model, self.blob = load_weights(weights, self.device)
        self.schedule_cfg = dict(schedule_cfg)
        self.sampling = {k: sampling_cfg.get(k) for k in ("sampler", "eta", "tile", "overlap", "tile_batch", "n_samples", "views", "consistency", "seed")}
        train_schedule = (self.blob.get("diffusion") or {}).get("train_schedule")
        self.sampler = build_sampler(self.schedule_cfg, self.sampling, train_schedule)
        self.consistency_applied = 0  # set by each call: the projection's iterations, 0 without operators

    @property
    def hsi_bands(self) -> int:
        return int(self.blob["model_config"]["hsi_bands"])

    @property
    def msi_bands(self) -> int:
        return int(self.blob["model_config"]["msi_bands"])

    @property
    def ratio(self) -> int:
        return int(self.blob["ratio"])

    def check(self, lr_hsi: np.ndarray, hr_msi: np.ndarray, names: tuple[str, str] = ("lr_hsi", "hr_msi")) -> None:
        """Refuse inputs this model cannot fuse, with a message that names them and says why."""
        expected = {names[0]: self.hsi_bands, names[1]: self.msi_bands}
        for (name, bands), arr in zip(expected.items(), (lr_hsi, hr_msi)):
            if arr.ndim != 3:
                raise DataError(f"{name}: shape {arr.shape}; expected 3 axes (bands, H, W)")
            if arr.shape[0] != bands:
                hint = f"; it looks like (H, W, bands): transpose it to (bands, H, W)" if arr.shape[-1] == bands else ""
                raise DataError(f"{name}: shape {arr.shape}, {arr.shape[0]} bands first; the model {self.weights.name} "
                                f"fuses (bands, H, W) cubes of {bands} bands{hint}")
            finite = np.isfinite(arr)
            if not finite.all():
                first = tuple(int(i) for i in np.argwhere(~finite)[0])
                raise DataError(f"{name}: {int((~finite).sum())} NaN or infinite values (the first at {first}); "
                                "fusion needs finite values")
            low, high = float(arr.min()), float(arr.max())
            if low < -INPUT_TOLERANCE or high > 1 + INPUT_TOLERANCE:
                raise DataError(f"{name}: values from {low:.4g} to {high:.4g}; expected reflectance-like values on [0, 1] "
                                "(scale the data first; hsrdiff fuse --scale divides integer data)")
        h, w = lr_hsi.shape[1:]
        if hr_msi.shape[1:] != (h * self.ratio, w * self.ratio):
            raise DataError(f"{names[1]}: {hr_msi.shape[1]}x{hr_msi.shape[2]} pixels; the model's ratio is {self.ratio}, "
                            f"so {names[0]} of {h}x{w} needs {h * self.ratio}x{w * self.ratio}")

    def __call__(self, lr_hsi: np.ndarray, hr_msi: np.ndarray, operators: tuple[PSF, np.ndarray] | None = None,
                 base: np.ndarray | None = None) -> FusionResult:
        """Fuse ``lr_hsi`` (L, h, w) and ``hr_msi`` (l, h * ratio, w * ratio) on [0, 1].

        ``operators``: the observations' (PSF, SRF matrix), which ``sampling.consistency`` needs;
        without them the samples are not projected (``consistency_applied`` says which happened).
        ``base``: the model's base of these observations, computed beforehand (``fuse``).
        """
        self.check(lr_hsi, hr_msi)
        s = self.sampling
        self.consistency_applied = int(s["consistency"] or 0) if operators is not None else 0
        return fuse(self.model, lr_hsi, hr_msi, self.ratio, self.sampler, mode=self.blob["mode"],
                    tile=s["tile"], overlap=int(s["overlap"] or 0), n_samples=int(s["n_samples"] or 1),
                    seed=int(s["seed"] or 0), device=self.device, tile_batch=int(s["tile_batch"] or 8),
                    views=int(s["views"] or 1), operators=operators, consistency=self.consistency_applied, base=base)

    def provenance(self) -> dict[str, Any]:
        """Attributes of a fused file that say which weights and settings made it."""
        return {"weights_file": str(self.weights), "weights_sha256": describe(self.weights)["sha256"],
                "mode": self.blob["mode"], "stage": self.blob.get("stage", ""), "schedule": json.dumps(self.schedule_cfg),
                "sampling": json.dumps(self.sampling), "consistency_applied": self.consistency_applied,
                "device": str(self.device)}


def fuse_files(weights: str | Path, lr_hsi: np.ndarray, hr_msi: np.ndarray, out: str | Path,
               schedule_cfg: Mapping[str, Any], sampling_cfg: Mapping[str, Any],
               wavelengths: np.ndarray | None = None, provenance: Mapping[str, Any] | None = None,
               operators: tuple[PSF, np.ndarray] | None = None, base_file: str | Path | None = None) -> FusionResult:
    """Load a weights file, fuse one scene and write it with its provenance. ``base_file``: the
    model's base of the scene computed beforehand (``hsrdiff.files.write_base``; checked to be
    the model's base)."""
    fuser = Fuser(weights, schedule_cfg, sampling_cfg)
    base = None
    if base_file is not None:
        base = read_base(base_file, fuser.model.config.base_name(), (lr_hsi.shape[0], *hr_msi.shape[1:])).base
        provenance = {**(provenance or {}), "base_file": str(base_file)}
    result = fuser(lr_hsi, hr_msi, operators, base)
    if not np.isfinite(result.fused).all() or (result.std is not None and not np.isfinite(result.std).all()):
        raise DataError(f"{weights}: the fusion of {out} holds NaN or infinite values (the weights may be corrupt); nothing written")
    write_fused(out, result, wavelengths, {"method": "hsrdiff", **fuser.provenance(), **(provenance or {})})
    return result


@torch.no_grad()
def x0_quality_by_noise_level(weights: str | Path, observation_files, levels=(0.0, 0.5, 0.9, 0.99, 0.999, 0.9999),
                              seed: int = 0, device: str = "auto") -> list[dict[str, float]]:
    """Does a trained denoiser use its noisy input? For each noise level sqrt(gamma), the PSNR of
    x0_hat from the ground truth noised at that level, and of the noised input itself, averaged
    over the observation files (whole images, no tiling). A network that ignores x_t scores the
    same at every level; one that uses it improves as the noise falls."""
    from hsrdiff.diffusion import q_sample
    from hsrdiff.files import read_observations
    from hsrdiff.metrics import psnr

    dev = resolve_device(device)
    model, _ = load_weights(weights, dev)
    scores = {level: [] for level in levels}
    for path in observation_files:
        obs = read_observations(path)
        gt = torch.as_tensor(obs.need("gt"))[None].to(dev)
        lr_hsi = to_model_range(torch.as_tensor(obs.lr_hsi)[None].to(dev))
        hr_msi = to_model_range(torch.as_tensor(obs.hr_msi)[None].to(dev))
        base = model.base(lr_hsi, hr_msi)
        cond = model.encode(lr_hsi, hr_msi, base)
        for level in levels:
            eps = torch.randn(gt.shape, generator=torch.Generator().manual_seed(seed)).to(dev)
            sqrt_gamma = torch.tensor([level], device=dev)
            x_t = q_sample(model.to_diffusion(to_model_range(gt), base), sqrt_gamma, eps)
            x0_hat = to_data_range(model.denoise(x_t, sqrt_gamma, cond)).clamp(0, 1)
            x_t_image = to_data_range(model.from_diffusion(x_t, base)).clamp(0, 1)  # what the noisy input says of the image
            scores[level].append((psnr(x0_hat[0].cpu().numpy(), obs.gt), psnr(x_t_image[0].cpu().numpy(), obs.gt)))
    return [{"sqrt_gamma": level, "noise_std": float((1 - level**2) ** 0.5), "x0_hat_psnr": float(np.mean([s[0] for s in v])),
             "x_t_psnr": float(np.mean([s[1] for s in v]))} for level, v in scores.items()]
