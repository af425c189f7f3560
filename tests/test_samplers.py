"""Samplers on an analytic denoiser: levels, determinism, equivalences, and convergence at 1000 steps.

For data x0 ~ N(mu, tau^2) per element, E[x0 | x_t] is known in closed form, so every sampler can
be checked against the distribution it must reproduce, without a network.
"""

import math

import numpy as np
import pytest
import torch

from hsrdiff.diffusion import SAMPLERS, AncestralSampler, DDIMSampler, Schedule, make_sampler, sampling_levels
from hsrdiff.errors import DataError

MU, TAU = 0.2, 0.3
TRAIN = {"steps": 2000, "beta_start": 1e-6, "beta_end": 1e-2}


def gaussian_denoiser(x_t, sqrt_gamma):
    """The exact posterior mean of x0 ~ N(MU, TAU^2) given x_t = g x0 + s eps."""
    g = sqrt_gamma.double().reshape(-1, 1, 1, 1)
    s2 = 1 - g * g
    return (MU + g * TAU**2 / (g * g * TAU**2 + s2) * (x_t.double() - g * MU)).to(x_t.dtype)


def _levels(steps, spacing="log_snr", **extra):
    return sampling_levels({"steps": steps, "spacing": spacing, "beta_start": 1e-4, "beta_end": 0.1, **extra}, TRAIN)


@pytest.mark.parametrize("spacing", ["linear", "log_snr", "train"])
@pytest.mark.parametrize("steps", [1, 2, 10, 100])
def test_levels_rise_strictly_and_start_near_pure_noise(spacing, steps):
    levels = _levels(steps, spacing)
    assert len(levels) == steps and levels.dtype == torch.float64
    assert (levels > 0).all() and (levels < 1).all() and (levels[1:] > levels[:-1]).all()
    if spacing != "linear" or steps == 100:  # few linear betas never reach pure noise (documented)
        assert math.sqrt(1 - levels[0].item() ** 2) > 0.99


def test_linear_spacing_is_the_paper_schedule_and_train_spacing_ends_on_the_training_levels():
    paper = Schedule.from_config({"steps": 100, "beta_start": 1e-4, "beta_end": 0.1})
    torch.testing.assert_close(_levels(100, "linear"), paper.sqrt_gammas[1:].flip(0))
    train = Schedule.from_config(TRAIN).sqrt_gammas
    levels = _levels(10, "train")
    assert levels[0] == train[2000] and levels[-1] == train[1]
    assert all(bool((train == v).any()) for v in levels)
    log_snr = torch.log(_levels(6) ** 2 / (1 - _levels(6) ** 2))
    torch.testing.assert_close(log_snr.diff(), torch.full((5,), log_snr.diff()[0].item(), dtype=torch.float64))
    with pytest.raises(ValueError, match="unknown sample_schedule.spacing 'cosine'"):
        _levels(5, "cosine")
    with pytest.raises(ValueError, match="exceed the training schedule's 2000"):
        _levels(3000, "train")


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_has_the_shape_and_is_reproducible_with_a_seed(name):
    sampler = make_sampler(name, _levels(5), eta=0.5)
    assert sampler.steps == 5
    run = lambda seed: sampler.sample(gaussian_denoiser, (2, 3, 8, 8), generator=torch.Generator().manual_seed(seed))  # noqa: E731
    a, b, c = run(0), run(0), run(1)
    assert a.shape == (2, 3, 8, 8) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["ddim", "dpm-solver++"])
def test_deterministic_samplers_draw_no_noise_after_the_start(name):
    sampler = make_sampler(name, _levels(8), eta=0.0)
    x_T = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a = sampler.sample(gaussian_denoiser, x_T.shape, generator=torch.Generator().manual_seed(1), x_T=x_T)
    b = sampler.sample(gaussian_denoiser, x_T.shape, generator=torch.Generator().manual_seed(2), x_T=x_T)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not sampler.stochastic


def test_ddim_with_eta_one_is_the_ancestral_sampler():
    levels = _levels(20, "linear", beta_end=0.3)
    x_T = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = AncestralSampler(levels).sample(gaussian_denoiser, x_T.shape, generator=torch.Generator().manual_seed(5), x_T=x_T)
    b = DDIMSampler(levels, eta=1.0).sample(gaussian_denoiser, x_T.shape, generator=torch.Generator().manual_seed(5), x_T=x_T)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name,eta", [("ancestral", 0.0), ("ddim", 0.0), ("ddim", 1.0), ("dpm-solver++", 0.0)])
def test_at_1000_steps_every_sampler_draws_the_data_distribution(name, eta):
    """Exact denoiser, 1000 log-SNR steps from std 0.9999: every sampler's output has the data's
    mean and spread (the ancestral one draws from it; the ODE solvers map N(0, 1) onto it)."""
    sampler = make_sampler(name, _levels(1000, std_range=[1e-3, 0.9999]), eta=eta, clip=None)
    out = sampler.sample(gaussian_denoiser, (1, 1, 128, 128), generator=torch.Generator().manual_seed(0))
    assert abs(out.mean().item() - MU) < 0.01 and abs(out.std().item() / TAU - 1) < 0.02, (out.mean(), out.std())


def test_the_two_ode_solvers_agree_pointwise_and_dpm_solver_converges_faster():
    """DDIM (eta 0) and DPM-Solver++ integrate the same ODE, whose exact solution from x_T for
    Gaussian data at these levels is known: both reach it at 1000 steps, and at 10 steps the
    second-order solver lands closer than the first-order one."""
    x_T = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    std_range = [1e-3, 0.9999]
    g0 = _levels(2, std_range=std_range)[0].item()
    s0 = math.sqrt(1 - g0 * g0)
    # x_t / sqrt(g^2 tau^2 + s^2) is constant along the flow: x0 = mu + tau (x_T - g0 mu) / sqrt(g0^2 tau^2 + s0^2)
    exact = MU + TAU * (x_T - g0 * MU) / math.sqrt(g0**2 * TAU**2 + s0**2)
    errors = {}
    for name in ("ddim", "dpm-solver++"):
        for steps in (10, 1000):
            out = make_sampler(name, _levels(steps, std_range=std_range), clip=None).sample(gaussian_denoiser, x_T.shape, x_T=x_T)
            errors[name, steps] = (out - exact).abs().max().item()
    # first order: the error falls 100-fold with 100 times the steps; second order: far more
    assert errors["ddim", 1000] < 5e-3 and errors["dpm-solver++", 1000] < 1e-4, errors
    assert errors["dpm-solver++", 10] < errors["ddim", 10], errors


def test_bad_sampler_settings_are_refused_with_their_names():
    with pytest.raises(ValueError, match="unknown sampler 'euler'; expected one of ancestral, ddim, dpm-solver\\+\\+"):
        make_sampler("euler", _levels(3))
    with pytest.raises(ValueError, match="eta must lie in"):
        make_sampler("ddim", _levels(3), eta=2.0)
    with pytest.raises(ValueError, match="must rise strictly"):
        make_sampler("ddim", torch.tensor([0.5, 0.4]))
    from hsrdiff.sampling import build_sampler

    with pytest.raises(DataError, match="sampling settings: unknown sampler 'euler'"):
        build_sampler({"steps": 3, "spacing": "log_snr"}, {"sampler": "euler"})


def test_rank_correlation_is_spearmans():
    from hsrdiff.bench_sampling import rank_correlation

    a = np.random.default_rng(0).random(500)
    assert rank_correlation(a, a**3) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert abs(rank_correlation(a, np.random.default_rng(1).random(500))) < 0.15


def test_limit_of_the_samples_mean_is_recovered_from_a_few_samples():
    """Samples = a fixed estimate + independent spread: the n-sample mean scores below the fixed
    estimate by the spread / n, and limit_mean_psnr removes exactly that."""
    from hsrdiff.bench_sampling import limit_mean_psnr
    from hsrdiff.metrics import psnr

    rng = np.random.default_rng(3)
    gt = rng.random((4, 128, 128))
    limit = gt + 0.004 * rng.standard_normal(gt.shape)  # what infinitely many samples average to
    for n in (3, 8):
        samples = limit + 0.01 * rng.standard_normal((n, *gt.shape))
        mean, std = samples.mean(axis=0), samples.std(axis=0)
        assert psnr(mean, gt) < psnr(limit, gt) - 1.0  # the spread / n still costs the mean
        assert limit_mean_psnr(mean, std, n, gt) == pytest.approx(psnr(limit, gt), abs=0.1)
    with pytest.raises(ValueError, match="two samples or more"):
        limit_mean_psnr(gt, np.zeros_like(gt), 1, gt)
