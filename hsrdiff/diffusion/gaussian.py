"""The Gaussian diffusion maths of METHOD.md §2: forward sample, WaveGrad noise levels, posterior.

Tensors are batches (B, bands, H, W); noise levels ``sqrt_gamma`` are (B,).
"""

from __future__ import annotations

import torch

from hsrdiff.diffusion.schedules import Schedule


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(x0: torch.Tensor, sqrt_gamma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_noisy = sqrt(gamma) x0 + sqrt(1 - gamma) noise."""
    g = _expand(sqrt_gamma, x0)
    return g * x0 + (1.0 - g * g).clamp_min(0).sqrt() * noise


def sample_noise_level(schedule: Schedule, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """WaveGrad's continuous noise level: t ~ U{1..T}, then sqrt(gamma) ~ U(sqrt(gamma_t), sqrt(gamma_{t-1})). (B,)"""
    sg = schedule.sqrt_gammas
    t = torch.randint(1, schedule.steps + 1, (batch,), generator=generator)
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    return (sg[t] + u * (sg[t - 1] - sg[t])).float()


def sample_noise_level_log_uniform(batch: int, std_range: tuple[float, float],
                                   generator: torch.Generator | None = None) -> torch.Tensor:
    """sqrt(gamma) whose noise std sqrt(1 - gamma) is log-uniform over ``std_range`` (every decade of
    noise equally often, the low-noise end included, where x_t says most about x0). (B,)"""
    low, high = (float(v) for v in std_range)
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    std = torch.exp(torch.log(torch.tensor(low, dtype=torch.float64)) * (1 - u) + torch.log(torch.tensor(high, dtype=torch.float64)) * u)
    return (1 - std * std).clamp_min(0).sqrt().float()


def posterior_between(x0: torch.Tensor, x_t: torch.Tensor, sqrt_gamma_t: float, sqrt_gamma_prev: float) -> tuple[torch.Tensor, float]:
    """Mean and variance of q(x_prev | x_t, x0) between any two noise levels (sqrt_gamma_prev > sqrt_gamma_t).

    With a = g_t / g_prev and b = 1 - a:
    mean = sqrt(g_prev) b / (1 - g_t) x0 + sqrt(a) (1 - g_prev) / (1 - g_t) x_t,
    var  = (1 - g_prev) b / (1 - g_t).
    """
    g_t, g_prev = sqrt_gamma_t**2, sqrt_gamma_prev**2
    a = g_t / g_prev
    b = 1.0 - a
    c0 = sqrt_gamma_prev * b / (1.0 - g_t)
    ct = a**0.5 * (1.0 - g_prev) / (1.0 - g_t)
    return c0 * x0 + ct * x_t, (1.0 - g_prev) * b / (1.0 - g_t)


def posterior(schedule: Schedule, x0: torch.Tensor, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, float]:
    """Mean and variance of q(x_{t-1} | x_t, x0) for the integer step t (1..T) of ``schedule``."""
    sg = schedule.sqrt_gammas
    return posterior_between(x0, x_t, sg[t].item(), sg[t - 1].item())
