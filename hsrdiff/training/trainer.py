"""The training loop of one progressive stage (METHOD.md §5).

Reproducible by construction: the patches of step s, their flips/rotations, the noise levels and
the noise are drawn from a generator seeded by (seed, stage, s) for the *global* batch, and each
rank takes its slice. So a run resumed at step k continues exactly as if never stopped, and N
ranks with DistributedDataParallel compute the same update as one process on the whole batch.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import logging
import math
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from hsrdiff.data.patches import PatchDataset
from hsrdiff.diffusion import Schedule, fusion_loss, q_sample, sample_noise_level, to_data_range, to_model_range
from hsrdiff.errors import ConfigError
from hsrdiff.models import ModelConfig, build_model
from hsrdiff.training import distributed
from hsrdiff.training.checkpoint import latest_checkpoint, load_file, save_atomic, save_checkpoint
from hsrdiff.training.ema import EMA

log = logging.getLogger(__name__)

CSV_FIELDS = ("step", "loss", "l1", "lr_term", "msi_term", "learning_rate", "patches_per_s", "elapsed_s")
# One row per start, interruption and end of a stage's process: how a stage spread over several
# SLURM jobs (time limits, preemption) and what each resubmission lost.
ATTEMPT_FIELDS = ("time_utc", "event", "step", "iterations", "world_size", "slurm_job_id", "host")
INTERRUPTED_EXIT_CODE = 75  # EX_TEMPFAIL: stopped on request, checkpoint written, rerun resumes


class TrainingInterrupted(Exception):
    """SIGTERM/SIGUSR1 arrived; a checkpoint was written and the stage can resume."""


@dataclass
class StagePaths:
    patches: Path
    weights: Path  # the stage's final artefact (EMA weights + model config)
    checkpoint_dir: Path  # resumable state and the CSV log; not a workflow output
    init_weights: Path | None = None  # the previous stage's weights
    loss_curve: Path | None = None


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


def _noise(seed, stage, step, schedule, shape, rank, local, mode):
    """Noise level (B,) and noise (B, ...) of the global batch, sliced to this rank."""
    if mode == "regression":
        return torch.zeros(local), torch.zeros((local, *shape[1:]))
    g = torch.Generator().manual_seed(step_seed(seed, stage, step) ^ 0x5EED)
    sqrt_gamma = sample_noise_level(schedule, shape[0], g)
    eps = torch.randn(shape, generator=g)
    sl = slice(rank * local, (rank + 1) * local)
    return sqrt_gamma[sl], eps[sl]


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


IRRELEVANT_TO_RESULTS = ("num_workers", "log_every", "checkpoint_every", "device", "compile", "activation_checkpointing")


def run_fingerprint(stage, mc: ModelConfig, training, diffusion, paths: StagePaths) -> str:
    """What a checkpoint must match to be resumed: settings that change the result, and the inputs."""
    def identity(path):
        if path is None:
            return None
        st = Path(path).stat()
        return [str(path), st.st_size, st.st_mtime_ns]

    blob = {
        "stage": dict(stage), "model": mc.to_dict(), "train_schedule": dict(diffusion["train_schedule"]),
        "training": {k: v for k, v in training.items() if k not in IRRELEVANT_TO_RESULTS},
        "patches": identity(paths.patches), "init": identity(paths.init_weights),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def _set_aside(directory: Path) -> Path:
    """Move a stage's checkpoints and log into ``<dir>/previous`` (replacing an older set)."""
    import shutil

    previous = directory / "previous"
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir(parents=True)
    for item in directory.iterdir():
        if item.name != "previous":
            item.rename(previous / item.name)
    return previous


def stage_iterations(stage: Mapping[str, Any], n_patches: int) -> int:
    """Steps of a stage: ``iterations``, or ``epochs`` passes over its patches when given."""
    if stage.get("epochs"):
        return max(1, math.ceil(float(stage["epochs"]) * n_patches / int(stage["batch_size"])))
    return int(stage["iterations"])


def _trainable(model, which: str) -> list[torch.nn.Parameter]:
    if which == "all":
        return list(model.parameters())
    keep = {id(p) for p in model.second_half_parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return [p for p in model.parameters() if p.requires_grad]


def train_stage(
    paths: StagePaths,
    stage: Mapping[str, Any],
    model_cfg: Mapping[str, Any],
    training: Mapping[str, Any],
    diffusion: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> dict:
    """Train one stage to ``stage['iterations']`` steps, resuming from ``paths.checkpoint_dir``.

    Writes ``paths.weights`` (rank 0) and returns a summary. Raises :class:`TrainingInterrupted`
    after writing a checkpoint when SIGTERM/SIGUSR1 arrives.
    """
    info = distributed.setup(training.get("device", "auto"))
    name, batch = stage["name"], int(stage["batch_size"])
    if batch % info.world_size:
        raise ConfigError(f"stage {name}: batch_size {batch} is not divisible by the {info.world_size} processes")
    local = batch // info.world_size
    seed, mode = int(training["seed"]), training.get("mode", "diffusion")

    dataset = PatchDataset(paths.patches)
    iterations = stage_iterations(stage, len(dataset))
    psf, srf = dataset.operators()
    first = dataset[0]
    mc = ModelConfig(hsi_bands=first["gt"].shape[0], msi_bands=first["hr_msi"].shape[0], **model_cfg)
    torch.manual_seed(seed)  # the initial weights: part of what the seed makes reproducible
    model = build_model(mc)
    if paths.init_weights is not None:
        blob = load_file(paths.init_weights)
        if blob["model_config"] != mc.to_dict():
            raise ConfigError(f"{paths.init_weights}: previous stage's model {blob['model_config']} differs from {mc.to_dict()}")
        model.load_state_dict(blob["state_dict"])
    model.activation_checkpointing = bool(training.get("activation_checkpointing", False))
    params = _trainable(model, stage.get("trainable", "all"))
    optimizer = torch.optim.Adam(params, lr=float(stage["learning_rate"]), betas=(0.9, 0.999))
    ema = EMA(model, float(training["ema_decay"]))
    start = 0
    fingerprint = run_fingerprint(stage, mc, training, diffusion, paths)
    ckpt_path = latest_checkpoint(paths.checkpoint_dir)
    ckpt = load_file(ckpt_path) if ckpt_path is not None else None
    distributed.barrier(info)  # every rank has read the checkpoint before rank 0 may move it
    if ckpt is not None and (ckpt.get("fingerprint") != fingerprint or int(ckpt["step"]) >= iterations):
        # Another configuration, or a finished run whose weights were removed (a forced rerun):
        # start over, keeping the old checkpoints aside rather than deleting them.
        if info.is_main:
            why = "finished already" if ckpt.get("fingerprint") == fingerprint else "settings, inputs or model changed"
            log.warning("not resuming stage %s from %s (%s); old checkpoints moved to %s", name, ckpt_path, why,
                        _set_aside(paths.checkpoint_dir))
        distributed.barrier(info)
        ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["step"])
        if info.is_main:
            log.info("resuming stage %s from %s (step %d of %d)", name, ckpt_path, start, iterations)

    device = info.device
    model.to(device)
    ema.to(device)
    for state in optimizer.state.values():
        for k, v in state.items():
            if torch.is_tensor(v):
                state[k] = v.to(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    use_bf16 = device.type == "cuda" and training.get("precision", "auto") in ("auto", "bf16")
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if info.distributed else model
    if training.get("compile"):
        net = torch.compile(net)
    schedule = Schedule.from_config(diffusion["train_schedule"])
    srf_t = torch.as_tensor(srf, device=device)
    lambdas = training["loss"]

    loader = DataLoader(
        dataset,
        batch_sampler=_StepBatches(seed, name, start, iterations, len(dataset), batch, dataset.square, info.rank, info.world_size),
        num_workers=int(training.get("num_workers", 0)),
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    csv_path = paths.checkpoint_dir / "log.csv"
    if info.is_main:
        paths.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        _truncate_csv(csv_path, start)

    def attempt(event, at):
        if info.is_main:
            _append_csv(paths.checkpoint_dir / "attempts.csv", {
                "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "event": event,
                "step": at, "iterations": iterations, "world_size": info.world_size,
                "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""), "host": socket.gethostname(),
            }, ATTEMPT_FIELDS)

    attempt("resume" if start else "start", start)
    progress = None
    if info.is_main and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=iterations, initial=start, desc=f"train {name}", unit="step")

    def checkpoint(step):
        if info.is_main:
            save_checkpoint(paths.checkpoint_dir, step, {
                "stage": name, "fingerprint": fingerprint, "model_config": mc.to_dict(), "model": model.state_dict(), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(), "settings": dict(training), "stage_settings": dict(stage),
            })

    every_ckpt, every_log = int(training["checkpoint_every"]), int(training["log_every"])
    model.train()
    t_log, n_log, t0 = time.perf_counter(), 0, time.perf_counter()
    sums, n_steps = dict.fromkeys(("loss", "l1", "lr_term", "msi_term"), 0.0), 0
    step = start
    with _StopFlag() as stop:
        for batch_data in loader:
            gt = batch_data["gt"].to(device, non_blocking=True)
            lr_hsi = batch_data["lr_hsi"].to(device, non_blocking=True)
            hr_msi = batch_data["hr_msi"].to(device, non_blocking=True)
            sqrt_gamma, eps = _noise(seed, name, step, schedule, (batch, *gt.shape[1:]), info.rank, local, mode)
            sqrt_gamma, eps = sqrt_gamma.to(device), eps.to(device)
            x0 = to_model_range(gt)
            x_t = q_sample(x0, sqrt_gamma, eps) if mode == "diffusion" else eps
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_bf16):
                x0_hat = net(x_t, sqrt_gamma, to_model_range(lr_hsi), to_model_range(hr_msi))
            terms = fusion_loss(to_data_range(x0_hat.float()), gt, lr_hsi, hr_msi, psf, srf_t,
                                lambdas["lambda_lr"], lambdas["lambda_msi"])
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if training.get("grad_clip_norm"):
                torch.nn.utils.clip_grad_norm_(params, float(training["grad_clip_norm"]))
            optimizer.step()
            step += 1
            ema.update(model, step)
            n_log += local * info.world_size
            for k in sums:
                sums[k] += terms[k].detach()  # no .item(): a GPU sync every step
            n_steps += 1
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{terms['loss'].item():.4f}")
            if info.is_main and (step % every_log == 0 or step == iterations):
                now = time.perf_counter()
                # Means over the interval: single-batch losses swing with the sampled noise level.
                row = {"step": step, **{k: f"{float(v) / n_steps:.6g}" for k, v in sums.items()},
                       "learning_rate": optimizer.param_groups[0]["lr"], "patches_per_s": f"{n_log / (now - t_log):.2f}",
                       "elapsed_s": f"{now - t0:.1f}"}
                _append_csv(csv_path, row)
                log.info("stage %s step %d/%d loss %s (%s patches/s)", name, step, iterations, row["loss"], row["patches_per_s"])
                t_log, n_log, n_steps = now, 0, 0
                sums = dict.fromkeys(sums, 0.0)
            if distributed.any_rank(stop.raised is not None, info):
                checkpoint(step)
                attempt("interrupted", step)
                distributed.teardown()
                raise TrainingInterrupted(f"stage {name} stopped by a signal at step {step}; checkpoint written to {paths.checkpoint_dir}")
            if step % every_ckpt == 0 and step < iterations:
                checkpoint(step)
    if progress is not None:
        progress.close()

    summary = {"stage": name, "steps": iterations, "resumed_from": start, "seconds": time.perf_counter() - t0,
               "rank": info.rank}
    if info.is_main:
        # Weights first, then the final checkpoint: a finished checkpoint thus means the weights
        # were written, and finding one on a rerun means the rerun was asked for.
        save_atomic({
            "model_config": mc.to_dict(), "state_dict": ema.state_dict(), "stage": name, "step": iterations,
            "mode": mode, "diffusion": dict(diffusion), "training": dict(training), "stage_settings": dict(stage),
            "ratio": psf.ratio, "metadata": dict(metadata or {}),
        }, paths.weights)
        checkpoint(iterations)
        attempt("done", iterations)
        if paths.loss_curve is not None:
            from hsrdiff.training.plots import plot_loss_curve

            plot_loss_curve(csv_path, paths.loss_curve, title=f"{(metadata or {}).get('dataset', '')} {name}".strip())
        log.info("stage %s done: %s -> %s", name, summary, paths.weights)
    distributed.teardown()
    return summary


def _truncate_csv(path: Path, start: int) -> None:
    """Drop rows past the resumed step (logged after the last checkpoint of a killed run)."""
    if start == 0 or not path.exists():
        with open(path, "w", newline="") as fh:
            csv.DictWriter(fh, CSV_FIELDS).writeheader()
        return
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= start]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def _append_csv(path: Path, row: dict, fields: tuple[str, ...] = CSV_FIELDS) -> None:
    """Append one row, with the header first when the file is new."""
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        if new:
            writer.writeheader()
        writer.writerow(row)
