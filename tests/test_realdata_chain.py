"""The whole chain on real AVIRIS data (Jasper Ridge): train on the image minus a corner, fuse the
corner, beat bicubic on PSNR and SAM. Skipped with a reason when ../shared/data is absent."""

import numpy as np
import pytest

from conftest import make_config
from test_realdata import JASPER
from test_training import training_defaults
from hsrdiff.data.patches import extract_patches
from hsrdiff.data.prepare import prepare_scene
from hsrdiff.data.registry import DatasetSpec
from hsrdiff.data.simulate import degrade_scene
from hsrdiff.diffusion import Schedule
from hsrdiff.baselines import bicubic
from hsrdiff.io import read_arrays
from hsrdiff.metrics import psnr, sam
from hsrdiff.sampling import fuse
from hsrdiff.models import load_weights
from hsrdiff.training.trainer import StagePaths, train_stage


@pytest.mark.slow
@pytest.mark.realdata
def test_jasper_ridge_fusion_beats_bicubic_on_a_held_out_corner(shared_data, tmp_path):
    entry = {**JASPER, "source": {"path": str(shared_data / "real" / "jasper_ridge_aviris_100x100x198.mat")}}
    spec = DatasetSpec.from_config(make_config({"jasper": entry}), "jasper")
    for scene in spec.train_scenes + spec.test_scenes:
        prepare_scene(spec.name, spec.scene(scene), spec.reader_settings(), spec.raw_location(), tmp_path / f"{scene}_prep.h5")
        degrade_scene(spec.name, spec.scene(scene), spec.degradation_settings(), tmp_path / f"{scene}_prep.h5", tmp_path / f"{scene}.h5")
    extract_patches([tmp_path / f"{s}.h5" for s in spec.train_scenes], 32, tmp_path / "p32.h5", stride_fraction=0.25)

    training, diffusion = training_defaults(log_every=50, checkpoint_every=1000)
    stage = {"name": "s1", "patch_size": 32, "batch_size": 8, "iterations": 300, "learning_rate": 1e-3, "trainable": "all"}
    model_cfg = {"architecture": "cdformer", "channels": 32, "depth": 2, "heads": 2, "window": 8,
                 "ffn_expansion": 2.0, "noise_embedding_scale": 5000.0}
    train_stage(StagePaths(tmp_path / "p32.h5", tmp_path / "w.pt", tmp_path / "ckpt"), stage, model_cfg, training, diffusion)
    model, _ = load_weights(tmp_path / "w.pt")

    corner = read_arrays(tmp_path / "corner.h5", "gt", "lr_hsi", "hr_msi")
    schedule = Schedule.from_config({"steps": 25, "beta_start": 1e-4, "beta_end": 0.4})
    fused = fuse(model, corner["lr_hsi"], corner["hr_msi"], ratio=4, sampler=schedule).fused
    floor = bicubic(corner["lr_hsi"], 4).fused
    gt = corner["gt"]
    assert psnr(fused, gt) > psnr(floor, gt), (psnr(fused, gt), psnr(floor, gt))
    assert sam(fused, gt) < sam(floor, gt), (sam(fused, gt), sam(floor, gt))
    print(f"jasper corner: fused {psnr(fused, gt):.2f} dB / SAM {sam(fused, gt):.2f}; "
          f"bicubic {psnr(floor, gt):.2f} dB / SAM {sam(floor, gt):.2f}")
    assert np.isfinite(fused).all()


@pytest.mark.slow
@pytest.mark.realdata
def test_houston_pair_through_the_workflow_at_both_resolutions(shared_data, tmp_path, default_config):
    """config/real/houston.yaml at tiny size: operators estimated from the real pair, a network
    trained at reduced resolution, scored there, then the pair fused at full resolution and judged
    without a reference, with an uncertainty map."""
    import copy

    import h5py
    import pandas as pd
    import yaml

    from conftest import REPO
    from hsrdiff.config import deep_merge
    from test_workflow import run_snakemake

    config = deep_merge(copy.deepcopy(default_config), yaml.safe_load((REPO / "config" / "real" / "houston.yaml").read_text()))
    config["datasets"]["houston"]["source"]["path"] = str(shared_data / "real" / "houston_casi_rgb_pair.mat")
    config["model"] = {"channels": 8, "depth": 2, "heads": 2, "window": 8}
    config["training"]["stages"] = [{"name": "s1", "patch_size": 16, "batch_size": 4, "iterations": 4}]
    config["diffusion"] = {"sample_schedule": {"steps": 2}}
    config["evaluation"].update(methods=["hsrdiff", "cnmf", "bicubic"], full_resolution_samples=2,
                                cnmf={"inner_iterations": 10, "outer_iterations": 1})
    result = run_snakemake(tmp_path, config, "--cores", "2", "results/houston/full_resolution.md", "results/houston/summary.md")
    assert result.returncode == 0, result.stderr[-4000:]

    with h5py.File(tmp_path / "resources" / "degraded" / "houston" / "north_west.h5") as fh:
        assert fh["gt"].shape == (48, 64, 64) and fh["lr_hsi"].shape == (48, 16, 16) and fh["hr_msi"].shape == (3, 64, 64)
        assert fh["srf"].shape == (3, 48) and fh.attrs["srf_source"] == "estimated from the pair"
    reduced = pd.read_csv(tmp_path / "results" / "houston" / "metrics.csv")
    assert sorted(reduced["method"]) == ["bicubic", "cnmf", "hsrdiff"] and reduced["psnr"].between(10, 80).all()

    table = pd.read_csv(tmp_path / "results" / "houston" / "full_resolution.csv").set_index("method")
    assert list(table.index) == ["hsrdiff", "cnmf", "bicubic"]
    assert table[["lr_psnr", "msi_psnr", "qnr"]].notna().all().all() and table["qnr"].between(0, 1).all()
    assert "fit residual 0.16" in (tmp_path / "results" / "houston" / "full_resolution.md").read_text()
    with h5py.File(tmp_path / "results" / "houston" / "full_resolution" / "hsrdiff.h5") as fh:
        assert fh["fused"].shape == (48, 512, 512) and fh["std"].shape == (48, 512, 512)
    assert (tmp_path / "results" / "houston" / "figures" / "full_resolution.png").stat().st_size > 20000
