"""Samplers: independent objects that drive any x0-predicting denoiser (diffusers-style ``step``).

Every sampler walks a sequence of noise levels ``sqrt_gamma`` (noisiest first, each in (0, 1),
see ``schedules.sampling_levels``) and ends on the clean image: the network is trained on
continuous noise levels (WaveGrad), so any sequence works without retraining. One network
evaluation per level; the last prediction is the result.

- ``ancestral``: the reverse process of METHOD.md §2 (the paper's), the posterior
  q(x_prev | x_t, x0_hat) between consecutive levels plus fresh noise.
- ``ddim``: Song et al. 2021 in the x0 parametrisation; ``eta`` = 0 is deterministic, ``eta`` = 1
  has the ancestral sampler's variance.
- ``dpm-solver++``: Lu et al. 2022, the second-order multistep solver in data-prediction form
  (``DPM-Solver++(2M)``), deterministic, first order on its first and last step.

A step is ``x_t = sqrt(gamma) x0 + sqrt(1 - gamma) eps`` written with alpha = sqrt(gamma) and
sigma = sqrt(1 - gamma); lambda = log(alpha / sigma) is the half log-SNR.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from hsrdiff.diffusion.gaussian import posterior_between
from hsrdiff.diffusion.schedules import Schedule

# A denoiser step: (x_t, sqrt_gamma (B,)) -> x0_hat
X0Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = "cpu" if generator is None else generator.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


class Sampler:
    """Base: the level sequence, the loop, clipping of x0_hat. Subclasses define ``step``."""

    name = ""
    stochastic = True

    def __init__(self, levels: torch.Tensor | Schedule, clip: tuple[float, float] | None = (-1.0, 1.0)):
        if isinstance(levels, Schedule):  # a discrete schedule's levels, t = T..1
            levels = levels.sqrt_gammas[1:].flip(0)
        levels = torch.as_tensor(levels, dtype=torch.float64)
        if levels.ndim != 1 or len(levels) < 1 or (levels <= 0).any() or (levels >= 1).any():
            raise ValueError("noise levels must be a non-empty 1-D sequence of sqrt(gamma) in (0, 1)")
        if (levels[1:] <= levels[:-1]).any():
            raise ValueError("noise levels sqrt(gamma) must rise strictly (the noise falls step by step)")
        self.levels = levels
        self.clip = clip
        self.reset()

    @property
    def steps(self) -> int:
        """Network evaluations per sample."""
        return len(self.levels)

    def reset(self) -> None:
        """Forget a multistep solver's history (called before each sample)."""

    def noise_level(self, i: int, batch: int, device) -> torch.Tensor:
        return torch.full((batch,), float(self.levels[i]), device=device)

    def _ends(self, i: int) -> tuple[float, float]:
        """sqrt(gamma) of step i and of the level it moves to (1.0: the clean image)."""
        return float(self.levels[i]), (float(self.levels[i + 1]) if i + 1 < len(self.levels) else 1.0)

    def step(self, x0_hat: torch.Tensor, i: int, x_t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, x0_fn: X0Fn, shape: tuple[int, ...], device="cpu", generator: torch.Generator | None = None,
               x_T: torch.Tensor | None = None) -> torch.Tensor:
        gen_device = "cpu" if generator is None else generator.device
        x = x_T if x_T is not None else torch.randn(shape, generator=generator, device=gen_device).to(device)
        self.reset()
        for i in range(self.steps):
            x0_hat = x0_fn(x, self.noise_level(i, x.shape[0], x.device))
            if self.clip is not None:
                x0_hat = x0_hat.clamp(*self.clip)
            x = self.step(x0_hat, i, x, generator)
        return x


class AncestralSampler(Sampler):
    """x_prev = the posterior mean q(x_prev | x_t, x0_hat) between consecutive levels + sqrt(var) z,
    no noise on the last step. On the paper's schedule it is METHOD.md §2 exactly."""

    name = "ancestral"

    def step(self, x0_hat, i, x_t, generator=None):
        mean, var = posterior_between(x0_hat, x_t, *self._ends(i))
        if i + 1 == self.steps:
            return mean
        return mean + math.sqrt(var) * _randn_like(x_t, generator)


class DDIMSampler(Sampler):
    """x_prev = alpha_prev x0 + sqrt(sigma_prev^2 - s^2) eps_hat + s z, eps_hat = (x_t - alpha_t x0) / sigma_t,
    s = eta sqrt((1 - g_prev) / (1 - g_t)) sqrt(1 - g_t / g_prev)."""

    name = "ddim"

    def __init__(self, levels, clip=(-1.0, 1.0), eta: float = 0.0):
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"ddim eta must lie in [0, 1]; got {eta}")
        self.eta = float(eta)
        self.stochastic = eta > 0
        super().__init__(levels, clip)

    def step(self, x0_hat, i, x_t, generator=None):
        sg_t, sg_prev = self._ends(i)
        if sg_prev >= 1.0:
            return x0_hat
        g_t, g_prev = sg_t**2, sg_prev**2
        eps_hat = (x_t - sg_t * x0_hat) / math.sqrt(1.0 - g_t)
        s = self.eta * math.sqrt((1.0 - g_prev) / (1.0 - g_t) * (1.0 - g_t / g_prev))
        x = sg_prev * x0_hat + math.sqrt(max(1.0 - g_prev - s * s, 0.0)) * eps_hat
        return x + s * _randn_like(x_t, generator) if s > 0 else x


class DPMSolverPlusPlus(Sampler):
    """DPM-Solver++(2M): with h = lambda_prev - lambda_t and r = h_last / h,
    D = (1 + 1 / (2r)) x0_hat_t - 1 / (2r) x0_hat_last (first order: D = x0_hat_t), and
    x_prev = (sigma_prev / sigma_t) x_t - alpha_prev (exp(-h) - 1) D."""

    name = "dpm-solver++"
    stochastic = False

    def reset(self) -> None:
        self._last: tuple[torch.Tensor, float] | None = None  # (x0_hat, h) of the previous step

    def step(self, x0_hat, i, x_t, generator=None):
        sg_t, sg_prev = self._ends(i)
        if sg_prev >= 1.0:
            return x0_hat
        sigma_t, sigma_prev = math.sqrt(1.0 - sg_t**2), math.sqrt(1.0 - sg_prev**2)
        h = math.log(sg_prev / sigma_prev) - math.log(sg_t / sigma_t)
        d = x0_hat
        if self._last is not None:
            last_x0, last_h = self._last
            r = last_h / h
            d = (1.0 + 0.5 / r) * x0_hat - (0.5 / r) * last_x0
        self._last = (x0_hat, h)
        return (sigma_prev / sigma_t) * x_t - sg_prev * math.expm1(-h) * d


SAMPLERS = {cls.name: cls for cls in (AncestralSampler, DDIMSampler, DPMSolverPlusPlus)}


def make_sampler(name: str, levels: torch.Tensor | Schedule, eta: float = 0.0,
                 clip: tuple[float, float] | None = (-1.0, 1.0)) -> Sampler:
    """The sampler called ``name`` (a key of SAMPLERS) over ``levels``."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{name}'; expected one of {', '.join(SAMPLERS)}")
    if name == "ddim":
        return DDIMSampler(levels, clip, eta=eta)
    return SAMPLERS[name](levels, clip)
