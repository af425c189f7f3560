"""Diffusion maths: forward moments, WaveGrad noise levels, posterior, oracle sampling, loss."""

import math

import numpy as np
import pytest
import torch

from hsrdiff.degradation import make_psf, spatial_degrade, spectral_degrade
from hsrdiff.diffusion import (
    AncestralSampler,
    Schedule,
    fusion_loss,
    linear_betas,
    posterior,
    q_sample,
    sample_noise_level,
    to_data_range,
    to_model_range,
)


def test_schedule_products_and_explicit_betas():
    s = Schedule.from_config({"steps": 2000, "beta_start": 1e-6, "beta_end": 1e-2})
    assert s.steps == 2000 and s.gammas[0] == 1.0
    np.testing.assert_allclose(s.gammas[1:].numpy(), np.cumprod(1 - np.linspace(1e-6, 1e-2, 2000)))
    assert s.gammas[-1] < 1e-4  # the last training step is (almost) pure noise
    explicit = Schedule.from_config({"betas": [0.1, 0.2, 0.5]})
    np.testing.assert_allclose(explicit.gammas.numpy(), [1, 0.9, 0.72, 0.36])
    with pytest.raises(ValueError):
        linear_betas(10, 0.5, 0.1)
    with pytest.raises(ValueError):
        Schedule.from_betas([0.1, 1.0])


def test_forward_sample_has_the_stated_mean_and_variance():
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((1, 1, 200, 200), 0.6, dtype=torch.float64)
    for sqrt_gamma in (0.95, 0.5, 0.05):
        noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        x = q_sample(x0, torch.tensor([sqrt_gamma]), noise)
        # 40000 samples: the standard error of the mean is sigma / 200
        sigma = math.sqrt(1 - sqrt_gamma**2)
        assert abs(x.mean().item() - sqrt_gamma * 0.6) < 4 * sigma / 200
        assert abs(x.var().item() - sigma**2) < 0.03 * sigma**2


def test_wavegrad_noise_levels_fall_inside_their_steps_and_cover_the_range():
    s = Schedule.from_config({"steps": 50, "beta_start": 1e-4, "beta_end": 0.2})
    g = torch.Generator().manual_seed(1)
    levels = sample_noise_level(s, 20000, g).double()
    sg = s.sqrt_gammas
    assert levels.min() >= sg[-1] - 1e-7 and levels.max() <= 1.0
    # continuous (float32 merges a few draws near 1), and each step's interval gets about 1/T
    assert len(torch.unique(levels)) > 0.99 * len(levels)
    counts = [((levels <= sg[t - 1]) & (levels > sg[t])).sum().item() for t in range(1, 51)]
    assert min(counts) > 0.7 * 400 and max(counts) < 1.3 * 400


def test_posterior_equals_the_closed_form_from_bayes_rule():
    s = Schedule.from_config({"steps": 100, "beta_start": 1e-4, "beta_end": 0.1})
    x0, x_t = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    for t in (2, 37, 100):
        g_prev, b_t = s.gammas[t - 1].item(), s.betas[t - 1].item()
        a_t = 1 - b_t
        # product of N(x; sqrt(g_prev) x0, 1 - g_prev) and N(x_t; sqrt(a_t) x, b_t) in x
        precision = 1 / (1 - g_prev) + a_t / b_t
        mean = (math.sqrt(g_prev) * x0 / (1 - g_prev) + math.sqrt(a_t) * x_t / b_t) / precision
        got_mean, got_var = posterior(s, x0, x_t, t)
        torch.testing.assert_close(got_mean, mean)
        assert abs(got_var - 1 / precision) < 1e-12
    mean, var = posterior(s, x0, x_t, 1)
    torch.testing.assert_close(mean, x0)  # the last step lands on x0
    assert var == 0


def test_sampler_driven_by_an_oracle_reconstructs_x0_exactly():
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(1, 5, 8, 8, generator=g) * 2 - 1
    sampler = AncestralSampler(Schedule.from_config({"steps": 100, "beta_start": 1e-4, "beta_end": 0.1}))
    levels = []

    def oracle(x_t, sqrt_gamma):
        levels.append(sqrt_gamma[0].item())
        return x0

    out = sampler.sample(oracle, x0.shape, generator=g)
    torch.testing.assert_close(out, x0)
    assert len(levels) == 100 and levels == sorted(levels)  # noise level rises step by step
    assert levels[0] < 0.1 and abs(levels[-1] - math.sqrt(1 - 1e-4)) < 1e-6


def test_sampler_clips_predictions_to_the_data_range():
    sampler = AncestralSampler(Schedule.from_config({"steps": 3, "beta_start": 0.1, "beta_end": 0.3}))
    out = sampler.sample(lambda x, sg: torch.full_like(x, 5.0), (1, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, torch.ones(1, 1, 2, 2))


def test_loss_terms_use_the_observation_model():
    g = torch.Generator().manual_seed(3)
    gt = torch.rand(2, 6, 16, 16, generator=g)
    psf = make_psf({"mode": "block"}, 4)
    srf = torch.softmax(torch.randn(3, 6, generator=g), dim=1)
    lr_hsi, hr_msi = spatial_degrade(gt, psf), spectral_degrade(gt, srf)
    perfect = fusion_loss(gt, gt, lr_hsi, hr_msi, psf, srf)
    assert perfect["loss"].item() < 1e-6
    x0_hat = (gt + 0.1 * torch.randn(gt.shape, generator=g)).requires_grad_(True)
    terms = fusion_loss(x0_hat, gt, lr_hsi, hr_msi, psf, srf, lambda_lr=2.0, lambda_msi=0.5)
    expected = (x0_hat - gt).abs().mean() + 2 * (spatial_degrade(x0_hat, psf) - lr_hsi).abs().mean() + 0.5 * (spectral_degrade(x0_hat, srf) - hr_msi).abs().mean()
    torch.testing.assert_close(terms["loss"], expected)
    terms["loss"].backward()
    assert x0_hat.grad.abs().sum() > 0


def test_spectral_angle_term_sees_shape_not_brightness():
    from hsrdiff.diffusion.loss import spectral_angle

    g = torch.Generator().manual_seed(4)
    gt = torch.rand(1, 5, 4, 4, generator=g) + 0.1
    psf, srf = make_psf({"mode": "block"}, 4), torch.full((1, 5), 0.2)
    lr_hsi, hr_msi = spatial_degrade(gt, psf), spectral_degrade(gt, srf)
    # a brighter copy of each spectrum has angle 0; a spectrum turned by a known angle has that angle
    assert spectral_angle(3 * gt, gt).max() < 2e-3
    a, b = torch.zeros(1, 5, 1, 1), torch.zeros(1, 5, 1, 1)
    a[0, 0], b[0, 0], b[0, 1] = 1.0, 1.0, 1.0
    torch.testing.assert_close(spectral_angle(a, b), torch.full((1, 1, 1), torch.pi / 4))
    off = fusion_loss(gt, gt, lr_hsi, hr_msi, psf, srf)
    assert off["sam_term"] == 0  # off by default: not even computed
    x0_hat = (gt * torch.linspace(0.8, 1.2, 5).view(1, 5, 1, 1)).requires_grad_(True)  # a tilted spectrum
    on = fusion_loss(x0_hat, gt, lr_hsi, hr_msi, psf, srf, lambda_sam=0.5)
    plain = fusion_loss(x0_hat, gt, lr_hsi, hr_msi, psf, srf)
    assert on["sam_term"] > 0.01
    torch.testing.assert_close(on["loss"], plain["loss"] + 0.5 * spectral_angle(x0_hat, gt).mean())
    on["loss"].backward()
    assert torch.isfinite(x0_hat.grad).all()


def test_range_mapping_round_trip():
    x = torch.rand(10)
    torch.testing.assert_close(to_data_range(to_model_range(x)), x)
    assert to_model_range(torch.tensor(0.0)) == -1 and to_model_range(torch.tensor(1.0)) == 1


def test_log_uniform_noise_levels_spread_evenly_over_decades_and_wavegrad_does_not():
    from hsrdiff.diffusion import Schedule, sample_noise_level, sample_noise_level_log_uniform

    g = torch.Generator().manual_seed(0)
    std = (1 - sample_noise_level_log_uniform(60000, (1e-3, 1.0), g).double() ** 2).sqrt()
    for low, high in ((1e-3, 1e-2), (1e-2, 1e-1), (1e-1, 1.0)):
        assert abs(((std >= low) & (std < high)).double().mean().item() - 1 / 3) < 0.01
    wavegrad = Schedule.from_config({"steps": 2000, "beta_start": 1e-6, "beta_end": 1e-2})
    std = (1 - sample_noise_level(wavegrad, 60000, g).double() ** 2).sqrt()
    assert (std > 0.9).double().mean() > 0.55 and (std < 0.1).double().mean() < 0.05  # the paper's: mostly noise


def test_learning_rate_schedules():
    from hsrdiff.training.settings import TrainingSettings

    constant = TrainingSettings.from_dict({})
    assert constant.learning_rate(0, 100, 1e-3) == constant.learning_rate(99, 100, 1e-3) == 1e-3
    cosine = TrainingSettings.from_dict({"lr_schedule": {"warmup_steps": 10, "decay": "cosine", "final_learning_rate": 1e-6}})
    rates = [cosine.learning_rate(s, 100, 1e-3) for s in range(100)]
    assert rates[0] == 1e-4 and rates[9] == 1e-3 and abs(rates[-1] - 1e-6) < 1e-12
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    step = TrainingSettings.from_dict({"lr_schedule": {"decay": "step", "step_at": 0.8}})
    assert step.learning_rate(79, 100, 1e-3) == 1e-3 and abs(step.learning_rate(80, 100, 1e-3) - 1e-4) < 1e-12
