"""Checkpoints: the resumable state of a training stage.

A checkpoint ``<dir>/step_<N>.pt`` holds model, EMA, optimizer, step and the configuration; the
newest is resumed from. Batches and noise are functions of (seed, step), so the step is all the
random state there is. Written to a temporary name and renamed, so a kill never leaves a
truncated file. (Weights files, what a finished stage hands on, are :mod:`hsrdiff.models.weights`.)
"""

from __future__ import annotations

import re
from pathlib import Path

from hsrdiff.models.weights import save_atomic

CHECKPOINT = re.compile(r"^step_(\d+)\.pt$")


def latest_checkpoint(directory: str | Path) -> Path | None:
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := CHECKPOINT.match(p.name))]
    return max(found)[1] if found else None


def save_checkpoint(directory: str | Path, step: int, state: dict, keep: int = 2) -> Path:
    directory = Path(directory)
    path = directory / f"step_{step:08d}.pt"
    save_atomic({**state, "step": step}, path)
    old = sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := CHECKPOINT.match(p.name)))
    for _, p in old[:-keep]:
        p.unlink(missing_ok=True)
    return path
