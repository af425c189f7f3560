"""Samplers: independent objects that drive any denoiser (diffusers-style ``step``)."""

from __future__ import annotations

from typing import Callable

import torch

from hsrdiff.diffusion.gaussian import posterior
from hsrdiff.diffusion.schedules import Schedule

# A denoiser step: (x_t, sqrt_gamma (B,)) -> x0_hat
X0Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class AncestralSampler:
    """The reverse process of METHOD.md §2 with an x0-predicting network.

    From x_T ~ N(0, I), for t = T..1: x0_hat = clip(f(x_t, sqrt(gamma_t))), then
    x_{t-1} = posterior mean + sqrt(var) z, with no noise at the last step.
    """

    def __init__(self, schedule: Schedule, clip: tuple[float, float] | None = (-1.0, 1.0)):
        self.schedule = schedule
        self.clip = clip

    @property
    def timesteps(self) -> list[int]:
        return list(range(self.schedule.steps, 0, -1))

    def noise_level(self, t: int, batch: int, device) -> torch.Tensor:
        return torch.full((batch,), float(self.schedule.sqrt_gammas[t]), device=device)

    def step(self, x0_hat: torch.Tensor, t: int, x_t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_{t-1} from the network's x0 prediction at step t."""
        if self.clip is not None:
            x0_hat = x0_hat.clamp(*self.clip)
        mean, var = posterior(self.schedule, x0_hat, x_t, t)
        if t == 1:
            return mean
        z = torch.randn(x_t.shape, generator=generator, device="cpu" if generator is None else generator.device, dtype=x_t.dtype)
        return mean + var**0.5 * z.to(x_t.device)

    @torch.no_grad()
    def sample(self, x0_fn: X0Fn, shape: tuple[int, ...], device="cpu", generator: torch.Generator | None = None,
               x_T: torch.Tensor | None = None) -> torch.Tensor:
        gen_device = "cpu" if generator is None else generator.device
        x = x_T if x_T is not None else torch.randn(shape, generator=generator, device=gen_device).to(device)
        for t in self.timesteps:
            x0_hat = x0_fn(x, self.noise_level(t, x.shape[0], x.device))
            x = self.step(x0_hat, t, x, generator)
        return x
