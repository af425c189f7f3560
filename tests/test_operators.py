"""Operator estimation from a pair (hsrdiff.operators): on synthetic pairs with known PSF and SRF,
the estimate recovers them; the real Houston pair when ../shared/data is present."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_DATA
from hsrdiff.degradation import make_psf, spatial_degrade, spectral_degrade
from hsrdiff.errors import DataError
from hsrdiff.operators import estimate_kernel, estimate_operators, estimate_srf
from hsrdiff.srf import read_response, srf_matrix

BANDS, SIZE = 31, 128


def scene(seed=0, bands=BANDS):
    """A scene of full spectral rank: smooth random fields, each with its own random spectrum."""
    rng = np.random.default_rng(seed)
    fields = F.interpolate(torch.tensor(rng.random((bands, 1, SIZE // 8, SIZE // 8))), size=(SIZE, SIZE),
                           mode="bicubic", align_corners=False)[:, 0].numpy() + 0.3 * rng.random((bands, SIZE, SIZE))
    x = np.einsum("kb,khw->bhw", rng.random((bands, bands)), fields)
    return (x / x.max()).astype(np.float32)


def nikon(gains=(1.3, 0.9, 0.7)):
    return srf_matrix(read_response("nikon_d700"), np.linspace(400, 700, BANDS)).matrix * np.array(gains, np.float32)[:, None]


@pytest.mark.parametrize("ratio,sigma", [(4, 1.3), (4, 2.0), (3, 1.0), (2, 0.8)])
def test_a_pair_with_known_operators_gives_them_back(ratio, sigma):
    x, srf = scene(), nikon()
    side = SIZE // ratio * ratio
    x = x[:, :side, :side]
    psf = make_psf({"mode": "convolve", "sigma": sigma}, ratio)
    lr_hsi, hr_msi = spatial_degrade(x, psf), spectral_degrade(x, srf) + np.float32(0.02)  # a dark level
    fit = estimate_operators(lr_hsi, hr_msi, ratio)
    assert fit.psf.kernel.shape == psf.kernel.shape and fit.psf.mode == "convolve" and fit.psf.offset is None
    # the smoothness penalty biases R by a few per cent; the PSF comes back to 2 % of its peak
    assert np.linalg.norm(fit.srf - srf) / np.linalg.norm(srf) < 0.04
    assert np.abs(fit.psf.kernel - psf.kernel).max() < 0.02 * psf.kernel.max()
    np.testing.assert_allclose(fit.offset, 0.02, atol=4e-3)
    assert fit.residual < 1e-3 and fit.psnr > 70


def test_noisy_observations_still_give_the_operators_approximately():
    rng = np.random.default_rng(1)
    x, srf = scene(2), nikon()
    psf = make_psf({"mode": "convolve"}, 4)
    lr_hsi, hr_msi = spatial_degrade(x, psf), spectral_degrade(x, srf)
    lr_hsi = lr_hsi + rng.normal(0, 0.01 * lr_hsi.std(), lr_hsi.shape).astype(np.float32)  # 40 dB SNR
    hr_msi = hr_msi + rng.normal(0, 0.01 * hr_msi.std(), hr_msi.shape).astype(np.float32)
    fit = estimate_operators(lr_hsi, hr_msi, 4)
    assert np.linalg.norm(fit.srf - srf) / np.linalg.norm(srf) < 0.05
    assert np.abs(fit.psf.kernel - psf.kernel).max() < 0.05 * psf.kernel.max()


def test_without_smoothness_an_exact_srf_is_exact():
    x, srf = scene(3), nikon()
    found, offset = estimate_srf(x[:, ::4, ::4], spectral_degrade(x, srf)[:, ::4, ::4], smoothness=0.0)
    np.testing.assert_allclose(found, srf, atol=1e-4)
    np.testing.assert_allclose(offset, 0, atol=1e-5)


def test_the_kernel_fit_alone_is_exact_on_a_noiseless_target():
    x, srf = scene(4), nikon()
    psf = make_psf({"mode": "convolve", "sigma": 1.7}, 4)
    msi = spectral_degrade(x, srf)
    kernel = estimate_kernel(msi, spatial_degrade(msi, psf), 4, psf.kernel.shape[0])
    np.testing.assert_allclose(kernel, psf.kernel, atol=1e-5)


def test_shapes_that_do_not_fit_are_named():
    x = scene(5)
    with pytest.raises(DataError, match="is not lr_hsi .* times the ratio 4"):
        estimate_operators(x[:, ::4, ::4], x[:3, :100, :100], 4)
    with pytest.raises(DataError, match="parity"):
        estimate_kernel(x[:3], x[:3, ::4, ::4], 4, 9)


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "real" / "houston_casi_rgb_pair.mat").exists(), reason="../shared/data/real is absent")
def test_the_houston_pair_is_fitted_and_its_misfit_reported():
    """The real CASI + RGB pair: the estimate runs and reports a misfit far above a synthetic
    pair's (the RGB is not a linear view of the CASI data: other date, camera processing), which
    is what a user must see before trusting a fusion of it."""
    import scipy.io

    m = scipy.io.loadmat(SHARED_DATA / "real" / "houston_casi_rgb_pair.mat")
    hsi = m["hyprImg"].astype(np.float32).transpose(2, 0, 1)
    hsi /= hsi.max()
    rgb = m["rgbImg"].astype(np.float32).transpose(2, 0, 1) / 255.0
    fit = estimate_operators(hsi, rgb, 4, iterations=3)
    assert fit.srf.shape == (3, 48) and (fit.srf >= 0).all()
    assert abs(fit.psf.kernel.sum() - 1) < 1e-6 and (fit.psf.kernel >= 0).all()
    assert 0.05 < fit.residual < 0.5 and np.isfinite(fit.psnr)


def test_msi_no_data_is_left_out_of_the_fit():
    """Houston's RGB has a hole of zeros: pixels 0 in every MSI band are no data, and the LR
    pixels whose footprint holds one are left out, so the operators still come back."""
    x, srf = scene(6), nikon()
    psf = make_psf({"mode": "convolve", "sigma": 1.3}, 4)
    lr_hsi, hr_msi = spatial_degrade(x, psf), spectral_degrade(x, srf) + np.float32(0.02)
    hr_msi[:, 40:72, 60:90] = 0  # a masked part of the image
    fit = estimate_operators(lr_hsi, hr_msi, 4)
    assert 0.05 < fit.excluded < 0.2
    assert np.linalg.norm(fit.srf - srf) / np.linalg.norm(srf) < 0.04
    assert np.abs(fit.psf.kernel - psf.kernel).max() < 0.02 * psf.kernel.max()
    assert fit.residual < 1e-3
