"""A real pair as a registry entry (hsrdiff.data.pair): operators estimated at prepare, Wald's
reduced resolution at degrade, and the no-reference indices (hsrdiff.noref). A synthetic pair
in a MATLAB file whose operators are known; the Houston pair's whole chain is in
tests/test_realdata_chain.py."""

import copy

import numpy as np
import pytest
import scipy.io

from hsrdiff.baselines import bicubic
from hsrdiff.config import check_consistency, validate_config
from hsrdiff.data.pair import msi_without_offset, read_pair
from hsrdiff.data.prepare import prepare_scene
from hsrdiff.data.registry import DatasetSpec
from hsrdiff.data.simulate import degrade_scene
from hsrdiff.degradation import make_psf, spatial_degrade, spectral_degrade
from hsrdiff.errors import ConfigError, DataError
from hsrdiff.files import read_observations
from hsrdiff.noref import q_matrix, qnr
from test_operators import BANDS, nikon, scene

RATIO, OFFSET = 4, 0.05


@pytest.fixture()
def pair_file(tmp_path):
    """HR truth x (never shown to the code), its LR-HSI by a known PSF and its MSI by a known
    response plus a dark level, stored (H, W, bands) as MATLAB v5 like the Houston file."""
    x, srf = scene(4), nikon()
    psf = make_psf({"mode": "convolve", "sigma": 1.5}, RATIO)
    lr_hsi = spatial_degrade(x, psf)
    msi = spectral_degrade(x, srf) + np.float32(OFFSET)
    path = tmp_path / "pair.mat"
    scipy.io.savemat(path, {"hsi": np.transpose(lr_hsi, (1, 2, 0)), "msi": np.transpose(msi, (1, 2, 0))})
    return path, x, lr_hsi, msi, psf, srf


def pair_config(default_config, path, **entry):
    config = copy.deepcopy(default_config)
    config["active_datasets"] = ["mypair"]
    config["datasets"]["mypair"] = {
        "source": {"path": str(path)}, "reader": "mat", "variable": "hsi", "msi_variable": "msi", "axis_order": "hwb",
        "wavelengths": {"start": 400, "stop": 700, "count": BANDS}, "scale": "max", "ratio": RATIO,
        "psf": "estimate", "srf": "estimate",
        "scenes": {"train": [{"name": "left", "region": [0, 32, 0, 16]}], "test": [{"name": "right", "region": [0, 32, 16, 32]}]},
        **entry}
    config["datasets"]["mypair"] = {k: v for k, v in config["datasets"]["mypair"].items() if v is not None}
    return validate_config(config)


def test_prepare_and_degrade_a_pair_at_reduced_resolution(tmp_path, default_config, pair_file):
    path, _, lr_hsi, msi, psf, srf = pair_file
    spec = DatasetSpec.from_config(pair_config(default_config, path), "mypair")
    scene = spec.scene("right")
    prepare_scene("mypair", scene, spec.reader_settings(), path, tmp_path / "p.h5")
    degrade_scene("mypair", scene, spec.degradation_settings(), tmp_path / "p.h5", tmp_path / "d.h5")
    obs = read_observations(tmp_path / "d.h5")
    # The reference is the observed HSI's region (scaled by the whole image's maximum) ...
    np.testing.assert_allclose(obs.gt, lr_hsi[:, :, 16:32] / lr_hsi.max(), rtol=1e-5, atol=1e-6)
    assert obs.lr_hsi.shape == (BANDS, 8, 4) and obs.hr_msi.shape == (3, 32, 16)
    # ... with the operators estimated from the whole pair: the PSF and the response's shape come back.
    assert np.abs(obs.psf.kernel - psf.kernel).max() < 0.05 * psf.kernel.max()
    estimated = obs.srf / obs.srf.sum(1, keepdims=True)
    assert np.linalg.norm(estimated - srf / srf.sum(1, keepdims=True)) / np.linalg.norm(srf / srf.sum(1, keepdims=True)) < 0.06
    # The inputs one scale down: the HSI through the estimated PSF; the real MSI, not srf @ gt,
    # through the same PSF, less the dark level, which then agrees with srf @ gt.
    np.testing.assert_allclose(obs.lr_hsi, spatial_degrade(obs.gt, obs.psf), atol=1e-6)
    expected_msi = msi_without_offset(spatial_degrade(msi[:, :, 64:128] / msi.max(), obs.psf), OFFSET / msi.max() * np.ones(3))
    np.testing.assert_allclose(obs.hr_msi, expected_msi, atol=0.01)
    assert np.abs(obs.hr_msi - np.einsum("lb,bhw->lhw", obs.srf, obs.gt)).mean() < 0.01 * obs.hr_msi.mean()


@pytest.mark.parametrize("change,message", [
    ({"srf": "nikon_d700"}, "msi_variable: a real pair's response is fitted from it: set srf: estimate"),
    ({"msi_variable": None}, "'estimate' fits the operator from a real pair; set datasets.mypair.msi_variable"),
])
def test_estimate_and_msi_variable_go_together(default_config, pair_file, change, message):
    path = pair_file[0]
    config = pair_config(default_config, path, **change)
    with pytest.raises(ConfigError, match=message):
        check_consistency(config)


def test_an_msi_of_the_wrong_size_is_named(tmp_path, default_config, pair_file):
    _, _, lr_hsi, msi, _, _ = pair_file
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"hsi": np.transpose(lr_hsi, (1, 2, 0)), "msi": np.transpose(msi[:, :100, :100], (1, 2, 0))})
    spec = DatasetSpec.from_config(pair_config(default_config, path), "mypair")
    with pytest.raises(DataError, match=r"bad.mat: MSI 'msi' is 100x100; the HSI 32x32 at ratio 4 needs 128x128"):
        read_pair("mypair", spec.reader_settings(), path)


def test_q_index_is_one_for_identical_bands_and_qnr_prefers_the_truth_to_bicubic(default_config, pair_file):
    path, x, lr_hsi, _, _, _ = pair_file
    rng = np.random.default_rng(0)
    cube = rng.random((4, 32, 32))
    np.testing.assert_allclose(np.diag(q_matrix(cube, cube, 8)), 1.0)
    assert np.all(np.abs(q_matrix(cube, 1 - cube, 8)) <= 1)
    spec = DatasetSpec.from_config(pair_config(default_config, path), "mypair")
    pair = read_pair("mypair", spec.reader_settings(), path)
    hr_msi = msi_without_offset(pair.msi, pair.fit.offset)
    truth = x / lr_hsi.max()  # the HR cube on the scale prepare gives the observed HSI
    of_truth = qnr(truth, pair.hsi, hr_msi, pair.fit.psf)
    of_bicubic = qnr(bicubic(pair.hsi, RATIO).fused, pair.hsi, hr_msi, pair.fit.psf)
    assert 0 <= of_bicubic["qnr"] <= 1 and 0 <= of_truth["qnr"] <= 1
    assert of_truth["d_s"] < of_bicubic["d_s"] and of_truth["qnr"] > of_bicubic["qnr"]


def test_a_pair_on_one_grid_keeps_its_hsi_as_reference_and_its_real_msi(tmp_path, default_config):
    """Paris's case (Hyperion + ALI on one 30 m grid): only the response is fitted; the HSI is the
    reference, the LR-HSI is simulated with the entry's PSF, the MSI is the real one."""
    x, srf = scene(5), nikon()
    msi = spectral_degrade(x, srf) + np.float32(OFFSET)
    path = tmp_path / "grid.mat"
    scipy.io.savemat(path, {"hsi": np.transpose(x, (1, 2, 0)), "msi": np.transpose(msi, (1, 2, 0))})
    config = pair_config(default_config, path, psf={"sigma": 1.0},
                         scenes={"train": [{"name": "left", "region": [0, 128, 0, 64]}],
                                 "test": [{"name": "right", "region": [0, 128, 64, 128]}]})
    spec = DatasetSpec.from_config(config, "mypair")
    scene_ = spec.scene("right")
    prepare_scene("mypair", scene_, spec.reader_settings(), path, tmp_path / "p.h5")
    degrade_scene("mypair", scene_, spec.degradation_settings(), tmp_path / "p.h5", tmp_path / "d.h5")
    obs = read_observations(tmp_path / "d.h5")
    np.testing.assert_allclose(obs.gt, x[:, :, 64:] / x.max(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(obs.lr_hsi, spatial_degrade(obs.gt, make_psf({"sigma": 1.0}, RATIO)), atol=1e-6)
    np.testing.assert_allclose(obs.hr_msi, msi[:, :, 64:] / msi.max() - OFFSET / msi.max(), atol=2e-3)
    assert np.linalg.norm(obs.srf * msi.max() / x.max() - srf) / np.linalg.norm(srf) < 0.04

    estimate = DatasetSpec.from_config(pair_config(default_config, path), "mypair")
    with pytest.raises(ConfigError, match=r"the pair's images have one size \(128x128\), so there is no blur"):
        prepare_scene("mypair", estimate.scene("right"), estimate.reader_settings(), path, tmp_path / "q.h5")


def test_msi_no_data_is_filled_from_the_hsi(tmp_path, default_config, pair_file):
    path, x, lr_hsi, msi, _, _ = pair_file
    msi = msi.copy()
    msi[:, 16:48, 16:40] = 0
    holed = tmp_path / "holed.mat"
    scipy.io.savemat(holed, {"hsi": np.transpose(lr_hsi, (1, 2, 0)), "msi": np.transpose(msi, (1, 2, 0))})
    spec = DatasetSpec.from_config(pair_config(default_config, holed), "mypair")
    pair = read_pair("mypair", spec.reader_settings(), holed)
    assert np.all(np.any(pair.msi != 0, axis=0)) and pair.fit.excluded > 0
    filled = pair.msi[:, 16:48, 16:40]
    truth = (spectral_degrade(x, nikon()) + np.float32(OFFSET))[:, 16:48, 16:40] / msi.max()
    assert np.abs(filled - truth).mean() < 0.1 * truth.mean()
