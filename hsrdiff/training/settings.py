"""The ``training`` settings and one stage's settings, parsed once into dataclasses.

Missing keys take the schema's defaults (:func:`hsrdiff.config.schema_defaults`): no code here
or in the trainer restates them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from hsrdiff.config import schema_defaults
from hsrdiff.errors import ConfigError

MODES = ("diffusion", "regression")
LOSS_WEIGHTS = ("lambda_lr", "lambda_msi", "lambda_sam")  # the keys of training.loss


def _known(cls, data: Mapping[str, Any], where: str) -> dict:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(names))}")
    return dict(data)


@dataclass(frozen=True)
class Stage:
    """One progressive stage: patch size, batch, length, learning rate, trainable parameters."""

    name: str
    patch_size: int | str
    batch_size: int
    iterations: int
    epochs: float | None
    learning_rate: float
    trainable: str  # "all" or "second_half"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Stage":
        values = {**schema_defaults("$defs", "stages", "items"), **_known(cls, data, "training stage")}
        missing = [f.name for f in fields(cls) if f.name not in values]
        if missing:
            raise ConfigError(f"training stage {dict(data)}: missing {', '.join(missing)}")
        return cls(**values)

    def steps(self, n_patches: int) -> int:
        """Steps of the stage: ``iterations``, or ``epochs`` passes over its patches when given."""
        if self.epochs:
            return max(1, math.ceil(float(self.epochs) * n_patches / self.batch_size))
        return self.iterations

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainingSettings:
    """The ``training`` block of a trained method (its ``stages`` aside)."""

    seed: int
    ema_decay: float
    checkpoint_every: int
    log_every: int
    num_workers: int
    grad_clip_norm: float | None
    precision: str
    compile: bool
    activation_checkpointing: bool
    device: str
    lambda_lr: float
    lambda_msi: float
    lambda_sam: float
    noise_levels: str  # wavegrad or log_uniform
    noise_std_range: tuple[float, float]
    lr_schedule: dict  # warmup_steps, decay, final_learning_rate, step_at
    mode: str = "diffusion"  # hsrdiff's; trained_methods set "regression" for the regression twin

    # What changes how a stage runs, not what it computes: not part of a checkpoint's fingerprint.
    RUN_ONLY = ("num_workers", "log_every", "checkpoint_every", "device", "compile", "activation_checkpointing")

    @classmethod
    def from_dict(cls, training: Mapping[str, Any]) -> "TrainingSettings":
        values = {**schema_defaults("properties", "training"), **training}
        values.pop("stages", None)
        loss = {**schema_defaults("properties", "training", "properties", "loss"), **(values.pop("loss", None) or {})}
        values["lr_schedule"] = {**schema_defaults("properties", "training", "properties", "lr_schedule"),
                                 **(values.get("lr_schedule") or {})}
        values["noise_std_range"] = tuple(float(v) for v in values["noise_std_range"])
        parsed = cls(**_known(cls, {**values, **{k: loss[k] for k in LOSS_WEIGHTS}},
                              "training settings"))
        if parsed.mode not in MODES:
            raise ConfigError(f"training mode '{parsed.mode}': expected one of {', '.join(MODES)}")
        return parsed

    def to_dict(self) -> dict:
        """The ``training`` block again (as stored in weights files and checkpoints)."""
        out = asdict(self)
        out["loss"] = {k: out.pop(k) for k in LOSS_WEIGHTS}
        out["noise_std_range"] = list(out["noise_std_range"])
        return out

    def learning_rate(self, step: int, iterations: int, base: float) -> float:
        """The rate of optimisation step ``step`` (0-based) of a stage of ``iterations`` steps."""
        schedule = self.lr_schedule
        warmup = int(schedule["warmup_steps"])
        if step < warmup:
            return base * (step + 1) / warmup
        if schedule["decay"] == "cosine":
            span = max(1, iterations - warmup - 1)
            progress = min(1.0, (step - warmup) / span)
            final = min(float(schedule["final_learning_rate"]), base)
            return final + 0.5 * (base - final) * (1 + math.cos(math.pi * progress))
        if schedule["decay"] == "step" and step >= float(schedule["step_at"]) * iterations:
            return base * 0.1
        return base

    def affecting_results(self) -> dict:
        return {k: v for k, v in self.to_dict().items() if k not in self.RUN_ONLY}
