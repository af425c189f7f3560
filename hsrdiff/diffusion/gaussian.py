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


def posterior(schedule: Schedule, x0: torch.Tensor, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, float]:
    """Mean and variance of q(x_{t-1} | x_t, x0) for the integer step t (1..T).

    mean = sqrt(g_{t-1}) b_t / (1 - g_t) x0 + sqrt(a_t) (1 - g_{t-1}) / (1 - g_t) x_t,
    var  = (1 - g_{t-1}) b_t / (1 - g_t).
    """
    g, b = schedule.gammas, schedule.betas
    g_t, g_prev, b_t = g[t].item(), g[t - 1].item(), b[t - 1].item()
    a_t = 1.0 - b_t
    c0 = g_prev**0.5 * b_t / (1.0 - g_t)
    ct = a_t**0.5 * (1.0 - g_prev) / (1.0 - g_t)
    var = (1.0 - g_prev) * b_t / (1.0 - g_t)
    return c0 * x0 + ct * x_t, var
