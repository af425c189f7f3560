"""Checkpoints (resumable training state) and weights files (what a stage hands on).

- A checkpoint ``<dir>/step_<N>.pt`` holds model, EMA, optimizer, step and the configuration;
  the newest is resumed from. Batches and noise are functions of (seed, step), so the step is
  all the random state there is.
- A weights file holds the EMA weights and the model configuration: the file alone rebuilds the
  network (``load_weights``).
Both are written to a temporary name and renamed, so a kill never leaves a truncated file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from hsrdiff.errors import DataError
from hsrdiff.io import atomic_path
from hsrdiff.models import ModelConfig, build_model

CHECKPOINT = re.compile(r"^step_(\d+)\.pt$")


def save_atomic(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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


def load_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"weights or checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for corrupt files
        raise DataError(f"{path}: not a readable checkpoint ({exc})") from exc


def load_weights(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild the network stored in a weights file; returns (model in eval mode, file content)."""
    blob = load_file(path)
    for key in ("model_config", "state_dict"):
        if key not in blob:
            raise DataError(f"{path}: not an hsrdiff weights file (no '{key}')")
    model = build_model(ModelConfig.from_dict(blob["model_config"]))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), blob
