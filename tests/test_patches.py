"""Patch extraction keeps LR/HR geometry; the lazy Dataset augments the triple consistently."""

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import make_config
from hsrdiff.baselines import fusion_base
from hsrdiff.data.patches import PatchDataset, extract_patches, patch_origins
from hsrdiff.degradation import DIHEDRAL_VIEWS, dihedral, undo_dihedral
from hsrdiff.data.registry import DatasetSpec
from hsrdiff.data.simulate import degrade_scene
from hsrdiff.degradation import make_psf, spatial_degrade, spectral_degrade
from hsrdiff.errors import DataError

RATIO = 4


@pytest.fixture
def degraded_scenes(tmp_path):
    """Two degraded scenes of different sizes with the block PSF (exact LR/HR correspondence)."""
    rng = np.random.default_rng(0)
    entry = {
        "source": {"path": str(tmp_path)}, "reader": "npy", "axis_order": "bhw",
        "wavelengths": {"start": 400, "stop": 700, "count": 31}, "scale": 1.0, "ratio": RATIO,
        "psf": {"mode": "block", "sigma": 1.5}, "srf": "nikon_d700", "scenes": {"train": ["a", "b"]},
    }
    spec = DatasetSpec.from_config(make_config({"d": entry}), "d")
    paths = []
    for name, shape in (("a", (31, 64, 48)), ("b", (31, 40, 72))):
        prepared = tmp_path / f"{name}_prep.h5"
        with h5py.File(prepared, "w") as fh:
            fh["hsi"] = rng.random(shape, dtype=np.float32)
            fh["wavelengths"] = np.arange(400, 701, 10.0)
        out = tmp_path / f"{name}.h5"
        degrade_scene(spec.name, spec.scene(name), spec.degradation_settings(), prepared, out)
        paths.append(out)
    return spec, paths


def test_patch_origins_cover_the_far_edge():
    assert patch_origins(64, 32, 16) == [0, 16, 32]
    assert patch_origins(40, 32, 16) == [0, 8]
    assert patch_origins(32, 32, 16) == [0]


def test_lr_patch_is_the_degradation_of_its_hr_patch(degraded_scenes, tmp_path):
    spec, paths = degraded_scenes
    out = tmp_path / "p32.h5"
    summary = extract_patches(paths, 32, out, stride_fraction=0.5)
    # scene a: rows [0,16,32] x cols [0,16]; scene b: rows [0,8] x cols [0,16,32,40]
    assert summary["patches"] == 3 * 2 + 2 * 4
    psf = make_psf(spec.entry["psf"], RATIO)
    with h5py.File(out) as fh:
        gt, lr, msi, srf = fh["gt"][()], fh["lr_hsi"][()], fh["hr_msi"][()], fh["srf"][()]
        assert gt.shape == (14, 31, 32, 32) and lr.shape == (14, 31, 8, 8) and msi.shape == (14, 3, 32, 32)
        assert fh["gt"].chunks == (1, 31, 32, 32)
        assert (fh["origin"][()] % RATIO == 0).all()
    np.testing.assert_allclose(spatial_degrade(gt, psf), lr, atol=1e-6)
    np.testing.assert_allclose(spectral_degrade(gt, srf), msi, atol=1e-6)


def test_full_size_uses_the_largest_common_size(degraded_scenes, tmp_path):
    _, paths = degraded_scenes
    summary = extract_patches(paths, "full", tmp_path / "pfull.h5", stride_fraction=1.0)
    assert summary["patch"] == (40, 48)


def test_max_per_scene_thins_evenly(degraded_scenes, tmp_path):
    _, paths = degraded_scenes
    assert extract_patches(paths, 16, tmp_path / "p.h5", stride_fraction=0.25, max_per_scene=5)["patches"] == 10


def test_patch_larger_than_a_scene_is_an_error(degraded_scenes, tmp_path):
    _, paths = degraded_scenes
    out = tmp_path / "p48.h5"
    with pytest.raises(DataError, match=r"patch size 48 is larger than training scene\(s\) b \(40x72\)"):
        extract_patches(paths, 48, out)
    assert not out.exists()
    with pytest.raises(DataError, match="patch size 30 is not a multiple of the ratio 4"):
        extract_patches(paths, 30, out)


def test_augmentation_keeps_the_triple_consistent(degraded_scenes, tmp_path):
    spec, paths = degraded_scenes
    out = tmp_path / "p32.h5"
    extract_patches(paths, 32, out)
    psf = make_psf(spec.entry["psf"], RATIO)
    ds = PatchDataset(out, augment=True)
    torch.manual_seed(0)
    for i in range(len(ds)):
        item = ds[i]
        np.testing.assert_allclose(spatial_degrade(item["gt"], psf), item["lr_hsi"], atol=1e-5)
    plain = PatchDataset(out)
    assert len(ds) == len(plain) == 14
    assert any(not torch.equal(ds[i]["gt"], plain[i]["gt"]) for i in range(len(ds)))  # it did augment


def test_bases_are_cut_from_the_whole_scenes_and_augmented_with_the_triple(degraded_scenes, tmp_path):
    spec, paths = degraded_scenes
    out = tmp_path / "p32.h5"
    extract_patches(paths, 32, out, stride_fraction=0.5, bases=["bicubic", "glp-hs"])
    psf = make_psf(spec.entry["psf"], RATIO)
    with h5py.File(out) as fh:
        assert fh.attrs["bases"] == "bicubic,glp-hs"
        first = fh["scene_index"][()] == 0
        origins, stored = fh["origin"][()][first], fh["base_glp-hs"][()][first]
        gt = fh["gt"][()]
    with h5py.File(paths[0]) as fh:
        scene = fusion_base("glp-hs", torch.from_numpy(fh["lr_hsi"][()])[None], torch.from_numpy(fh["hr_msi"][()])[None], psf)[0]
    for (r, c), base in zip(origins, stored):
        np.testing.assert_allclose(base, scene[:, r : r + 32, c : c + 32].numpy(), atol=1e-6)
    # the point of storing it: a base computed on the patch alone is a different image
    with h5py.File(out) as fh:
        alone = fusion_base("glp-hs", torch.from_numpy(fh["lr_hsi"][0])[None], torch.from_numpy(fh["hr_msi"][0])[None], psf)[0]
    assert np.abs(alone.numpy() - stored[0]).max() > 1e-3
    ds, plain = PatchDataset(out), PatchDataset(out)
    assert set(ds[0]) == {"gt", "lr_hsi", "hr_msi", "base_bicubic", "base_glp-hs"}
    for rot, flip in ((1, False), (2, True), (3, True)):
        item = ds[(5, rot, flip)]
        np.testing.assert_array_equal(item["base_glp-hs"], dihedral(plain[5]["base_glp-hs"], rot, flip))
        np.testing.assert_array_equal(item["gt"], dihedral(torch.from_numpy(gt[5]), rot, flip))
    with pytest.raises(DataError, match="unknown model base 'sharp'"):
        extract_patches(paths, 32, tmp_path / "bad.h5", bases=["sharp"])


def test_patches_cut_the_bases_the_base_rule_wrote(degraded_scenes, tmp_path):
    """The workflow computes each scene's base once (rule base) and the patch files cut it: the
    same patches as computing it here; a base without a file is still computed; a file of the
    wrong shape is refused naming it."""
    from hsrdiff.baselines import write_scene_base
    from hsrdiff.files import write_base

    _, paths = degraded_scenes
    files = [tmp_path / f"glp-{p.stem}.h5" for p in paths]
    for path, file in zip(paths, files):
        write_scene_base(path, "glp-hs", file)
    extract_patches(paths, 32, tmp_path / "computed.h5", bases=["bicubic", "glp-hs"])
    extract_patches(paths, 32, tmp_path / "read.h5", bases=["bicubic", "glp-hs"], base_files=files[::-1])
    with h5py.File(tmp_path / "computed.h5") as a, h5py.File(tmp_path / "read.h5") as b:
        for key in ("base_glp-hs", "base_bicubic", "gt"):
            np.testing.assert_allclose(a[key][()], b[key][()], atol=1e-6)
    with h5py.File(files[0]) as fh:
        base = fh["base"][()]
    write_base(files[0], base[:, :-4], "glp-hs", paths[0].stem, {})
    with pytest.raises(DataError, match=f"glp-{paths[0].stem}.h5: base of shape"):
        extract_patches(paths, 32, tmp_path / "bad.h5", bases=["glp-hs"], base_files=files)


def test_dihedral_gives_eight_distinct_transforms():
    x = torch.arange(9.0).reshape(1, 3, 3)
    outs = {tuple(dihedral(x, rot, flip).flatten().tolist()) for rot in range(4) for flip in (False, True)}
    assert len(outs) == 8
    assert torch.equal(dihedral(x, 0, False), x)
    assert sorted(DIHEDRAL_VIEWS) == [(rot, flip) for rot in range(4) for flip in (False, True)]
    y = torch.arange(12.0).reshape(1, 3, 4)
    for i, (rot, flip) in enumerate(DIHEDRAL_VIEWS):
        assert torch.equal(undo_dihedral(dihedral(y, rot, flip), rot, flip), y)
        assert dihedral(y, rot, flip).shape[-2:] == ((3, 4) if i < 4 else (4, 3))  # the first four keep H and W


def test_dataset_works_with_worker_processes(degraded_scenes, tmp_path):
    _, paths = degraded_scenes
    out = tmp_path / "p16.h5"
    n = extract_patches(paths, 16, out)["patches"]
    loader = DataLoader(PatchDataset(out, augment=True), batch_size=4, num_workers=2, shuffle=True)
    batches = list(loader)
    assert sum(b["gt"].shape[0] for b in batches) == n
    assert batches[0]["lr_hsi"].shape[1:] == (31, 4, 4) and batches[0]["hr_msi"].shape[1:] == (3, 16, 16)


def test_dataset_reports_a_bad_file(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as fh:
        fh["gt"] = np.zeros((2, 3, 4, 4))
    with pytest.raises(DataError, match="bad.h5: no dataset 'lr_hsi'"):
        PatchDataset(path)


@pytest.mark.parametrize("setting", [
    # the demo: 31 bands, Nikon D700, x4, the default Gaussian
    {"bands": (400, 700, 31), "srf": "nikon_d700", "ratio": 4, "psf": {"mode": "convolve"}, "size": 96, "patch": 32},
    # PaviaU-like: 103 bands, WorldView-3, x4
    {"bands": (430, 860, 103), "srf": "worldview3", "ratio": 4, "psf": {"mode": "convolve"}, "size": 64, "patch": 32},
    # the CAVE x32 protocol: 32x32 blocks, Gaussian sigma 10
    {"bands": (400, 700, 31), "srf": "nikon_d700", "ratio": 32, "psf": {"mode": "block", "sigma": 10}, "size": 128, "patch": 64},
])
def test_observation_terms_of_the_loss_vanish_on_the_ground_truth_under_every_augmentation(tmp_path, setting):
    """What the loss re-degrades from a (flipped, rotated) ground-truth patch equals the patch's
    observations, cut from the scene-level simulation: the loss trains on no jitter."""
    from hsrdiff.diffusion import fusion_loss

    start, stop, count = setting["bands"]
    entry = {"source": {"path": str(tmp_path)}, "reader": "npy", "axis_order": "bhw",
             "wavelengths": {"start": start, "stop": stop, "count": count}, "scale": 1.0, "ratio": setting["ratio"],
             "psf": setting["psf"], "srf": setting["srf"], "scenes": {"train": ["a"]}}
    spec = DatasetSpec.from_config(make_config({"d": entry}), "d")
    rng = np.random.default_rng(1)
    with h5py.File(tmp_path / "a_prep.h5", "w") as fh:
        # smooth structure plus texture, so that every border pixel matters
        yy, xx = np.mgrid[0 : setting["size"], 0 : setting["size"]] / setting["size"]
        base = 0.5 + 0.3 * np.sin(7 * xx + 3 * yy)[None] * np.linspace(0.5, 1, count)[:, None, None]
        fh["hsi"] = np.clip(base + 0.1 * rng.random((count, setting["size"], setting["size"])), 0, 1).astype(np.float32)
        fh["wavelengths"] = np.linspace(start, stop, count)
    degrade_scene(spec.name, spec.scene("a"), spec.degradation_settings(), tmp_path / "a_prep.h5", tmp_path / "a.h5")
    extract_patches([tmp_path / "a.h5"], setting["patch"], tmp_path / "p.h5", stride_fraction=0.5)
    ds = PatchDataset(tmp_path / "p.h5")
    psf, srf = ds.operators()
    for index in (0, len(ds) // 2, len(ds) - 1):
        for rot in range(4):
            for flip in (0, 1):
                item = ds[(index, rot, flip)]
                gt = item["gt"][None].double()
                terms = fusion_loss(gt, gt, item["lr_hsi"][None].double(), item["hr_msi"][None].double(), psf,
                                    torch.as_tensor(srf, dtype=torch.float64))
                assert terms["lr_term"] < 1e-6 and terms["msi_term"] < 1e-6, (index, rot, flip, terms)
