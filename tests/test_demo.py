"""The embedded demo dataset: deterministic, in range, and neither input alone gives the target."""

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsrdiff.data.demo import WAVELENGTHS, generate_demo, scene_names, spectrum_library
from hsrdiff.degradation import make_psf, spatial_degrade
from hsrdiff.srf import read_response, srf_matrix

SETTINGS = {"seed": 0, "n_train": 6, "n_test": 2, "size": 64, "n_endmembers": 6}


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "scenes.h5"
    generate_demo(SETTINGS, path)
    return path


def _scenes(path):
    with h5py.File(path) as fh:
        return {name: fh[f"scenes/{name}"][()] for name in fh["scenes"]}


def test_names_shapes_and_range(demo_file):
    scenes = _scenes(demo_file)
    train, test = scene_names(SETTINGS)
    assert sorted(scenes) == sorted(train + test) and len(train) == 6 and len(test) == 2
    for cube in scenes.values():
        assert cube.shape == (31, 64, 64) and cube.dtype == np.float32
        assert 0 <= cube.min() and cube.max() <= 1 and cube.std() > 0.02
    with h5py.File(demo_file) as fh:
        np.testing.assert_array_equal(fh["wavelengths"][()], np.arange(400, 701, 10))
        train_photos = {fh[f"scenes/{n}"].attrs["photo"] for n in train}
        test_photos = {fh[f"scenes/{n}"].attrs["photo"] for n in test}
    assert not train_photos & test_photos  # test scenes come from unseen photographs


def test_deterministic_from_the_seed(demo_file, tmp_path):
    again = tmp_path / "again.h5"
    generate_demo(SETTINGS, again)
    other = tmp_path / "other.h5"
    generate_demo({**SETTINGS, "seed": 1}, other)
    a, b, c = _scenes(demo_file), _scenes(again), _scenes(other)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.allclose(a["train_00"], c["train_00"])


def test_spectra_are_smooth_and_physical():
    lib = spectrum_library(np.random.default_rng(0))
    assert lib.shape == (32, len(WAVELENGTHS))
    assert lib.min() >= 0.02 and lib.max() <= 0.95
    assert np.abs(np.diff(lib, 2, axis=1)).max() < 0.2  # no jumps between 10 nm neighbours


def test_neither_input_alone_determines_the_target(demo_file):
    scenes = _scenes(demo_file)
    srf = srf_matrix(read_response("nikon_d700"), WAVELENGTHS).matrix.astype(np.float64)
    train = np.concatenate([scenes[n].reshape(31, -1) for n in scenes if n.startswith("train")], axis=1)
    test = np.concatenate([scenes[n].reshape(31, -1) for n in scenes if n.startswith("test")], axis=1)
    # Best fixed linear map HR-MSI -> HSI fitted on the training scenes, applied to the test ones.
    mapping, *_ = np.linalg.lstsq((srf @ train).T, train.T, rcond=None)
    predicted = ((srf @ test).T @ mapping).T
    rmse_msi = np.sqrt(((predicted - test) ** 2).mean())
    # Bicubic upsampling of the LR-HSI.
    psf = make_psf({}, 4)
    errs = []
    for n in (n for n in scenes if n.startswith("test")):
        lr = torch.from_numpy(spatial_degrade(scenes[n], psf))[None]
        up = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)[0].numpy()
        errs.append(np.sqrt(((up - scenes[n]) ** 2).mean()))
    # Both leave an error well above what a fusion method must reach (PSNR > 40 dB is RMSE < 0.01).
    assert rmse_msi > 0.01, rmse_msi
    assert np.mean(errs) > 0.01, errs
