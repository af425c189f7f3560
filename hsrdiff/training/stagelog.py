"""What a training stage records beside its checkpoints: ``log.csv``, ``attempts.csv``, a progress bar.

- ``log.csv``: one row every ``log_every`` steps with the loss terms averaged over the interval;
  rows past a resumed step (logged after the last checkpoint of a killed run) are dropped, so no
  step appears twice.
- ``attempts.csv``: one row per start, resume, interruption and end of the stage's process: how
  a stage spread over several SLURM jobs (time limits, preemption) and what each resubmission lost.
"""

from __future__ import annotations

import csv
import datetime
import os
import socket
import sys
import time
from pathlib import Path

LOG_FIELDS = ("step", "loss", "l1", "lr_term", "msi_term", "sam_term", "learning_rate", "patches_per_s", "elapsed_s")
ATTEMPT_FIELDS = ("time_utc", "event", "step", "iterations", "world_size", "slurm_job_id", "host")
LOSS_TERMS = ("loss", "l1", "lr_term", "msi_term", "sam_term")


def _append_csv(path: Path, row: dict, fields: tuple[str, ...]) -> None:
    """Append one row, with the header first when the file is new."""
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        if new:
            writer.writeheader()
        writer.writerow(row)


def _truncate_csv(path: Path, start: int) -> None:
    """Keep the rows up to step ``start`` (a new file with its header when starting at 0)."""
    rows = []
    if start and path.exists():
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= start]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


class StageLog:
    """The records of one stage on the main rank; every method is a no-op on the other ranks."""

    def __init__(self, directory: Path, stage: str, start: int, iterations: int, world_size: int, log_every: int,
                 is_main: bool, logger):
        self.directory, self.stage, self.iterations, self.world_size = directory, stage, iterations, world_size
        self.log_every, self.is_main, self.logger = log_every, is_main, logger
        self.csv_path = directory / "log.csv"
        self.sums, self.n_steps, self.n_patches = dict.fromkeys(LOSS_TERMS, 0.0), 0, 0
        self.t0 = self.t_last = time.perf_counter()
        self.progress = None
        if is_main:
            directory.mkdir(parents=True, exist_ok=True)
            _truncate_csv(self.csv_path, start)
            if sys.stderr.isatty():
                from tqdm import tqdm

                self.progress = tqdm(total=iterations, initial=start, desc=f"train {stage}", unit="step")

    def attempt(self, event: str, step: int) -> None:
        """``event``: start, resume, interrupted or done."""
        if self.is_main:
            _append_csv(self.directory / "attempts.csv", {
                "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "event": event,
                "step": step, "iterations": self.iterations, "world_size": self.world_size,
                "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""), "host": socket.gethostname(),
            }, ATTEMPT_FIELDS)

    def step(self, step: int, terms: dict, patches: int, learning_rate: float) -> None:
        """Account one finished step (``terms``: the loss terms as tensors); write a row when due."""
        for k in self.sums:
            self.sums[k] += terms[k].detach()  # no .item() here: a GPU sync every step
        self.n_steps += 1
        self.n_patches += patches
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix(loss=f"{terms['loss'].item():.4f}")
        if self.is_main and (step % self.log_every == 0 or step == self.iterations):
            now = time.perf_counter()
            # Means over the interval: single-batch losses swing with the sampled noise level.
            row = {"step": step, **{k: f"{float(v) / self.n_steps:.6g}" for k, v in self.sums.items()},
                   "learning_rate": learning_rate, "patches_per_s": f"{self.n_patches / (now - self.t_last):.2f}",
                   "elapsed_s": f"{now - self.t0:.1f}"}
            _append_csv(self.csv_path, row, LOG_FIELDS)
            self.logger.info("stage %s step %d/%d loss %s (%s patches/s)", self.stage, step, self.iterations, row["loss"],
                             row["patches_per_s"])
            self.t_last, self.n_patches, self.n_steps = now, 0, 0
            self.sums = dict.fromkeys(self.sums, 0.0)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
