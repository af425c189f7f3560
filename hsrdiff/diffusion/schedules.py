"""Noise schedules (METHOD.md §2): plain functions and a small container, no network inside.

``alpha_t = 1 - beta_t``, ``gamma_t = prod_{i<=t} alpha_i`` for t = 1..T, with ``gamma_0 = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch


def linear_betas(steps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """``steps`` betas evenly spaced from ``beta_start`` to ``beta_end`` (float64)."""
    if steps < 1 or not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need steps >= 1 and 0 < beta_start <= beta_end < 1; got {steps}, {beta_start}, {beta_end}")
    return torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)


@dataclass(frozen=True)
class Schedule:
    """A discrete schedule; index t = 1..T (index 0 holds gamma_0 = 1)."""

    betas: torch.Tensor  # (T,), float64

    @classmethod
    def from_betas(cls, betas: Sequence[float] | torch.Tensor) -> "Schedule":
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or (betas <= 0).any() or (betas >= 1).any():
            raise ValueError("betas must be a 1-D sequence of values in (0, 1)")
        return cls(betas)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Schedule":
        """``{steps, beta_start, beta_end}`` (linear) or ``{betas: [...]}`` (explicit)."""
        if cfg.get("betas"):
            return cls.from_betas(cfg["betas"])
        return cls(linear_betas(int(cfg["steps"]), float(cfg["beta_start"]), float(cfg["beta_end"])))

    @property
    def steps(self) -> int:
        return len(self.betas)

    @property
    def alphas(self) -> torch.Tensor:
        return 1.0 - self.betas

    @property
    def gammas(self) -> torch.Tensor:
        """(T + 1,): gamma_0 = 1, gamma_t = prod alpha_1..t."""
        return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(self.alphas, 0)])

    @property
    def sqrt_gammas(self) -> torch.Tensor:
        return self.gammas.sqrt()


SPACINGS = ("linear", "log_snr", "train")


def sampling_levels(sample_cfg: Mapping[str, Any], train_cfg: Mapping[str, Any] | None = None,
                    steps: int | None = None) -> torch.Tensor:
    """The sqrt(gamma) a sampler visits, noisiest first (float64), from ``diffusion.sample_schedule``.

    ``spacing``: ``linear`` (the paper's): the levels of linear betas beta_start..beta_end (or
    explicit ``betas``) over ``steps``; its end points suit about 100 steps only, since fewer
    linear betas never reach pure noise. ``log_snr`` (ours): ``steps`` levels evenly spaced in
    log(gamma / (1 - gamma)) between the noise stds of ``std_range``. ``train`` (ours): ``steps``
    of the training schedule's levels, evenly spaced in its index and always including its last
    (noisiest) one, as diffusers' "trailing" spacing. ``steps`` overrides the config's count.
    """
    spacing = sample_cfg.get("spacing") or "linear"
    count = int(steps if steps is not None else sample_cfg["steps"])
    if count < 1:
        raise ValueError(f"the number of sampling steps must be at least 1; got {count}")
    if spacing == "linear":
        return Schedule.from_config({**sample_cfg, "steps": count}).sqrt_gammas[1:].flip(0)
    if spacing == "log_snr":
        low, high = (float(v) for v in (sample_cfg.get("std_range") or (0.01, 0.999)))
        if not 0 < low < high < 1:
            raise ValueError(f"sample_schedule.std_range must satisfy 0 < low < high < 1; got {[low, high]}")
        # log-SNR of a noise std s: log((1 - s^2) / s^2)
        snr = lambda s: math.log((1 - s * s) / (s * s))  # noqa: E731
        return torch.sigmoid(torch.linspace(snr(high), snr(low), count, dtype=torch.float64)).sqrt()
    if spacing == "train":
        if train_cfg is None:
            raise ValueError("spacing 'train' needs the training schedule (diffusion.train_schedule)")
        train = Schedule.from_config(train_cfg)
        if count > train.steps:
            raise ValueError(f"{count} sampling steps exceed the training schedule's {train.steps} levels")
        return train.sqrt_gammas[torch.linspace(train.steps, 1, count, dtype=torch.float64).round().long()]
    raise ValueError(f"unknown sample_schedule.spacing '{spacing}'; expected one of {', '.join(SPACINGS)}")
