"""Noise schedules (METHOD.md §2): plain functions and a small container, no network inside.

``alpha_t = 1 - beta_t``, ``gamma_t = prod_{i<=t} alpha_i`` for t = 1..T, with ``gamma_0 = 1``.
"""

from __future__ import annotations

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
