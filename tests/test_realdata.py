"""Real AVIRIS data (Jasper Ridge) through the user-data path and the CLI.

Skipped with a reason when ../shared/data is absent (a user's fresh clone has none).
"""

import h5py
import numpy as np
import yaml

from conftest import REPO
from hsrdiff.cli import main

JASPER = {
    "description": "Jasper Ridge (AVIRIS), 100x100, 198 of 224 bands",
    "reader": "mat",
    "variable": "Y",
    "axis_order": "bp",  # (198 bands, 10000 pixels) as MATLAB reshapes: column-major
    "pixels": {"height": 100, "width": 100, "order": "column_major"},
    "wavelengths": {"start": 380, "stop": 2500, "count": 224, "select": {"variable": "SlectBands", "index_base": 1}},
    "scale": "max",
    "ratio": 4,
    "srf": "worldview3",
    "scenes": {
        "train": [{"name": "top", "region": [0, 64, 0, 100]}, {"name": "bottom_right", "region": [64, 100, 36, 100]}],
        "test": [{"name": "corner", "region": [64, 100, 0, 36]}],
    },
}


def test_jasper_ridge_prepare_and_degrade_through_the_cli(shared_data, tmp_path):
    with open(REPO / "config" / "config.yaml") as fh:
        config = yaml.safe_load(fh)
    config["datasets"]["jasper"] = {**JASPER, "source": {"path": str(shared_data / "real" / "jasper_ridge_aviris_100x100x198.mat")}}
    config["active_datasets"] = ["jasper"]
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))

    for scene in ("top", "corner"):
        prepared, degraded = tmp_path / f"{scene}_prep.h5", tmp_path / f"{scene}.h5"
        args = ["--config", str(config_path), "--dataset", "jasper", "--scene", scene]
        assert main(["prepare", *args, "--out", str(prepared)]) == 0
        assert main(["degrade", *args, "--input", str(prepared), "--out", str(degraded)]) == 0

    with h5py.File(tmp_path / "top_prep.h5") as fh:
        top = fh["hsi"][()]
        wavelengths = fh["wavelengths"][()]
    assert top.shape == (198, 64, 100) and top.dtype == np.float32
    assert 0 <= top.min() and top.max() <= 1
    assert len(wavelengths) == 198 and 380 < wavelengths[0] < 420 and wavelengths[-1] > 2400

    with h5py.File(tmp_path / "corner.h5") as fh:
        assert fh["gt"].shape == (198, 36, 36)
        assert fh["lr_hsi"].shape == (198, 9, 9)
        assert fh["hr_msi"].shape == (8, 36, 36)  # every WorldView-3 band lies inside 380-2500 nm
        corner = fh["gt"][()]

    # The pixel axis unfolded into an image, not into scrambled rows: neighbouring pixels are far
    # more alike than random pairs (MATLAB's column-major order itself is checked in test_readers).
    along_rows = np.abs(np.diff(top, axis=2)).mean()
    shuffled = np.abs(np.diff(top.reshape(198, -1)[:, np.random.default_rng(0).permutation(64 * 100)], axis=1)).mean()
    assert along_rows < 0.6 * shuffled, (along_rows, shuffled)
    # the test corner is not part of any training region
    assert not np.array_equal(corner, top[:, :36, :36])


def test_band_resampling_and_srf_fit():
    from hsrdiff.realpair import fit_srf, resample_bands

    rng = np.random.default_rng(0)
    cube = rng.random((7, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(resample_bands(cube, 7), cube, atol=1e-6)
    ramp = np.broadcast_to(np.arange(5.0)[:, None, None], (5, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(resample_bands(ramp, 9)[:, 0, 0], np.linspace(0, 4, 9), atol=1e-6)
    srf = np.abs(rng.random((3, 7))).astype(np.float32)
    msi = np.einsum("lb,bhw->lhw", srf, cube)
    np.testing.assert_allclose(fit_srf(cube, msi), srf, atol=1e-4)


def test_real_pair_without_ground_truth_is_fused_and_checked_for_consistency(shared_data, tmp_path):
    """The Paris Hyperion + ALI pair (128 + 9 bands, one resolution) through a 31/3-band model."""
    import torch

    from hsrdiff.models import ModelConfig, build_model
    from hsrdiff.realpair import generalise, load_pair
    from hsrdiff.models import save_atomic

    pair = load_pair(shared_data / "real" / "paris_hyperion_ali_pair.mat", "HSim", "MSim", 4)
    assert pair.hsi.shape == (128, 72, 72) and pair.msi.shape == (9, 72, 72) and pair.lr_hsi.shape == (128, 18, 18)
    assert "simulated" in pair.note
    torch.manual_seed(0)
    mc = ModelConfig(31, 3, channels=8, depth=2, heads=2, window=8)
    save_atomic({"model_config": mc.to_dict(), "state_dict": build_model(mc).state_dict(), "mode": "diffusion",
                 "ratio": 4, "stage": "s"}, tmp_path / "w.pt")
    out = tmp_path / "paris.h5"
    consistency = generalise(tmp_path / "w.pt", pair, 4, {"steps": 4, "beta_start": 1e-3, "beta_end": 0.5}, {}, out)
    assert all(np.isfinite(v) for v in consistency.values())
    assert consistency["msi_psnr"] > 20 and consistency["lr_psnr"] > 20  # the back-projection is meaningful
    with h5py.File(out) as fh:
        assert fh["fused"].shape == (128, 72, 72) and fh["srf_fitted"].shape == (9, 128)
        assert "simulated" in fh.attrs["note"] and "128->31 HSI" in fh.attrs["band_resampling"]


def test_cave_reader_on_a_real_scene_with_the_shipped_entry(shared_data, tmp_path):
    """The shipped `cave` entry, pointed at the CAVE copy (8-bit PNGs), prepares and degrades one
    real test scene by the CAVE x32 protocol."""
    cave = shared_data / "cave" / "complete_ms_data"
    if not cave.is_dir():
        import pytest

        pytest.skip(f"the CAVE copy is absent: {cave}")
    with open(REPO / "config" / "config.yaml") as fh:
        config = yaml.safe_load(fh)
    config["datasets"]["cave"]["source"]["path"] = str(cave)
    config["active_datasets"] = ["cave"]
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    args = ["--config", str(config_path), "--dataset", "cave", "--scene", "watercolors"]
    assert main(["prepare", *args, "--out", str(tmp_path / "prep.h5")]) == 0
    with h5py.File(tmp_path / "prep.h5") as fh:
        hsi = fh["hsi"][()]
        assert hsi.shape == (31, 512, 512) and fh.attrs["split"] == "test"
        # 8-bit bands divided by 255: every value is k / 255 (watercolors is RGBA with equal channels)
        assert fh.attrs["scale_divisor"] == 255 and fh.attrs["source_dtype"] == "uint8"
    np.testing.assert_allclose(hsi * 255, np.round(hsi * 255), atol=1e-3)
    assert 0.2 < hsi.mean() < 0.9
    assert main(["degrade", *args, "--input", str(tmp_path / "prep.h5"), "--out", str(tmp_path / "obs.h5")]) == 0
    with h5py.File(tmp_path / "obs.h5") as fh:
        assert fh["lr_hsi"].shape == (31, 16, 16) and fh["hr_msi"].shape == (3, 512, 512)
        assert fh["psf"].shape == (32, 32) and fh.attrs["ratio"] == 32
