"""Weights files: what a training stage hands on, and all that inference needs.

A weights file holds the EMA weights (``state_dict``), the model configuration (``model_config``:
the file alone rebuilds the network), the ratio and the mode it was trained in, and the settings
of its stage. Files are written to a temporary name and renamed, so a kill never leaves a
truncated file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hsrdiff.errors import DataError
from hsrdiff.io import atomic_path
from hsrdiff.models.cdformer import Denoiser, ModelConfig, build_model


def save_atomic(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_file(path: str | Path) -> dict:
    """The content of a weights or checkpoint file, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"weights or checkpoint file not found: {path}")
    import pickle

    try:
        # weights_only: tensors and plain values only; a file that holds anything else (code, in
        # a crafted pickle) is refused before any of it runs.
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: refused: it holds objects other than tensors and plain values, which loading "
                        "could execute; not an hsrdiff weights file") from exc
    except Exception as exc:  # torch raises several types for corrupt files
        raise DataError(f"{path}: not a readable weights or checkpoint file ({exc})") from exc
    if not isinstance(blob, dict):
        raise DataError(f"{path}: holds a {type(blob).__name__}, not an hsrdiff weights file (a dict with model_config and state_dict)")
    return blob


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> tuple[Denoiser, dict]:
    """Rebuild the network stored in a weights file; returns (model in eval mode, file content)."""
    blob = load_file(path)
    for key in ("model_config", "state_dict"):
        if key not in blob:
            raise DataError(f"{path}: not an hsrdiff weights file (no '{key}')")
    try:
        model = build_model(ModelConfig.from_dict(blob["model_config"]))
        model.load_state_dict(blob["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise DataError(f"{path}: its model_config and state_dict do not agree ({str(exc).splitlines()[0]})") from exc
    bad = [name for name, t in blob["state_dict"].items() if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise DataError(f"{path}: {len(bad)} weight tensors hold NaN or infinite values (the first: {bad[0]}); the file is unusable")
    return model.to(device).eval(), blob
