"""The training loop of one progressive stage (METHOD.md §5), readable top to bottom:
:func:`build` (network, initial weights, optimizer, EMA), :func:`resume` (from the stage's own
checkpoints, when they match), :func:`train_step` (one optimisation step, also what
``hsrdiff bench-train`` times) and :func:`train_stage`, the loop that ties them together with the
stage's records (:mod:`hsrdiff.training.stagelog`).

Reproducible by construction: the patches of step s, their flips/rotations, the noise levels and
the noise are drawn from a generator seeded by (seed, stage, s) for the *global* batch, and each
rank takes its slice. So a run resumed at step k continues exactly as if never stopped, and N
ranks with DistributedDataParallel compute the same update as one process on the whole batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from hsrdiff.bases import base_operators
from hsrdiff.data.patches import BASE_PREFIX, PatchDataset
from hsrdiff.degradation import PSF
from hsrdiff.diffusion import (
    Schedule,
    fusion_loss,
    q_sample,
    sample_noise_level,
    sample_noise_level_log_uniform,
    to_data_range,
    to_model_range,
)
from hsrdiff.errors import ConfigError
from hsrdiff.methods import model_base_name
from hsrdiff.models import Denoiser, ModelConfig, build_model, load_file, save_atomic
from hsrdiff.training import distributed
from hsrdiff.training.checkpoint import latest_checkpoint, save_checkpoint
from hsrdiff.training.ema import EMA
from hsrdiff.training.settings import Stage, TrainingSettings
from hsrdiff.training.stagelog import StageLog

log = logging.getLogger(__name__)

INTERRUPTED_EXIT_CODE = 75  # EX_TEMPFAIL: stopped on request, checkpoint written, rerun resumes


class TrainingInterrupted(Exception):
    """SIGTERM/SIGUSR1 arrived; a checkpoint was written and the stage can resume."""


@dataclass
class StagePaths:
    patches: Path
    weights: Path  # the stage's final artefact (EMA weights + model config)
    checkpoint_dir: Path  # resumable state and the CSV logs; not a workflow output
    init_weights: Path | None = None  # the previous stage's weights
    loss_curve: Path | None = None


# -- the random draws of a step ------------------------------------------------------------------
def step_seed(seed: int, stage: str, step: int) -> int:
    digest = hashlib.sha256(f"{seed}/{stage}/{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def batch_plan(seed: int, stage: str, step: int, n_patches: int, batch: int, square: bool) -> list[tuple[int, int, int]]:
    """(patch index, quarter turns, flip) for each patch of the global batch of ``step``."""
    g = torch.Generator().manual_seed(step_seed(seed, stage, step))
    idx = torch.randint(n_patches, (batch,), generator=g)
    rot = torch.randint(4 if square else 1, (batch,), generator=g)
    flip = torch.randint(2, (batch,), generator=g)
    return list(zip(idx.tolist(), rot.tolist(), flip.tolist()))


class _StepBatches:
    """Batch sampler: the local slice of each step's global batch plan, from ``start`` on."""

    def __init__(self, seed, stage, start, stop, n_patches, batch, square, rank, world):
        self.args = (seed, stage, n_patches, batch, square)
        self.start, self.stop, self.rank, self.local = start, stop, rank, batch // world

    def __iter__(self):
        seed, stage, n, batch, square = self.args
        for step in range(self.start, self.stop):
            plan = batch_plan(seed, stage, step, n, batch, square)
            yield plan[self.rank * self.local : (self.rank + 1) * self.local]

    def __len__(self):
        return self.stop - self.start


def self_condition_step(seed: int, stage: str, step: int) -> bool:
    """Whether a self-conditioned network's step ``step`` feeds it its own first estimate (half of
    the steps, as Chen et al. 2022; the same on every rank and after a resume)."""
    g = torch.Generator().manual_seed(step_seed(seed, stage, step) ^ 0x5E1F)
    return bool(torch.rand((), generator=g) < 0.5)


def step_noise(seed, stage, step, schedule, shape, rank, local, settings: TrainingSettings):
    """Noise level (B,) and noise (B, ...) of the global batch of ``step``, sliced to this rank."""
    if settings.mode == "regression":
        return torch.zeros(local), torch.zeros((local, *shape[1:]))
    g = torch.Generator().manual_seed(step_seed(seed, stage, step) ^ 0x5EED)
    if settings.noise_levels == "log_uniform":
        sqrt_gamma = sample_noise_level_log_uniform(shape[0], settings.noise_std_range, g)
    else:
        sqrt_gamma = sample_noise_level(schedule, shape[0], g)
    eps = torch.randn(shape, generator=g)
    sl = slice(rank * local, (rank + 1) * local)
    return sqrt_gamma[sl], eps[sl]


# -- building and resuming ---------------------------------------------------------------------
@dataclass
class Parts:
    """What a stage trains: the network, the parameters it updates, the optimizer and the EMA."""

    model: Denoiser
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    ema: EMA


def _residual_scale(dataset: PatchDataset, base: str, psf: PSF, srf, init_weights: Path | None, count: int = 256) -> float:
    """``model.residual_scale: auto``: the previous stage's value, or, for a first stage, the
    standard deviation of x0 - base on the [-1, 1] scale over up to ``count`` patches spread
    through the file (two significant digits, so that it reads as a setting)."""
    from hsrdiff.baselines import fusion_base

    if init_weights is not None:
        return float(load_file(init_weights)["model_config"]["residual_scale"])
    picks = torch.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().long().unique().tolist()
    residuals = []
    for item in map(dataset.__getitem__, picks):
        patch_base = item.get(BASE_PREFIX + base)
        if patch_base is None:  # a file cut without this base: the base of the patch alone
            patch_base = fusion_base(base, item["lr_hsi"][None], item["hr_msi"][None], psf, srf)[0]
        residuals.append((2 * (item["gt"] - patch_base)).flatten())
    std = float(torch.cat(residuals).double().std())
    if not std > 0:
        raise ConfigError(f"{dataset.path}: the patches equal their {base} base (residual std {std}); "
                          "set model.residual_scale to a number")
    return float(f"{std:.2g}")


def _trainable(model, which: str) -> list[torch.nn.Parameter]:
    if which == "all":
        return list(model.parameters())
    keep = {id(p) for p in model.second_half_parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return [p for p in model.parameters() if p.requires_grad]


def build(mc: ModelConfig, stage: Stage, settings: TrainingSettings, init_weights: Path | None) -> Parts:
    """The network from the seed (or the previous stage's weights), Adam on its trainable part, the EMA."""
    torch.manual_seed(settings.seed)  # the initial weights: part of what the seed makes reproducible
    model = build_model(mc)
    if init_weights is not None:
        blob = load_file(init_weights)
        if blob["model_config"] != mc.to_dict():
            raise ConfigError(f"{init_weights}: previous stage's model {blob['model_config']} differs from {mc.to_dict()}")
        model.load_state_dict(blob["state_dict"])
    model.activation_checkpointing = settings.activation_checkpointing
    params = _trainable(model, stage.trainable)
    optimizer = torch.optim.Adam(params, lr=stage.learning_rate, betas=(0.9, 0.999))
    return Parts(model, params, optimizer, EMA(model, settings.ema_decay))


def run_fingerprint(stage: Stage, mc: ModelConfig, settings: TrainingSettings, train_schedule: Mapping[str, Any],
                    paths: StagePaths) -> str:
    """What a checkpoint must match to be resumed: settings that change the result, and the inputs.

    Inputs by content, not by name and modification time: `snakemake --touch`, a copy to a
    node's scratch disk or a moved project directory must not throw away hours of training.
    The digest comes from the input's provenance sidecar while its size and mtime match, so a
    large patch file is not hashed again.
    """
    from hsrdiff.provenance import describe

    def identity(path):
        return None if path is None else describe(path)["sha256"]

    blob = {
        "stage": stage.to_dict(), "model": mc.to_dict(), "train_schedule": dict(train_schedule),
        "training": settings.affecting_results(), "patches": identity(paths.patches), "init": identity(paths.init_weights),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def _set_aside(directory: Path) -> Path:
    """Move a stage's checkpoints and logs into ``<dir>/previous`` (replacing an older set)."""
    previous = directory / "previous"
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir(parents=True)
    for item in directory.iterdir():
        if item.name != "previous":
            item.rename(previous / item.name)
    return previous


def resume(parts: Parts, checkpoint_dir: Path, fingerprint: str, iterations: int, stage: str,
           info: distributed.DistInfo) -> int:
    """Load the stage's newest checkpoint into ``parts`` when it belongs to this very run; the step to start at.

    A checkpoint of other settings or inputs, or of a finished run whose weights were removed (a
    forced rerun), is not resumed: the stage starts over, its old checkpoints kept aside.
    """
    ckpt_path = latest_checkpoint(checkpoint_dir)
    ckpt = load_file(ckpt_path) if ckpt_path is not None else None
    distributed.barrier(info)  # every rank has read the checkpoint before rank 0 may move it
    if ckpt is not None and (ckpt.get("fingerprint") != fingerprint or int(ckpt["step"]) >= iterations):
        if info.is_main:
            why = "finished already" if ckpt.get("fingerprint") == fingerprint else "settings, inputs or model changed"
            log.warning("not resuming stage %s from %s (%s); old checkpoints moved to %s", stage, ckpt_path, why,
                        _set_aside(checkpoint_dir))
        distributed.barrier(info)
        return 0
    if ckpt is None:
        return 0
    parts.model.load_state_dict(ckpt["model"])
    parts.ema.load_state_dict(ckpt["ema"])
    parts.optimizer.load_state_dict(ckpt["optimizer"])
    start = int(ckpt["step"])
    if info.is_main:
        log.info("resuming stage %s from %s (step %d of %d)", stage, ckpt_path, start, iterations)
    return start


def _to_device(parts: Parts, device: torch.device) -> None:
    parts.model.to(device)
    parts.ema.to(device)
    for state in parts.optimizer.state.values():
        for k, v in state.items():
            if torch.is_tensor(v):
                state[k] = v.to(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


# -- one step ---------------------------------------------------------------------------------------
def train_step(net: torch.nn.Module, parts: Parts, batch: Mapping[str, torch.Tensor], sqrt_gamma: torch.Tensor,
               eps: torch.Tensor, psf: PSF, srf: torch.Tensor, settings: TrainingSettings,
               use_bf16: bool, self_condition: bool = False) -> dict[str, torch.Tensor]:
    """One optimisation step on ``batch`` ({gt, lr_hsi, hr_msi} and optionally the scene-level
    ``base``, on [0, 1], on the device) at noise
    levels ``sqrt_gamma`` (B,) with noise ``eps``; returns the loss terms. ``net``: the model, or
    its DDP/compiled wrapper. ``self_condition``: first estimate x0 without gradients and train
    the network to refine that estimate (a self-conditioned model's other steps see zeros)."""
    gt, lr_hsi, hr_msi = batch["gt"], to_model_range(batch["lr_hsi"]), to_model_range(batch["hr_msi"])
    model = parts.model
    base = to_model_range(batch["base"]) if "base" in batch else model.base(lr_hsi, hr_msi)
    x_t = q_sample(model.to_diffusion(to_model_range(gt), base), sqrt_gamma, eps) if settings.mode == "diffusion" else eps
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_bf16):
        previous = None
        if self_condition:
            with torch.no_grad():
                previous = net(x_t, sqrt_gamma, lr_hsi, hr_msi, base).float().clamp(-1, 1)
        x0_hat = net(x_t, sqrt_gamma, lr_hsi, hr_msi, base, previous)
    terms = fusion_loss(to_data_range(x0_hat.float()), gt, batch["lr_hsi"], batch["hr_msi"], psf, srf, settings.lambda_lr,
                        settings.lambda_msi, settings.lambda_sam)
    parts.optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    if settings.grad_clip_norm:
        torch.nn.utils.clip_grad_norm_(parts.params, float(settings.grad_clip_norm))
    parts.optimizer.step()
    return terms


class _StopFlag:
    """Set by SIGTERM/SIGUSR1 (what SLURM sends before a time-limit kill)."""

    def __init__(self):
        self.raised: int | None = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass
        return self

    def _handle(self, signum, frame):
        self.raised = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


# -- the stage --------------------------------------------------------------------------------------
def train_stage(
    paths: StagePaths,
    stage: Mapping[str, Any],
    model_cfg: Mapping[str, Any],
    training: Mapping[str, Any],
    diffusion: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> dict:
    """Train one stage to its last step, resuming from ``paths.checkpoint_dir``.

    ``stage``, ``model_cfg``, ``training``, ``diffusion``: the config blocks (a stage of
    ``training.stages``; ``diffusion`` needs ``train_schedule``). Writes ``paths.weights`` (rank 0)
    and returns a summary. Raises :class:`TrainingInterrupted` after writing a checkpoint when
    SIGTERM/SIGUSR1 arrives.
    """
    stage_cfg, settings = Stage.from_dict(stage), TrainingSettings.from_dict(training)
    info = distributed.setup(settings.device)
    name, batch = stage_cfg.name, stage_cfg.batch_size
    if batch % info.world_size:
        raise ConfigError(f"stage {name}: batch_size {batch} is not divisible by the {info.world_size} processes")
    local = batch // info.world_size

    base = model_base_name({"base": ModelConfig.base, **model_cfg})
    dataset = PatchDataset(paths.patches, bases=[base])  # read only the base this network adds to
    iterations = stage_cfg.steps(len(dataset))
    psf, srf = dataset.operators()
    first = dataset[0]
    needs_psf, needs_srf = base_operators(base)  # the weights file keeps what the base needs
    if needs_psf:
        model_cfg = {**model_cfg, "base_psf": psf.to_dict()}
    if needs_srf:
        model_cfg = {**model_cfg, "base_srf": srf.astype(float).tolist()}
    if model_cfg.get("residual_scale") == "auto":  # only the residual diffusion uses it
        scale = _residual_scale(dataset, base, psf, srf, paths.init_weights) if model_cfg.get("diffuse") == "residual" else 1.0
        model_cfg = {**model_cfg, "residual_scale": scale}
    mc = ModelConfig(hsi_bands=first["gt"].shape[0], msi_bands=first["hr_msi"].shape[0], **model_cfg)
    base_key = BASE_PREFIX + base
    if base_key not in first:
        log.warning("%s holds no %s: the network's base is computed on each patch, not cut from the scene's "
                    "as at test time (cut the patches again with bases=[%s])", paths.patches, base_key, base)
    parts = build(mc, stage_cfg, settings, paths.init_weights)
    fingerprint = run_fingerprint(stage_cfg, mc, settings, diffusion["train_schedule"], paths)
    start = resume(parts, paths.checkpoint_dir, fingerprint, iterations, name, info)

    device = info.device
    _to_device(parts, device)
    use_bf16 = device.type == "cuda" and settings.precision in ("auto", "bf16")
    net = DistributedDataParallel(parts.model, device_ids=[device.index] if device.type == "cuda" else None) \
        if info.distributed else parts.model
    if settings.compile:
        net = torch.compile(net)
    schedule = Schedule.from_config(diffusion["train_schedule"])
    srf_t = torch.as_tensor(srf, device=device)
    loader = DataLoader(
        dataset,
        batch_sampler=_StepBatches(settings.seed, name, start, iterations, len(dataset), batch, dataset.square,
                                   info.rank, info.world_size),
        num_workers=settings.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    records = StageLog(paths.checkpoint_dir, name, start, iterations, info.world_size, settings.log_every, info.is_main, log)
    records.attempt("resume" if start else "start", start)

    def checkpoint(step):
        if info.is_main:
            save_checkpoint(paths.checkpoint_dir, step, {
                "stage": name, "fingerprint": fingerprint, "model_config": mc.to_dict(), "model": parts.model.state_dict(),
                "ema": parts.ema.state_dict(), "optimizer": parts.optimizer.state_dict(), "settings": dict(training),
                "stage_settings": dict(stage),
            })

    parts.model.train()
    step = start
    with _StopFlag() as stop:
        for batch_data in loader:
            batch_data = {("base" if k == base_key else k): v.to(device, non_blocking=True) for k, v in batch_data.items()}
            sqrt_gamma, eps = step_noise(settings.seed, name, step, schedule, (batch, *batch_data["gt"].shape[1:]),
                                         info.rank, local, settings)
            for group in parts.optimizer.param_groups:
                group["lr"] = settings.learning_rate(step, iterations, stage_cfg.learning_rate)
            terms = train_step(net, parts, batch_data, sqrt_gamma.to(device), eps.to(device), psf, srf_t, settings, use_bf16,
                               mc.self_condition and self_condition_step(settings.seed, name, step))
            step += 1
            parts.ema.update(parts.model, step)
            records.step(step, terms, local * info.world_size, parts.optimizer.param_groups[0]["lr"])
            if distributed.any_rank(stop.raised is not None, info):
                checkpoint(step)
                records.attempt("interrupted", step)
                distributed.teardown()
                raise TrainingInterrupted(f"stage {name} stopped by a signal at step {step}; checkpoint written to {paths.checkpoint_dir}")
            if step % settings.checkpoint_every == 0 and step < iterations:
                checkpoint(step)
    records.close()

    summary = {"stage": name, "steps": iterations, "resumed_from": start, "seconds": records.seconds, "rank": info.rank}
    if info.is_main:
        # Weights first, then the final checkpoint: a finished checkpoint thus means the weights
        # were written, and finding one on a rerun means the rerun was asked for.
        save_atomic({
            "model_config": mc.to_dict(), "state_dict": parts.ema.state_dict(), "stage": name, "step": iterations,
            "mode": settings.mode, "diffusion": dict(diffusion), "training": dict(training), "stage_settings": dict(stage),
            "ratio": psf.ratio, "metadata": dict(metadata or {}),
        }, paths.weights)
        checkpoint(iterations)
        records.attempt("done", iterations)
        if paths.loss_curve is not None:
            from hsrdiff.training.plots import plot_loss_curve

            plot_loss_curve(records.csv_path, paths.loss_curve, title=f"{(metadata or {}).get('dataset', '')} {name}".strip())
        log.info("stage %s done: %s -> %s", name, summary, paths.weights)
    distributed.teardown()
    return summary
