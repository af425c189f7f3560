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
