"""Sampling: tiles cover the image, tiling leaves no seams, several samples give an uncertainty map."""

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsrdiff.diffusion import Schedule
from hsrdiff.errors import DataError
from hsrdiff.models import ModelConfig, build_model
from hsrdiff.files import FusionResult, write_fused
from hsrdiff.sampling import blend_window, fuse, tile_boxes

SCHEDULE = Schedule.from_config({"steps": 8, "beta_start": 1e-3, "beta_end": 0.5})


@pytest.fixture(scope="module")
def perturbed_model():
    """A network whose output differs from bicubic (an untrained one returns bicubic exactly)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(6, 3, channels=8, depth=2, heads=2, window=8))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def observation():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    gt = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (k + 1) * xx) * np.cos(2 * np.pi * yy) for k in range(6)])
    gt = np.clip(gt + rng.normal(0, 0.02, gt.shape), 0, 1).astype(np.float32)
    lr = F.avg_pool2d(torch.from_numpy(gt)[None], 4)[0].numpy()
    msi = np.stack([gt[:2].mean(0), gt[2:4].mean(0), gt[4:].mean(0)]).astype(np.float32)
    return lr, msi


def test_tile_boxes_cover_the_image_on_ratio_multiples():
    boxes = tile_boxes(100, 72, tile=32, overlap=8, ratio=4)
    cover = np.zeros((100, 72), int)
    for r0, r1, c0, c1 in boxes:
        assert r1 - r0 == 32 and c1 - c0 == 32 and r0 % 4 == 0 and c0 % 4 == 0
        cover[r0:r1, c0:c1] += 1
    assert cover.min() >= 1
    assert tile_boxes(64, 64, tile=128, overlap=16, ratio=4) == [(0, 64, 0, 64)]
    with pytest.raises(DataError, match="multiples of the ratio 4"):
        tile_boxes(100, 100, tile=30, overlap=8, ratio=4)
    w = blend_window(8, 8)
    assert w.min() > 0 and w[3:5, 3:5].min() == w.max()


def test_untiled_and_single_tile_are_identical(perturbed_model, observation):
    lr, msi = observation
    a = fuse(perturbed_model, lr, msi, 4, SCHEDULE, seed=3)
    b = fuse(perturbed_model, lr, msi, 4, SCHEDULE, seed=3, tile=64, overlap=16)
    np.testing.assert_array_equal(a.fused, b.fused)


def test_tiling_leaves_no_seams(perturbed_model, observation):
    lr, msi = observation
    whole = fuse(perturbed_model, lr, msi, 4, SCHEDULE, seed=3).fused
    tiled = fuse(perturbed_model, lr, msi, 4, SCHEDULE, seed=3, tile=32, overlap=16).fused
    up = F.interpolate(torch.from_numpy(lr)[None], size=(64, 64), mode="bicubic", align_corners=False)[0].numpy()
    assert np.abs(whole - np.clip(up, 0, 1)).mean() > 0.01  # the network does change the image
    diff = np.abs(tiled - whole).mean(axis=0)
    assert diff.mean() < 0.01, diff.mean()
    # Tiles start every 16 pixels: a seam would show as columns/rows of larger error there.
    cols = diff.mean(axis=0)
    rows = diff.mean(axis=1)
    for profile in (cols, rows):
        at_edges = profile[[15, 16, 31, 32, 47, 48]].mean()
        assert at_edges < 2.5 * np.median(profile) + 1e-4, (at_edges, np.median(profile))


def test_several_samples_give_a_mean_and_an_uncertainty_map(perturbed_model, observation, tmp_path):
    lr, msi = observation
    result = fuse(perturbed_model, lr, msi, 4, SCHEDULE, n_samples=3, seed=0)
    assert result.std is not None and result.std.shape == (6, 64, 64) and result.std.max() > 0
    single = [fuse(perturbed_model, lr, msi, 4, SCHEDULE, seed=s).fused for s in range(3)]
    np.testing.assert_allclose(result.fused, np.mean(single, axis=0), atol=1e-6)
    np.testing.assert_allclose(result.std, np.std(single, axis=0), atol=1e-6)
    path = tmp_path / "scene.h5"
    write_fused(path, result, np.arange(6.0), {"weights_sha256": "ab" * 32, "seed": 0, "steps": 8})
    with h5py.File(path) as fh:
        assert fh["fused"].shape == (6, 64, 64) and fh["std"].shape == (6, 64, 64)
        assert fh.attrs["seed"] == 0 and fh.attrs["code_version"].startswith("hsrdiff ")


def test_regression_mode_is_one_deterministic_pass(perturbed_model, observation):
    lr, msi = observation
    a = fuse(perturbed_model, lr, msi, 4, mode="regression", seed=0)
    b = fuse(perturbed_model, lr, msi, 4, mode="regression", seed=9, n_samples=4)
    np.testing.assert_array_equal(a.fused, b.fused)
    assert b.std is None
    with pytest.raises(DataError, match="is not lr_hsi"):
        fuse(perturbed_model, lr[:, :8], msi, 4, mode="regression")
    assert isinstance(a, FusionResult)


@pytest.mark.parametrize("mode", ["diffusion", "regression"])
def test_a_self_conditioned_network_gets_each_steps_estimate_at_the_next(observation, mode):
    """Each sample starts without an estimate; every later network call gets the last clamped
    estimate (cut into tiles where tiled); the self-conditioned twin refines as many times as the
    sampler has steps, a plain twin makes one pass."""
    from hsrdiff.diffusion import make_sampler

    torch.manual_seed(0)
    model = build_model(ModelConfig(6, 3, channels=8, depth=2, heads=2, window=8, self_condition=True)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    calls = []
    denoise = model.denoise

    def recording(x_t, noise_level, features, previous=None):
        out = denoise(x_t, noise_level, features, previous)
        calls.append((previous, out.clamp(-1, 1)))
        return out

    model.denoise = recording
    lr, msi = observation
    sampler = make_sampler("ancestral", torch.tensor([0.3, 0.6, 0.9]))
    fused = fuse(model, lr, msi, 4, sampler, mode=mode, n_samples=2, views=2)
    assert len(calls) == 6 and np.isfinite(fused.fused).all()
    for k, (previous, _) in enumerate(calls):
        if k % 3 == 0:
            assert previous is None
        else:
            torch.testing.assert_close(previous, calls[k - 1][1])
    calls.clear()
    tiled = fuse(model, lr, msi, 4, sampler, mode=mode, tile=32, overlap=8)
    chunks = -(-len(tile_boxes(64, 64, 32, 8, 4)) // 8)  # batches of 8 tiles per step
    assert chunks > 1 and len(calls) == 3 * chunks and np.isfinite(tiled.fused).all()
    assert all(previous is None for previous, _ in calls[:chunks])
    assert all(previous.shape[-2:] == (32, 32) for previous, _ in calls[chunks:])
    untiled = fuse(model, lr, msi, 4, sampler, mode=mode)
    np.testing.assert_array_equal(fuse(model, lr, msi, 4, sampler, mode=mode, tile=64, overlap=16).fused, untiled.fused)


def test_a_plain_regression_twin_makes_one_pass_whatever_the_sampler(perturbed_model, observation, monkeypatch):
    from hsrdiff.diffusion import make_sampler

    calls = []
    denoise = perturbed_model.denoise
    monkeypatch.setattr(perturbed_model, "denoise", lambda *a: calls.append(a) or denoise(*a))
    lr, msi = observation
    fuse(perturbed_model, lr, msi, 4, make_sampler("ancestral", torch.tensor([0.3, 0.6, 0.9])), mode="regression")
    assert len(calls) == 1


def _turned(x: np.ndarray, view: int, undo: bool = False) -> np.ndarray:
    from hsrdiff.degradation import DIHEDRAL_VIEWS, dihedral, undo_dihedral

    return (undo_dihedral if undo else dihedral)(torch.from_numpy(np.ascontiguousarray(x)), *DIHEDRAL_VIEWS[view]).numpy()


def test_samples_cycle_through_the_views_of_the_inputs(perturbed_model, observation):
    """Sample i fuses view i mod views with seed + i and is turned back; the map is their spread."""
    lr, msi = observation
    result = fuse(perturbed_model, lr, msi, 4, SCHEDULE, n_samples=5, seed=2, views=4)
    expected = [_turned(fuse(perturbed_model, _turned(lr, i % 4), _turned(msi, i % 4), 4, SCHEDULE, seed=2 + i).fused, i % 4, undo=True)
                for i in range(5)]
    np.testing.assert_allclose(result.fused, np.mean(expected, axis=0), atol=1e-6)
    np.testing.assert_allclose(result.std, np.std(expected, axis=0), atol=1e-6)
    # One sample sees the inputs as given, whatever the number of views.
    np.testing.assert_array_equal(fuse(perturbed_model, lr, msi, 4, SCHEDULE, seed=2, views=8).fused,
                                  fuse(perturbed_model, lr, msi, 4, SCHEDULE, seed=2).fused)
    with pytest.raises(DataError, match="sampling.views must be 1 to 8; got 9"):
        fuse(perturbed_model, lr, msi, 4, SCHEDULE, views=9)


def test_regression_gives_one_sample_per_view_and_views_work_on_tiled_oblong_images(perturbed_model, observation):
    lr, msi = observation
    lr, msi = lr[:, :, :12], msi[:, :, :48]  # 64 x 48: quarter turns make it 48 x 64
    result = fuse(perturbed_model, lr, msi, 4, mode="regression", n_samples=20, views=8, tile=32, overlap=16)
    expected = [_turned(fuse(perturbed_model, _turned(lr, v), _turned(msi, v), 4, mode="regression", tile=32, overlap=16).fused,
                        v, undo=True) for v in range(8)]
    assert result.fused.shape == result.std.shape == (6, 64, 48)
    np.testing.assert_allclose(result.fused, np.mean(expected, axis=0), atol=1e-6)
    np.testing.assert_allclose(result.std, np.std(expected, axis=0), atol=1e-6)
    assert result.std.mean() > 1e-4  # an untrained network is no more symmetric than its weights


@pytest.mark.parametrize("preconditioning", ["none", "residual"])
def test_probe_tells_a_network_that_ignores_its_noisy_input_from_one_that_uses_it(observation, tmp_path, preconditioning):
    from hsrdiff.degradation import make_psf
    from hsrdiff.files import write_observations
    from hsrdiff.models import save_atomic
    from hsrdiff.sampling import x0_quality_by_noise_level

    lr, msi = observation
    gt = F.interpolate(torch.from_numpy(lr)[None], scale_factor=4, mode="bicubic", align_corners=False)[0].numpy()
    gt = np.clip(gt + np.random.default_rng(0).normal(0, 0.03, gt.shape), 0, 1).astype(np.float32)  # detail bicubic lacks
    write_observations(tmp_path / "obs.h5", gt, lr, msi, make_psf({"mode": "block"}, 4), np.full((3, 6), 1 / 6, np.float32),
                       np.arange(6.0), "a,b,c", {})
    # untrained: the network's own output is zero, so only the preconditioning's skip can use x_t
    mc = ModelConfig(6, 3, channels=8, depth=2, heads=2, window=8, preconditioning=preconditioning)
    save_atomic({"model_config": mc.to_dict(), "state_dict": build_model(mc).state_dict(), "mode": "diffusion", "ratio": 4},
                tmp_path / "w.pt")
    rows = {r["sqrt_gamma"]: r for r in x0_quality_by_noise_level(tmp_path / "w.pt", [tmp_path / "obs.h5"], device="cpu")}
    assert rows[0.9999]["x_t_psnr"] > rows[0.0]["x_t_psnr"] + 30
    gain = rows[0.9999]["x0_hat_psnr"] - rows[0.0]["x0_hat_psnr"]
    if preconditioning == "none":
        assert abs(gain) < 1e-6  # x0_hat is the bicubic upsample whatever x_t holds
    else:
        assert gain > 10, rows


def test_consistency_projects_each_sample_onto_the_observations(perturbed_model):
    """With sampling.consistency the fused image (mean of views) maps onto the observations it was
    fused from; without the operators it is refused; 0 iterations leave the network's image."""
    from hsrdiff.degradation import make_psf, spatial_degrade, spectral_degrade

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    # values inside (0, 1), so that the final clip does not undo the projection
    gt = np.stack([0.5 + 0.2 * np.sin(2 * np.pi * (k + 1) * xx) * np.cos(2 * np.pi * yy) for k in range(6)]).astype(np.float32)
    psf = make_psf({"mode": "block"}, 4)
    srf = rng.random((3, 6)).astype(np.float32)
    srf /= srf.sum(1, keepdims=True)
    lr_hsi, hr_msi = spatial_degrade(gt, psf), spectral_degrade(gt, srf)
    plain = fuse(perturbed_model, lr_hsi, hr_msi, 4, SCHEDULE, n_samples=2, views=2)
    projected = fuse(perturbed_model, lr_hsi, hr_msi, 4, SCHEDULE, n_samples=2, views=2, operators=(psf, srf), consistency=50)
    gap = lambda x: max(np.abs(spatial_degrade(x, psf) - lr_hsi).max(), np.abs(spectral_degrade(x, srf) - hr_msi).max())
    assert gap(plain.fused) > 1e-2 and gap(projected.fused) < 1e-4
    assert np.mean((projected.fused - gt) ** 2) < np.mean((plain.fused - gt) ** 2)
    unprojected = fuse(perturbed_model, lr_hsi, hr_msi, 4, SCHEDULE, n_samples=2, views=2, operators=(psf, srf), consistency=0)
    np.testing.assert_array_equal(unprojected.fused, plain.fused)
    with pytest.raises(DataError, match="consistency 50 needs the observations' PSF and SRF"):
        fuse(perturbed_model, lr_hsi, hr_msi, 4, SCHEDULE, consistency=50)


def test_tiles_add_the_network_to_the_whole_images_base(observation):
    """An untrained network returns its base; tiled, each tile's base is cut from the whole image's
    GLP-HS fusion, so the tiled result is that fusion (a base computed per tile would differ)."""
    from hsrdiff.baselines import glp_hs_batch
    from hsrdiff.degradation import PSF

    lr, msi = observation
    psf = PSF(kernel=np.full((4, 4), 1 / 16), ratio=4, mode="block")
    model = build_model(ModelConfig(6, 3, channels=8, depth=2, heads=2, window=8, base="glp-hs", base_psf=psf.to_dict())).eval()
    whole = glp_hs_batch(torch.from_numpy(lr)[None], torch.from_numpy(msi)[None], psf)[0].numpy()
    tiled = fuse(model, lr, msi, 4, mode="regression", tile=32, overlap=16).fused
    np.testing.assert_allclose(tiled, whole, atol=2e-6)
    per_tile = glp_hs_batch(torch.from_numpy(lr[:, :8, :8])[None], torch.from_numpy(msi[:, :32, :32])[None], psf)[0].numpy()
    assert np.abs(per_tile - whole[:, :32, :32]).max() > 1e-3


def test_a_base_given_beforehand_is_the_one_the_network_adds_to(observation, tmp_path):
    """The sample rule's base file: the same image as the model computes gives the same fusion, any
    other image is what the (untrained) network returns; a file of another base or shape is
    refused naming it, before any sampling."""
    from hsrdiff.baselines import glp_hs_batch
    from hsrdiff.degradation import PSF
    from hsrdiff.errors import DataError
    from hsrdiff.files import write_base
    from hsrdiff.models import save_atomic
    from hsrdiff.sampling import fuse_files

    lr, msi = observation
    psf = PSF(kernel=np.full((4, 4), 1 / 16), ratio=4, mode="block")
    mc = ModelConfig(6, 3, channels=8, depth=2, heads=2, window=8, base="glp-hs", base_psf=psf.to_dict())
    model = build_model(mc).eval()
    whole = glp_hs_batch(torch.from_numpy(lr)[None], torch.from_numpy(msi)[None], psf)[0].numpy()
    computed = fuse(model, lr, msi, 4, mode="regression", tile=32, overlap=16).fused
    given = fuse(model, lr, msi, 4, mode="regression", tile=32, overlap=16, base=whole).fused
    np.testing.assert_allclose(given, computed, atol=2e-6)
    other = np.full_like(whole, 0.25)
    np.testing.assert_allclose(fuse(model, lr, msi, 4, mode="regression", base=other).fused, other, atol=2e-6)
    with pytest.raises(DataError, match="base of shape"):
        fuse(model, lr, msi, 4, mode="regression", base=whole[:, :32])

    save_atomic({"model_config": mc.to_dict(), "state_dict": model.state_dict(), "mode": "regression", "ratio": 4},
                tmp_path / "w.pt")
    write_base(tmp_path / "glp.h5", whole, "glp-hs", "scene", {})
    write_base(tmp_path / "bicubic.h5", whole, "bicubic", "scene", {})
    schedule, sampling = {"steps": 2, "beta_start": 1e-3, "beta_end": 0.5}, {"device": "cpu"}
    result = fuse_files(tmp_path / "w.pt", lr, msi, tmp_path / "out.h5", schedule, sampling, base_file=tmp_path / "glp.h5")
    np.testing.assert_allclose(result.fused, computed, atol=2e-6)
    with pytest.raises(DataError, match="bicubic.h5: holds the base 'bicubic', expected 'glp-hs'"):
        fuse_files(tmp_path / "w.pt", lr, msi, tmp_path / "out2.h5", schedule, sampling, base_file=tmp_path / "bicubic.h5")
    assert not (tmp_path / "out2.h5").exists()


def test_tiles_batched_or_one_by_one_give_the_same_image(perturbed_model, observation):
    from hsrdiff.diffusion import make_sampler, sampling_levels

    lr, msi = observation
    sampler = make_sampler("ddim", sampling_levels({"steps": 3, "spacing": "log_snr"}))
    one = fuse(perturbed_model, lr, msi, 4, sampler, seed=1, tile=32, overlap=16, tile_batch=1).fused
    all_ = fuse(perturbed_model, lr, msi, 4, sampler, seed=1, tile=32, overlap=16, tile_batch=9).fused
    np.testing.assert_allclose(one, all_, atol=2e-6)


@pytest.fixture()
def weights_and_scene(observation, tmp_path):
    from hsrdiff.degradation import make_psf
    from hsrdiff.files import write_observations
    from hsrdiff.models import save_atomic

    lr, msi = observation
    gt = F.interpolate(torch.from_numpy(lr)[None], scale_factor=4, mode="bicubic", align_corners=False)[0].numpy().clip(0, 1)
    write_observations(tmp_path / "obs.h5", gt, lr, msi, make_psf({"mode": "block"}, 4), np.full((3, 6), 1 / 6, np.float32),
                       np.arange(6.0), "a,b,c", {})
    torch.manual_seed(0)
    mc = ModelConfig(6, 3, channels=8, depth=2, heads=2, window=8)
    model = build_model(mc)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_atomic({"model_config": mc.to_dict(), "state_dict": model.state_dict(), "mode": "diffusion", "ratio": 4,
                 "diffusion": {"train_schedule": {"steps": 2000, "beta_start": 1e-6, "beta_end": 1e-2}}}, tmp_path / "w.pt")
    return tmp_path / "w.pt", tmp_path / "obs.h5"


@pytest.mark.parametrize("sampler,spacing", [("ancestral", "linear"), ("ddim", "train"), ("dpm-solver++", "log_snr")])
def test_fuse_command_takes_the_sampler_steps_and_spacing(weights_and_scene, tmp_path, sampler, spacing):
    from hsrdiff.cli import main
    from hsrdiff.files import read_observations

    weights, scene = weights_and_scene
    out = tmp_path / f"{sampler}.h5"
    args = ["fuse", "--weights", str(weights), "--lr-hsi", f"{scene}:lr_hsi", "--hr-msi", f"{scene}:hr_msi", "--out", str(out),
            "--sampler", sampler, "--steps", "3", "--spacing", spacing, "--tile", "32", "--overlap", "16", "--n-samples", "2"]
    assert main(args) == 0
    with h5py.File(out) as fh:
        assert fh["fused"].shape == (6, 64, 64) and fh["std"].shape == (6, 64, 64)
        assert f'"sampler": "{sampler}"' in fh.attrs["sampling"] and f'"spacing": "{spacing}"' in fh.attrs["schedule"]
    assert read_observations(scene).lr_hsi.shape == (6, 16, 16)
    assert main(args[:-10] + ["--sampler", "euler"]) == 2


def test_fuse_command_projects_only_with_the_operators_it_is_given(weights_and_scene, tmp_path):
    from hsrdiff.cli import main
    from hsrdiff.degradation import spectral_degrade
    from hsrdiff.files import read_observations

    weights, scene = weights_and_scene
    obs = read_observations(scene)
    base = ["fuse", "--weights", str(weights), "--lr-hsi", f"{scene}:lr_hsi", "--hr-msi", f"{scene}:hr_msi", "--steps", "2",
            "--device", "cpu"]
    assert main(base + ["--out", str(tmp_path / "plain.h5")]) == 0  # the config's consistency, but no operators
    assert main(base + ["--out", str(tmp_path / "proj.h5"), "--operators", str(scene), "--consistency", "30"]) == 0
    with h5py.File(tmp_path / "plain.h5") as plain, h5py.File(tmp_path / "proj.h5") as proj:
        assert plain.attrs["consistency_applied"] == 0 and proj.attrs["consistency_applied"] == 30
        msi_gap = [np.abs(spectral_degrade(f["fused"][()], obs.srf) - obs.hr_msi).mean() for f in (plain, proj)]
    assert msi_gap[1] < 0.5 * msi_gap[0]


def test_bench_sampling_writes_its_table_csv_and_plot(weights_and_scene, tmp_path, capsys):
    import pandas as pd

    from hsrdiff.cli import main

    weights, scene = weights_and_scene
    assert main(["bench-sampling", "--weights", str(weights), "--regression", str(weights), str(scene), "--samplers", "ddim",
                 "dpm-solver++", "--steps", "1", "2", "--n-samples", "1", "2", "--views", "1", "4", "--csv", str(tmp_path / "b.csv"),
                 "--plot", str(tmp_path / "b.png"), "--device", "cpu", "--consistency", "0"]) == 0
    table = pd.read_csv(tmp_path / "b.csv")
    # the paper's reference, the grid (one sample sees one view: no 1-sample rows for 4 views), the regression line
    assert len(table) == 1 + 2 * 2 * (1 + 2) + 1
    assert (table.consistency == 0).all()
    first = table.iloc[0]
    assert (first.sampler, first.spacing, first.steps, first.nfe) == ("ancestral", "linear", 100, 100)
    two = table[table.n_samples == 2]
    assert (two.nfe == two.steps * 2).all() and two.uncertainty_rank_corr.between(-1, 1).all()
    assert (two.uncertainty_rank_corr_min <= two.uncertainty_rank_corr + 1e-12).all()
    assert sorted(set(two.views)) == [1, 4] and (table[table.n_samples == 1].views == 1).all()
    assert table[(table.n_samples == 1) & (table.sampler != "regression")].uncertainty_rank_corr.isna().all()
    assert two.psnr_limit.notna().all() and table[table.n_samples == 1].psnr_limit.isna().all()
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    assert "| dpm-solver++ | log_snr | 2 | 2 | 4 | 0 | 4 |" in capsys.readouterr().out
    assert main(["bench-sampling", "--weights", str(weights), str(scene), "--samplers", "ddim", "--steps", "1",
                 "--no-paper-reference", "--csv", str(tmp_path / "c.csv"), "--plot", str(tmp_path / "c.png"), "--device", "cpu"]) == 0
    assert list(pd.read_csv(tmp_path / "c.csv").sampler) == ["ddim"]
    # each row set and reference line once per consistency; a classical method as published and projected
    assert main(["bench-sampling", "--weights", str(weights), str(scene), "--samplers", "ddim", "--steps", "1",
                 "--no-paper-reference", "--consistency", "0", "20", "--classical", "glp-hs", "--csv", str(tmp_path / "d.csv"),
                 "--device", "cpu"]) == 0
    table = pd.read_csv(tmp_path / "d.csv")
    assert list(zip(table.sampler, table.consistency)) == [("ddim", 0), ("ddim", 20), ("glp-hs", 0), ("glp-hs", 20)]
    glp = table[table.sampler == "glp-hs"].set_index("consistency")
    assert (glp.nfe == 0).all() and glp.psnr[0] != glp.psnr[20]
    # an unknown method is refused before any fusion, naming it
    assert main(["bench-sampling", "--weights", str(weights), str(scene), "--classical", "sfim", "--csv", str(tmp_path / "e.csv"),
                 "--device", "cpu"]) == 2
    assert "--classical sfim" in capsys.readouterr().err and not (tmp_path / "e.csv").exists()


@pytest.mark.parametrize("sampler_name", ["ancestral", "ddim", "dpm-solver++"])
def test_residual_diffusion_samples_the_residual_unclipped_and_returns_base_plus_it(observation, sampler_name):
    """model.diffuse residual: the sampler walks (x0 - base) / scale, which may leave [-1, 1]; only
    the image it stands for is clipped. A network whose output is the constant 3 (three scales
    above its base everywhere) fuses to base + 3 scale; clipping the residual variable to [-1, 1]
    would give base + scale."""
    from hsrdiff.diffusion import make_sampler, sampling_levels

    lr, msi = observation
    scale = 0.01
    model = build_model(ModelConfig(6, 3, channels=8, depth=2, heads=2, window=8, diffuse="residual", residual_scale=scale)).eval()
    torch.nn.init.constant_(model.reconstruct.bias, 3.0)
    base = F.interpolate(torch.from_numpy(lr)[None], scale_factor=4, mode="bicubic", align_corners=False)[0].numpy()
    expected = np.clip(base + 3 * scale / 2, 0, 1)  # 3 scales on the [-1, 1] scale: half that on [0, 1]
    sampler = make_sampler(sampler_name, sampling_levels({"spacing": "log_snr", "steps": 4}))
    for mode in ("diffusion", "regression"):
        out = fuse(model, lr, msi, 4, sampler, mode=mode, tile=32, overlap=16, n_samples=2).fused
        np.testing.assert_allclose(out, expected, atol=2e-5)
    assert sampler.clip == (-1.0, 1.0)  # the caller's sampler is left as it was


def test_residual_diffusion_probe_noises_the_residual(observation, tmp_path):
    """For a residual model the probe noises (x0 - base) / scale: at noise std 1 its x_t says
    about as much as the base, not nothing (the image-space probe's x_t scores ~6 dB there)."""
    from hsrdiff.degradation import make_psf
    from hsrdiff.files import write_observations
    from hsrdiff.models import save_atomic
    from hsrdiff.sampling import x0_quality_by_noise_level

    lr, msi = observation
    up = F.interpolate(torch.from_numpy(lr)[None], scale_factor=4, mode="bicubic", align_corners=False)[0].numpy()
    gt = np.clip(up + np.random.default_rng(0).normal(0, 0.01, up.shape), 0, 1).astype(np.float32)
    write_observations(tmp_path / "obs.h5", gt, lr, msi, make_psf({"mode": "block"}, 4), np.full((3, 6), 1 / 6, np.float32),
                       np.arange(6.0), "a,b,c", {})
    mc = ModelConfig(6, 3, channels=8, depth=2, heads=2, window=8, diffuse="residual", residual_scale=0.02)
    save_atomic({"model_config": mc.to_dict(), "state_dict": build_model(mc).state_dict(), "mode": "diffusion", "ratio": 4},
                tmp_path / "w.pt")
    rows = {r["sqrt_gamma"]: r for r in x0_quality_by_noise_level(tmp_path / "w.pt", [tmp_path / "obs.h5"], device="cpu")}
    # noise std 1 on the residual scale is 0.01 on [0, 1] (40 dB), the residual itself 0.01
    assert 32 < rows[0.0]["x_t_psnr"] < 42
    assert rows[0.9999]["x_t_psnr"] > rows[0.0]["x_t_psnr"] + 30
