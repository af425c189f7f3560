"""The observation model: PSF (block and convolve), SRF, noise; NumPy and torch agree."""

import numpy as np
import pytest
import scipy.ndimage
import torch

from hsrdiff.degradation import (
    PSF,
    add_noise,
    crop_to_ratio,
    gaussian_kernel,
    make_psf,
    project_onto_observations,
    spatial_degrade,
    spatial_degrade_adjoint,
    spectral_degrade,
)
from hsrdiff.errors import DataError
from hsrdiff.srf import SHIPPED, read_response, srf_matrix, worldview3_gaussian_table


def _direct_block(x, kernel, ratio):
    """Each LR pixel as the kernel-weighted sum over its own block, by explicit loops."""
    bands, h, w = x.shape
    out = np.zeros((bands, h // ratio, w // ratio))
    for i in range(h // ratio):
        for j in range(w // ratio):
            block = x[:, i * ratio : (i + 1) * ratio, j * ratio : (j + 1) * ratio]
            out[:, i, j] = (block * kernel).sum(axis=(1, 2))
    return out


@pytest.mark.parametrize("ratio,shape", [(4, (5, 16, 24)), (8, (3, 32, 16)), (32, (2, 64, 96))])
def test_block_gaussian_equals_direct_per_block_sum(ratio, shape):
    rng = np.random.default_rng(ratio)
    x = rng.random(shape)
    psf = make_psf({"mode": "block", "sigma": ratio / 3.2}, ratio)
    assert psf.kernel.shape == (ratio, ratio)
    np.testing.assert_allclose(spatial_degrade(x, psf), _direct_block(x, psf.kernel.astype(np.float64), ratio), atol=1e-6)


def test_cave_protocol_kernel_is_normalised_32x32_sigma_10():
    psf = make_psf({"mode": "block", "sigma": 10}, 32)
    k = psf.kernel.astype(np.float64)
    assert k.shape == (32, 32) and abs(k.sum() - 1) < 1e-6
    # centred between pixels 15 and 16, symmetric, and the documented Gaussian profile
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-9)
    c = np.arange(32) - 15.5
    ref = np.exp(-(c[:, None] ** 2 + c[None, :] ** 2) / (2 * 100.0))
    np.testing.assert_allclose(k, ref / ref.sum(), rtol=1e-5)


@pytest.mark.parametrize("ratio,shape", [(4, (3, 20, 28)), (8, (2, 48, 40)), (3, (2, 18, 12))])
def test_convolve_mode_is_centred_on_each_block(ratio, shape):
    x = np.random.default_rng(0).random(shape)
    psf = make_psf({"mode": "convolve"}, ratio)
    size = 2 * ratio + 1 + (ratio % 2 == 0)
    assert psf.kernel.shape == (size, size) and psf.offset is None
    # FWHM equals the ratio by default, the Gaussian centred between the kernel's middle pixels
    sigma = ratio / 2.3548
    coords = np.arange(size) - (size - 1) / 2
    profile = psf.kernel[size // 2]
    np.testing.assert_allclose(profile / profile.max(), np.exp(-0.5 * (coords / sigma) ** 2) / np.exp(-0.5 * (coords / sigma) ** 2).max(), rtol=1e-4)
    # By hand: LR pixel i weighs HR pixels around ratio * i + (ratio - 1) / 2, reflect padding
    pad = (size - ratio) // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    ref = np.zeros((shape[0], shape[1] // ratio, shape[2] // ratio))
    for i in range(ref.shape[1]):
        for j in range(ref.shape[2]):
            window = padded[:, ratio * i : ratio * i + size, ratio * j : ratio * j + size]
            ref[:, i, j] = (window * psf.kernel.astype(np.float64)).sum(axis=(1, 2))
    np.testing.assert_allclose(spatial_degrade(x, psf), ref, atol=1e-6)


@pytest.mark.parametrize("ratio,shape", [(4, (3, 20, 28)), (8, (2, 48, 40))])
def test_convolve_mode_with_an_explicit_offset_matches_scipy_reference(ratio, shape):
    x = np.random.default_rng(0).random(shape)
    psf = make_psf({"mode": "convolve", "offset": ratio // 2}, ratio)
    assert psf.kernel.shape == (2 * ratio + 1,) * 2 and psf.offset == ratio // 2
    # torch's reflect padding is scipy's 'mirror'
    ref = np.stack([scipy.ndimage.correlate(b, psf.kernel.astype(np.float64), mode="mirror") for b in x])
    ref = ref[:, psf.offset :: ratio, psf.offset :: ratio]
    np.testing.assert_allclose(spatial_degrade(x, psf), ref, atol=1e-6)


def _dihedral(x, rot, flip):
    x = np.rot90(x, rot, axes=(-2, -1))
    return np.ascontiguousarray(x[..., ::-1] if flip else x)


@pytest.mark.parametrize("psf_config,ratio", [({"mode": "convolve"}, 4), ({"mode": "convolve"}, 3), ({"mode": "convolve"}, 8),
                                              ({"mode": "block"}, 4), ({"mode": "block", "sigma": 10}, 32)])
def test_every_flip_and_rotation_commutes_with_the_degradation(psf_config, ratio):
    x = np.random.default_rng(ratio).random((2, 6 * ratio, 6 * ratio))
    psf = make_psf(psf_config, ratio)
    lr = spatial_degrade(x, psf)
    for rot in range(4):
        for flip in (False, True):
            np.testing.assert_allclose(spatial_degrade(_dihedral(x, rot, flip), psf), _dihedral(lr, rot, flip), atol=1e-6,
                                       err_msg=f"rot {rot} flip {flip}")


@pytest.mark.parametrize("psf_config,ratio", [({"mode": "convolve"}, 4), ({"mode": "convolve"}, 3), ({"mode": "block", "sigma": 10}, 32)])
def test_a_ramp_degraded_and_bicubic_upsampled_comes_back_unshifted(psf_config, ratio):
    from hsrdiff.baselines import bicubic

    n = 12 * ratio
    ramp = np.broadcast_to(np.arange(n, dtype=np.float32) / n, (1, n, n)).copy()
    up = bicubic(spatial_degrade(ramp, make_psf(psf_config, ratio)), ratio).fused
    inner = slice(3 * ratio, 9 * ratio)  # away from the edges, where padding bends the ramp
    shift_px = float((up - ramp)[0, inner, inner].mean()) * n
    assert abs(shift_px) < 1e-3, shift_px
    # the old sampling (offset ratio // 2) was half a pixel off for even ratios: the test sees it
    if ratio % 2 == 0 and psf_config["mode"] == "convolve":
        old = bicubic(spatial_degrade(ramp, make_psf({**psf_config, "offset": ratio // 2}, ratio)), ratio).fused
        assert abs(float((old - ramp)[0, inner, inner].mean()) * n - 0.5) < 1e-3


@pytest.mark.parametrize("psf_config,ratio", [({"mode": "convolve"}, 4), ({"mode": "convolve"}, 3), ({"mode": "block"}, 4),
                                              ({"mode": "block", "sigma": 10}, 32), ({"mode": "convolve", "offset": 1}, 4),
                                              ({"mode": "convolve", "offset": 0}, 3)])
def test_spatial_adjoint_is_the_transpose_of_the_degradation(psf_config, ratio):
    """<S x, r> = <x, S^T r> for random x and r, and S^T equals the gradient autograd derives from S."""
    psf = make_psf(psf_config, ratio)
    height, width = 6 * ratio, 5 * ratio
    rng = np.random.default_rng(ratio)
    x = torch.from_numpy(rng.standard_normal((2, 3, height, width)))
    r = torch.from_numpy(rng.standard_normal((2, 3, 6, 5)))
    adjoint = spatial_degrade_adjoint(r, psf, height, width)
    assert adjoint.shape == x.shape
    assert float((spatial_degrade(x, psf) * r).sum()) == pytest.approx(float((x * adjoint).sum()), abs=1e-10)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad((spatial_degrade(x, psf) * r).sum(), x)
    torch.testing.assert_close(adjoint, grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("psf_config,ratio", [({"mode": "convolve"}, 4), ({"mode": "block", "sigma": 10}, 32)])
def test_projection_onto_the_observations_is_orthogonal(psf_config, ratio):
    """The projection of x fits the observations of gt, leaves gt as it is, is idempotent, and is
    orthogonal: gt lies in the set it projects onto, so ||x - gt||^2 = ||x - Px||^2 + ||Px - gt||^2."""
    rng = np.random.default_rng(0)
    psf = make_psf(psf_config, ratio)
    srf = rng.random((3, 8))
    srf /= srf.sum(1, keepdims=True)
    gt = rng.random((8, 4 * ratio, 4 * ratio))
    lr_hsi, hr_msi = spatial_degrade(gt, psf), spectral_degrade(gt, srf)
    x = gt + 0.05 * rng.standard_normal(gt.shape)
    px = project_onto_observations(x, lr_hsi, hr_msi, psf, srf, iterations=200)
    assert isinstance(px, np.ndarray) and px.shape == gt.shape and px.dtype == gt.dtype
    np.testing.assert_allclose(spatial_degrade(px, psf), lr_hsi, atol=1e-8)
    np.testing.assert_allclose(spectral_degrade(px, srf), hr_msi, atol=1e-8)
    np.testing.assert_allclose(project_onto_observations(gt, lr_hsi, hr_msi, psf, srf, 50), gt, atol=1e-10)
    np.testing.assert_allclose(project_onto_observations(px, lr_hsi, hr_msi, psf, srf, 50), px, atol=1e-8)
    d = lambda a, b: float(((a - b) ** 2).sum())
    assert d(x, gt) == pytest.approx(d(x, px) + d(px, gt), rel=1e-6)
    # white noise keeps its null-space share: 1 - rank(A) / size, where the MSI's own LR image is
    # counted once (the two observations share it)
    (bands, height, width), (msi_bands, lr_h, lr_w) = gt.shape, (srf.shape[0], *lr_hsi.shape[1:])
    rank = msi_bands * height * width + bands * lr_h * lr_w - msi_bands * lr_h * lr_w
    assert d(px, gt) / d(x, gt) == pytest.approx(1 - rank / gt.size, rel=0.1)
    # zero iterations change nothing
    np.testing.assert_array_equal(project_onto_observations(x, lr_hsi, hr_msi, psf, srf, 0), x)


def test_numpy_and_torch_paths_agree_and_torch_is_differentiable():
    rng = np.random.default_rng(1)
    x = rng.random((2, 6, 16, 16))
    srf = rng.random((3, 6))
    srf /= srf.sum(1, keepdims=True)
    for psf in (make_psf({"mode": "block"}, 4), make_psf({"mode": "convolve"}, 4)):
        t = torch.tensor(x, requires_grad=True)
        lr_t = spatial_degrade(t, psf)
        np.testing.assert_allclose(lr_t.detach().numpy(), spatial_degrade(x, psf), atol=1e-12)
        lr_t.sum().backward()
        assert t.grad is not None and torch.isfinite(t.grad).all()
        # a linear operator: the gradient of the sum is the adjoint applied to ones
        assert abs(t.grad.sum().item() - lr_t.numel() * psf.kernel.sum()) < 1e-3
    msi = spectral_degrade(x, srf)
    np.testing.assert_allclose(msi, np.einsum("lb,nbhw->nlhw", srf, x), atol=1e-12)
    np.testing.assert_allclose(spectral_degrade(torch.tensor(x), srf).numpy(), msi, atol=1e-12)
    assert torch.autograd.gradcheck(lambda v: spatial_degrade(v, make_psf({}, 2)), torch.rand(1, 2, 8, 8, dtype=torch.float64, requires_grad=True))


def test_unbatched_and_batched_shapes():
    x = np.zeros((31, 64, 32), np.float32)
    psf = make_psf({"mode": "block"}, 8)
    assert spatial_degrade(x, psf).shape == (31, 8, 4)
    assert spatial_degrade(x[None], psf).shape == (1, 31, 8, 4)
    with pytest.raises(DataError, match="not a multiple of the ratio 8"):
        spatial_degrade(np.zeros((3, 60, 32)), psf)


def test_crop_to_ratio_reports_the_old_size():
    x = np.zeros((3, 37, 42))
    cropped, old = crop_to_ratio(x, 4)
    assert cropped.shape == (3, 36, 40) and old == (37, 42)
    assert crop_to_ratio(cropped, 4)[1] is None
    with pytest.raises(DataError, match="smaller than the ratio"):
        crop_to_ratio(np.zeros((3, 3, 8)), 4)


def test_psf_rejects_bad_settings(tmp_path):
    with pytest.raises(DataError, match="kernel of size ratio=4"):
        PSF(kernel=gaussian_kernel(5, 1.0), ratio=4, mode="block")
    bad = tmp_path / "k.csv"
    bad.write_text("1,2\n3,-4\n")
    with pytest.raises(DataError, match="k.csv"):
        make_psf({"kernel_file": str(bad)}, 2)
    good = tmp_path / "k.npy"
    np.save(good, np.ones((3, 3)))
    assert abs(make_psf({"kernel_file": str(good)}, 3).kernel.sum() - 1) < 1e-6
    # an odd kernel cannot be centred between the two middle pixels of an even block
    with pytest.raises(DataError, match="kernel side of the ratio's parity"):
        make_psf({"kernel_file": str(good)}, 2)
    assert make_psf({"kernel_file": str(good), "offset": 1}, 2).offset == 1


def test_noise_reaches_the_requested_snr():
    x = np.random.default_rng(2).random((4, 128, 128)) + 0.5
    noisy = add_noise(x, 30.0, torch.Generator().manual_seed(0))
    for b in range(4):
        snr = 10 * np.log10((x[b] ** 2).mean() / ((noisy[b] - x[b]) ** 2).mean())
        assert abs(snr - 30.0) < 0.2
    assert add_noise(x, None, torch.Generator()) is x


# -- spectral responses -----------------------------------------------------------------------------
def test_nikon_d700_resampled_to_cave_bands_is_the_integer_table_over_row_sums(shared_data):
    wl = np.arange(400, 701, 10)
    srf = srf_matrix(read_response("nikon_d700"), wl)
    ints = np.loadtxt(shared_data / "srf" / "srf_nikon_d700_createF_3x31_int.csv", delimiter=",", comments="#")
    np.testing.assert_allclose(ints.sum(axis=1), [255, 203, 251])
    np.testing.assert_allclose(srf.matrix, ints / ints.sum(axis=1, keepdims=True), atol=1e-7)
    assert srf.names == ("R", "G", "B")


@pytest.mark.parametrize("name", sorted(SHIPPED))
@pytest.mark.parametrize("wl", [np.arange(400, 701, 10.0), np.linspace(430, 860, 103), np.linspace(363, 1018, 128)])
def test_srf_rows_sum_to_one(name, wl):
    srf = srf_matrix(read_response(name), wl)
    np.testing.assert_allclose(srf.matrix.sum(axis=1), 1.0, atol=1e-6)
    assert (srf.matrix >= 0).all() and srf.matrix.shape[1] == len(wl)


def test_worldview3_keeps_bands_inside_the_hsi_range_and_matches_its_generator():
    shipped = read_response("worldview3")
    generated = worldview3_gaussian_table()
    np.testing.assert_allclose(shipped.response, generated.response, rtol=1e-5, atol=1e-12)
    assert srf_matrix(shipped, np.linspace(430, 860, 103)).names == ("blue", "green", "yellow", "red", "red_edge", "nir1")
    assert len(srf_matrix(shipped, np.linspace(363, 1018, 128)).names) == 8
    # FWHM spans the published edges: half maximum at the edges of the red band (626, 696)
    red = dict(zip(generated.names, generated.response.T))["red"]
    wl = generated.wavelengths
    assert abs(red[wl == 626][0] - 0.5) < 0.01 and abs(red[wl == 696][0] - 0.5) < 0.01


def test_user_srf_csv_and_its_errors(tmp_path):
    good = tmp_path / "cam.csv"
    good.write_text("wavelength_nm,a,b\n400,1,0\n500,1,1\n600,0,1\n")
    srf = srf_matrix(read_response(good), np.array([400, 450, 500, 550, 600.0]))
    np.testing.assert_allclose(srf.matrix.sum(1), 1, atol=1e-6)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("wavelength_nm,a,b\n400,1\n")
    with pytest.raises(DataError, match="ragged.csv"):
        read_response(ragged)
    with pytest.raises(DataError, match="no such shipped response"):
        read_response("landsat99")
    with pytest.raises(DataError, match="no band centre lies inside"):
        srf_matrix(read_response(good), np.array([900.0, 1000.0]))
