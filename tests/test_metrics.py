"""Metrics against hand-computed values and independent implementations (torchmetrics, scikit-image)."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import error_relative_global_dimensionless_synthesis, spectral_angle_mapper

from hsrdiff.metrics import all_metrics, ergas, psnr, rmse, sam, sam_map, ssim


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    reference = rng.uniform(0.1, 0.9, (8, 40, 36))
    estimate = np.clip(reference + rng.normal(0, 0.03, reference.shape), 0, 1)
    return estimate, reference


def test_hand_computed_values_on_tiny_arrays():
    ref = np.ones((2, 2, 2)) * 0.5
    est = ref.copy()
    est[0] += 0.1  # band 0: MSE 0.01 -> 20 dB; band 1 exact (capped)
    assert abs(psnr(est[:1], ref[:1]) - 20.0) < 1e-9
    assert abs(rmse(est, ref) - math.sqrt(0.01 / 2)) < 1e-12
    # ERGAS: 100/4 * sqrt(((0.1/0.5)^2 + 0) / 2)
    assert abs(ergas(est, ref, ratio=4) - 25 * math.sqrt(0.04 / 2)) < 1e-9
    # SAM: spectra (1, 0) and (1, 1) are 45 degrees apart; a zero pixel is left out
    a = np.zeros((2, 1, 2))
    b = np.zeros((2, 1, 2))
    a[:, 0, 0], b[:, 0, 0] = (1, 0), (1, 1)
    assert abs(sam(a, b) - 45.0) < 1e-9
    assert torch.isnan(sam_map(a, b)[0, 0, 1])
    assert sam(np.zeros((3, 2, 2)), np.zeros((3, 2, 2))) == 0.0
    assert ssim(ref[:, :, :].repeat(6, 1).repeat(6, 2), ref.repeat(6, 1).repeat(6, 2)) == pytest.approx(1.0)


def test_psnr_is_the_mean_of_per_band_psnr(pair):
    est, ref = pair
    per_band = [10 * np.log10(1 / np.mean((est[b] - ref[b]) ** 2)) for b in range(est.shape[0])]
    assert psnr(est, ref) == pytest.approx(np.mean(per_band), abs=1e-9)


def test_ssim_matches_scikit_image(pair):
    est, ref = pair
    expected = np.mean([
        structural_similarity(est[b], ref[b], data_range=1.0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, K1=0.01, K2=0.03)
        for b in range(est.shape[0])
    ])
    assert ssim(est, ref) == pytest.approx(expected, abs=1e-6)


def test_sam_matches_torchmetrics_in_degrees(pair):
    est, ref = pair
    expected = math.degrees(spectral_angle_mapper(torch.tensor(est)[None], torch.tensor(ref)[None]).item())
    assert sam(est, ref) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("ratio", [4, 32])
def test_ergas_matches_torchmetrics(pair, ratio):
    est, ref = pair
    expected = error_relative_global_dimensionless_synthesis(torch.tensor(est)[None], torch.tensor(ref)[None], ratio=ratio).item()
    assert ergas(est, ref, ratio) == pytest.approx(expected, rel=1e-6)


def test_numpy_and_torch_inputs_agree_and_batches_average(pair):
    est, ref = pair
    a = all_metrics(est, ref, ratio=4)
    b = all_metrics(torch.tensor(est, dtype=torch.float32), torch.tensor(ref, dtype=torch.float32), ratio=4)
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-4), k
    batch = all_metrics(np.stack([est, ref]), np.stack([ref, ref]), ratio=4)
    assert batch["psnr"] > a["psnr"]  # the perfect second image raises the mean
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(est, ref[:, :10])
