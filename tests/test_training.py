"""Training: overfitting, a short demo run beats bicubic, exact resume after a kill, DDP, frozen half."""

import copy
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import simulate_demo
from hsrdiff.data.patches import PatchDataset, extract_patches
from hsrdiff.degradation import spatial_degrade, spectral_degrade
from hsrdiff.diffusion import Schedule, fusion_loss, to_data_range, to_model_range
from hsrdiff.io import read_arrays
from hsrdiff.models import ModelConfig, build_model
from hsrdiff.sampling import fuse
from hsrdiff.models import load_file, load_weights
from hsrdiff.training.checkpoint import latest_checkpoint
from hsrdiff.training.trainer import INTERRUPTED_EXIT_CODE, StagePaths, train_stage

TINY_MODEL = {"architecture": "cdformer", "channels": 16, "depth": 2, "heads": 2, "window": 8,
              "ffn_expansion": 2.0, "noise_embedding_scale": 5000.0}


def training_defaults(**kw):
    from hsrdiff.config import validate_config

    config = validate_config({})
    training = {k: v for k, v in config["training"].items() if k != "stages"}
    training.update({"log_every": 1, "checkpoint_every": 5, **kw})
    return training, config["diffusion"]


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """A small demo dataset run through the data stages: 4 train and 1 test scene of 64x64."""
    root = tmp_path_factory.mktemp("demo")
    degraded = simulate_demo(root, {"seed": 5, "n_train": 4, "n_test": 1, "size": 64, "n_endmembers": 6})
    extract_patches([path for scene, path in degraded.items() if scene.startswith("train_")], 32, root / "p32.h5",
                    stride_fraction=0.25)
    return root


def run_train_cli(tmp_path, patches, stage, training, diffusion, out, ckpt, launcher=None, wait=True, init=None):
    settings = {"stage": stage, "model": TINY_MODEL, "training": training, "diffusion": diffusion, "metadata": {"dataset": "t"}}
    cmd = [*(launcher or [sys.executable]), "-m", "hsrdiff.cli", "train", "--settings", json.dumps(settings),
           "--patches", str(patches), "--out", str(out), "--checkpoint-dir", str(ckpt)]
    if init:
        cmd += ["--init", str(init)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    if wait:
        out_text, _ = proc.communicate(timeout=300)
        return proc.returncode, out_text
    return proc


def test_tiny_model_overfits_one_batch(demo_data):
    ds = PatchDataset(demo_data / "p32.h5")
    psf, srf = ds.operators()
    srf = torch.as_tensor(srf)
    # Two 16x16 crops with observations simulated from the crops themselves, so that a perfect
    # fit makes every term of the loss zero.
    gt = torch.stack([ds[i]["gt"][:, :16, :16] for i in (0, len(ds) // 2)])
    lr_hsi, hr_msi = spatial_degrade(gt, psf), spectral_degrade(gt, srf)
    torch.manual_seed(0)
    model = build_model(ModelConfig(31, 3, channels=32, depth=2, heads=2, window=8))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    losses = []
    for _ in range(600):
        x0_hat = to_data_range(model(torch.zeros_like(gt), torch.zeros(2), to_model_range(lr_hsi), to_model_range(hr_msi)))
        loss = fusion_loss(x0_hat, gt, lr_hsi, hr_msi, psf, srf)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] / np.mean(losses[-10:]) > 10, (losses[0], losses[-10:])


def _psnr(a, b):
    return float(np.mean([10 * np.log10(1 / np.mean((a[i] - b[i]) ** 2)) for i in range(a.shape[0])]))


@pytest.mark.slow
def test_short_demo_training_beats_bicubic_on_a_held_out_scene(demo_data, tmp_path):
    training, diffusion = training_defaults(log_every=20, checkpoint_every=100)
    stage = {"name": "s1", "patch_size": 32, "batch_size": 8, "iterations": 300, "learning_rate": 1e-3, "trainable": "all"}
    paths = StagePaths(demo_data / "p32.h5", tmp_path / "w.pt", tmp_path / "ckpt", loss_curve=tmp_path / "loss.png")
    train_stage(paths, stage, {**TINY_MODEL, "channels": 32}, training, diffusion)
    assert (tmp_path / "loss.png").stat().st_size > 1000
    model, blob = load_weights(tmp_path / "w.pt")
    assert blob["stage"] == "s1" and blob["mode"] == "diffusion" and blob["model_config"]["channels"] == 32

    test = read_arrays(demo_data / "test_00.h5", "gt", "lr_hsi", "hr_msi")
    lr_hsi = torch.from_numpy(test["lr_hsi"])[None]
    bicubic = F.interpolate(lr_hsi, size=test["hr_msi"].shape[-2:], mode="bicubic", align_corners=False)[0].clamp(0, 1).numpy()
    schedule = Schedule.from_config({"steps": 25, "beta_start": 1e-4, "beta_end": 0.4})
    fused = fuse(model, test["lr_hsi"], test["hr_msi"], ratio=4, sampler=schedule).fused
    gain = _psnr(fused, test["gt"]) - _psnr(bicubic, test["gt"])
    assert gain > 1.0, gain


def _wait_for_step(csv_path, step, proc, timeout=120):
    start = time.time()
    while time.time() - start < timeout:
        if csv_path.exists():
            rows = csv_path.read_text().strip().splitlines()[1:]
            if rows and int(rows[-1].split(",")[0]) >= step:
                return
        if proc.poll() is not None:
            raise AssertionError(f"training ended before step {step}: {proc.communicate()[0][-2000:]}")
        time.sleep(0.02)
    raise AssertionError(f"step {step} not reached in {timeout} s")


@pytest.mark.slow
def test_resume_after_signal_and_after_kill_gives_the_same_weights(demo_data, tmp_path):
    training, diffusion = training_defaults()
    stage = {"name": "s1", "patch_size": 32, "batch_size": 4, "iterations": 30, "learning_rate": 1e-3, "trainable": "all"}
    patches = demo_data / "p32.h5"

    rc, out = run_train_cli(tmp_path, patches, stage, training, diffusion, tmp_path / "a.pt", tmp_path / "ckpt_a")
    assert rc == 0, out

    # SLURM's warning signal: a checkpoint at the current step, exit 75, and a rerun resumes.
    proc = run_train_cli(tmp_path, patches, stage, training, diffusion, tmp_path / "b.pt", tmp_path / "ckpt_b", wait=False)
    _wait_for_step(tmp_path / "ckpt_b" / "log.csv", 12, proc)
    proc.send_signal(signal.SIGUSR1)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == INTERRUPTED_EXIT_CODE, out
    assert not (tmp_path / "b.pt").exists()
    stopped_at = load_file(latest_checkpoint(tmp_path / "ckpt_b"))["step"]
    assert 12 <= stopped_at < 30
    rc, out = run_train_cli(tmp_path, patches, stage, training, diffusion, tmp_path / "b.pt", tmp_path / "ckpt_b")
    assert rc == 0 and f"(step {stopped_at} of 30)" in out, out

    # A hard kill (no checkpoint at the kill): resume from the last periodic checkpoint.
    proc = run_train_cli(tmp_path, patches, stage, training, diffusion, tmp_path / "c.pt", tmp_path / "ckpt_c", wait=False)
    _wait_for_step(tmp_path / "ckpt_c" / "log.csv", 23, proc)
    proc.kill()
    proc.communicate()
    resumed_from = load_file(latest_checkpoint(tmp_path / "ckpt_c"))["step"]
    assert resumed_from % 5 == 0 and 20 <= resumed_from < 30
    rc, out = run_train_cli(tmp_path, patches, stage, training, diffusion, tmp_path / "c.pt", tmp_path / "ckpt_c")
    assert rc == 0, out

    a = load_file(tmp_path / "a.pt")["state_dict"]
    for other in ("b.pt", "c.pt"):
        b = load_file(tmp_path / other)["state_dict"]
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=f"{other}: {key}")
    rows = (tmp_path / "ckpt_c" / "log.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, 31))  # no step logged twice


@pytest.mark.slow
def test_ddp_with_two_processes_matches_one_process_on_the_combined_batch(demo_data, tmp_path):
    training, diffusion = training_defaults(checkpoint_every=100)
    stage = {"name": "s1", "patch_size": 32, "batch_size": 4, "iterations": 6, "learning_rate": 1e-3, "trainable": "all"}
    patches = demo_data / "p32.h5"
    rc, out = run_train_cli(tmp_path, patches, stage, training, diffusion, tmp_path / "single.pt", tmp_path / "ck1")
    assert rc == 0, out
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    rc, out = run_train_cli(tmp_path, patches, stage, training, diffusion, tmp_path / "ddp.pt", tmp_path / "ck2", launcher=torchrun)
    assert rc == 0, out
    single, ddp = load_file(tmp_path / "single.pt")["state_dict"], load_file(tmp_path / "ddp.pt")["state_dict"]
    for key in single:
        torch.testing.assert_close(single[key], ddp[key], rtol=1e-4, atol=1e-5, msg=key)
    torch.manual_seed(training["seed"])  # the trainer's initial weights
    init = build_model(ModelConfig(31, 3, **TINY_MODEL)).state_dict()
    moved = max((single[k] - init[k]).abs().max().item() for k in init if single[k].dtype.is_floating_point)
    assert moved > 1e-3  # training changed the weights: the comparison is not between two inits


def test_second_half_stage_leaves_the_first_half_untouched(demo_data, tmp_path):
    training, diffusion = training_defaults(checkpoint_every=100, ema_decay=0.0)
    first = {"name": "s1", "patch_size": 32, "batch_size": 2, "iterations": 3, "learning_rate": 1e-3, "trainable": "all"}
    train_stage(StagePaths(demo_data / "p32.h5", tmp_path / "s1.pt", tmp_path / "c1"), first, TINY_MODEL, training, diffusion)
    second = {**first, "name": "s2", "trainable": "second_half"}
    train_stage(StagePaths(demo_data / "p32.h5", tmp_path / "s2.pt", tmp_path / "c2", init_weights=tmp_path / "s1.pt"),
                second, TINY_MODEL, training, diffusion)
    before, after = load_file(tmp_path / "s1.pt")["state_dict"], load_file(tmp_path / "s2.pt")["state_dict"]
    model = build_model(ModelConfig(31, 3, **TINY_MODEL))
    trained = {id(p) for p in model.second_half_parameters()}
    names = {n for n, p in model.named_parameters() if id(p) in trained}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= names, changed - names
    assert "dn_embed.weight" not in changed and "reconstruct.weight" in changed


def test_changed_settings_or_a_forced_rerun_start_over(demo_data, tmp_path, caplog):
    training, diffusion = training_defaults(checkpoint_every=1)
    stage = {"name": "s1", "patch_size": 32, "batch_size": 2, "iterations": 2, "learning_rate": 1e-3, "trainable": "all"}
    paths = StagePaths(demo_data / "p32.h5", tmp_path / "w.pt", tmp_path / "c")
    train_stage(paths, stage, TINY_MODEL, training, diffusion)
    first = load_file(tmp_path / "w.pt")["state_dict"]
    # The same run again (its weights removed, as --forcerun does): trained anew, same result.
    (tmp_path / "w.pt").unlink()
    summary = train_stage(paths, stage, TINY_MODEL, training, diffusion)
    assert summary["resumed_from"] == 0 and "finished already" in caplog.text
    assert (tmp_path / "c" / "previous" / "log.csv").exists()
    again = load_file(tmp_path / "w.pt")["state_dict"]
    assert all(torch.equal(first[k], again[k]) for k in first)
    # Another learning rate: not resumed from the old checkpoints.
    summary = train_stage(paths, {**stage, "learning_rate": 5e-4}, TINY_MODEL, training, diffusion)
    assert summary["resumed_from"] == 0 and "settings, inputs or model changed" in caplog.text


def test_a_touched_or_copied_patch_file_resumes_and_a_changed_one_starts_over(demo_data, tmp_path, caplog):
    """The checkpoint knows its patches by content: `snakemake --touch` or a copy elsewhere
    (new mtime, new path) resumes; other patches of the same size do not."""
    import shutil

    import h5py

    training, diffusion = training_defaults(checkpoint_every=1)
    stage = {"name": "s1", "patch_size": 32, "batch_size": 2, "iterations": 3, "learning_rate": 1e-3, "trainable": "all"}
    patches = tmp_path / "p32.h5"
    shutil.copy(demo_data / "p32.h5", patches)
    train_stage(StagePaths(patches, tmp_path / "w.pt", tmp_path / "c"), stage, TINY_MODEL, training, diffusion)
    # As if killed after step 2: the last checkpoint and the weights are gone.
    (tmp_path / "w.pt").unlink()
    latest_checkpoint(tmp_path / "c").unlink()
    assert load_file(latest_checkpoint(tmp_path / "c"))["step"] == 2

    os.utime(patches, ns=(patches.stat().st_atime_ns, patches.stat().st_mtime_ns + 10**9))
    moved = tmp_path / "elsewhere" / "p32.h5"
    moved.parent.mkdir()
    shutil.copy(patches, moved)
    caplog.clear()
    summary = train_stage(StagePaths(moved, tmp_path / "w.pt", tmp_path / "c"), stage, TINY_MODEL, training, diffusion)
    assert summary["resumed_from"] == 2 and "not resuming" not in caplog.text

    (tmp_path / "w.pt").unlink()
    latest_checkpoint(tmp_path / "c").unlink()
    with h5py.File(moved, "r+") as fh:  # same size, another patch
        key = next(k for k in fh if isinstance(fh[k], h5py.Dataset) and fh[k].ndim == 4)
        fh[key][0] = fh[key][1]
    summary = train_stage(StagePaths(moved, tmp_path / "w.pt", tmp_path / "c"), stage, TINY_MODEL, training, diffusion)
    assert summary["resumed_from"] == 0 and "settings, inputs or model changed" in caplog.text


def test_ranks_of_tasks_started_by_srun():
    from hsrdiff.training.distributed import environment_from_slurm

    task = {"SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "123",
            "SLURM_STEP_NODELIST": "n1,n2"}
    assert environment_from_slurm(task) == {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1",
                                           "MASTER_ADDR": "n1", "MASTER_PORT": "20123"}
    # torchrun's own variables win; a single task (the usual `srun -n1` of a job) is not distributed.
    assert environment_from_slurm({**task, "WORLD_SIZE": "2"}) == {}
    assert environment_from_slurm({**task, "SLURM_STEP_NUM_TASKS": "1"}) == {}
    assert environment_from_slurm({"SLURM_STEP_NUM_TASKS": "4"}) == {}


@pytest.mark.parametrize("base,consistency,weight", [("glp-hs", 0, 0.5), ("cnmf", 0, 0.5), ("glp-hs", 10, 0.5),
                                                    ("glp-hs+cnmf", 10, 0.75)])
def test_a_classical_base_is_kept_in_the_weights_and_an_untrained_network_returns_it(demo_data, tmp_path, base, consistency, weight):
    """model.base glp-hs, cnmf or their mix: the trainer stores the patch file's PSF (and for CNMF
    or a projected base its SRF) in the model configuration, the weights file alone rebuilds the
    network, and before training (a zero residual) the network's estimate is the classical fusion
    itself, projected onto the observations with model.base_consistency (the mix: (1 - w) GLP-HS
    + w CNMF, each projected)."""
    from hsrdiff.baselines import classical
    from hsrdiff.degradation import project_onto_observations
    from hsrdiff.data.patches import PatchDataset
    from hsrdiff.files import read_observations

    training, diffusion = training_defaults(checkpoint_every=100)
    stage = {"name": "s1", "patch_size": 32, "batch_size": 4, "iterations": 2, "learning_rate": 1e-3, "trainable": "all"}
    train_stage(StagePaths(demo_data / "p32.h5", tmp_path / "w.pt", tmp_path / "ckpt"), stage,
                {**TINY_MODEL, "base": base, "base_consistency": consistency, "base_weight": weight}, training, diffusion)
    model, blob = load_weights(tmp_path / "w.pt")
    psf, srf = PatchDataset(demo_data / "p32.h5").operators()
    assert blob["model_config"]["base"] == base and np.allclose(blob["model_config"]["base_psf"]["kernel"], psf.kernel)
    assert (blob["model_config"]["base_srf"] is None) == ("cnmf" not in base and not consistency)
    if blob["model_config"]["base_srf"] is not None:
        np.testing.assert_allclose(blob["model_config"]["base_srf"], srf)
    obs = read_observations(demo_data / "test_00.h5")
    untrained = build_model(ModelConfig(**blob["model_config"]))
    fused = fuse(untrained, obs.lr_hsi, obs.hr_msi, 4, mode="regression").fused
    # The network sees its inputs on [-1, 1]; CNMF's result moves by up to 0.07 when its input
    # moves by 1e-8 (VCA's choice of pixels), so the reference takes the same round trip.
    def round_trip(x):
        return ((torch.from_numpy(x) * 2 - 1 + 1) * 0.5).numpy()

    lr_hsi, hr_msi = round_trip(obs.lr_hsi), round_trip(obs.hr_msi)

    def part(kind):
        image = classical(kind, lr_hsi, hr_msi, obs.psf, obs.srf).fused
        if consistency:
            projected = project_onto_observations(image, lr_hsi, hr_msi, obs.psf, obs.srf, consistency).clip(0, 1)
            assert np.abs(projected - image).max() > 1e-3
            image = projected
        return image

    reference = (1 - weight) * part("glp-hs") + weight * part("cnmf") if base == "glp-hs+cnmf" else part(base)
    np.testing.assert_allclose(fused, reference, atol=2e-6)
    trained = fuse(model, obs.lr_hsi, obs.hr_msi, 4, sampler=Schedule.from_config({"steps": 3, "beta_start": 1e-3, "beta_end": 0.5})).fused
    assert np.isfinite(trained).all() and trained.shape == obs.gt.shape


def test_the_trainer_adds_the_network_to_the_patch_files_base(demo_data, tmp_path, caplog):
    """With ``base_<model.base>`` in the patch file, training adds the network's output to it (the
    scene-level base); without, it computes the base per patch and says so."""
    import csv
    import shutil

    import h5py

    training, diffusion = training_defaults(checkpoint_every=100, mode="regression")
    stage = {"name": "s1", "patch_size": 32, "batch_size": 4, "iterations": 1, "learning_rate": 1e-3, "trainable": "all"}
    with_base = tmp_path / "p32b.h5"
    shutil.copy(demo_data / "p32.h5", with_base)
    with h5py.File(with_base, "a") as fh:  # a base equal to the truth: an untrained network's loss is 0
        fh["base_bicubic"] = fh["gt"][()]

    def first_loss(patches, out):
        caplog.clear()
        with caplog.at_level("WARNING"):
            train_stage(StagePaths(patches, tmp_path / f"{out}.pt", tmp_path / out), stage, TINY_MODEL, training, diffusion)
        with open(tmp_path / out / "log.csv") as fh:
            return float(next(csv.DictReader(fh))["loss"]), "holds no base_bicubic" in caplog.text

    loss, warned = first_loss(with_base, "a")
    assert loss < 1e-6 and not warned
    loss, warned = first_loss(demo_data / "p32.h5", "b")
    assert loss > 1e-3 and warned


def test_bench_train_reports_a_size_that_does_not_fit_and_goes_on(monkeypatch, capsys):
    """On an H200 the width-256 network at 512x512, batch 4 ran out of its 139 GiB: the table
    says so in that row and measures the rest instead of ending in a traceback."""
    from hsrdiff import bench

    real = bench.bench_one

    def bench_one(channels, patch, batch, device, **kw):
        if patch == 16:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1024.00 MiB")
        return real(channels, patch, batch, device, **kw)

    monkeypatch.setattr(bench, "bench_one", bench_one)
    rows = bench.run([8], [16, 8], 1, 1, torch.device("cpu"))
    out = capsys.readouterr().out
    assert "| cpu | 8 | 16 | 1 | no | out of memory |" in out
    assert [(r.channels, r.patch) for r in rows] == [(8, 8)]


def test_bench_train_times_the_checkpointed_step_when_asked(monkeypatch, capsys):
    """--activation-checkpointing reaches the network (its layers go through
    torch.utils.checkpoint) and the row says it was on."""
    from hsrdiff import bench

    calls = []
    real = torch.utils.checkpoint.checkpoint

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counting)
    rows = bench.run([8], [8], 1, 1, torch.device("cpu"))
    assert not calls and not rows[0].checkpointed
    rows = bench.run([8], [8], 1, 1, torch.device("cpu"), activation_checkpointing=True)
    assert calls and rows[0].checkpointed
    assert "| 8 | 8 | 1 | yes |" in capsys.readouterr().out


def test_residual_diffusion_takes_its_scale_from_the_patches_and_keeps_it_through_the_stages(demo_data, tmp_path):
    """model.diffuse residual with residual_scale auto: the first stage measures the std of
    x0 - base over the patches ([-1, 1] scale, two significant digits), the next stage inherits
    the weights' value, and the trained diffusion network fuses to finite values; an image-space
    model keeps 1."""
    from hsrdiff.baselines import fusion_base

    training, diffusion = training_defaults(checkpoint_every=100)
    stage = {"name": "s1", "patch_size": 32, "batch_size": 4, "iterations": 3, "learning_rate": 1e-3, "trainable": "all"}
    model_cfg = {**TINY_MODEL, "diffuse": "residual", "residual_scale": "auto"}
    train_stage(StagePaths(demo_data / "p32.h5", tmp_path / "s1.pt", tmp_path / "c1"), stage, model_cfg, training, diffusion)
    scale = load_file(tmp_path / "s1.pt")["model_config"]["residual_scale"]
    data = PatchDataset(demo_data / "p32.h5")
    psf, _ = data.operators()
    items = [data[i] for i in range(len(data))]
    gt = torch.stack([it["gt"] for it in items])
    base = fusion_base("bicubic", torch.stack([it["lr_hsi"] for it in items]), torch.stack([it["hr_msi"] for it in items]), psf)
    assert scale == pytest.approx(float(f"{float((2 * (gt - base)).double().std()):.2g}"), rel=0.06)
    assert 0.005 < scale < 0.5
    stage2 = {**stage, "name": "s2", "iterations": 1}
    train_stage(StagePaths(demo_data / "p32.h5", tmp_path / "s2.pt", tmp_path / "c2", init_weights=tmp_path / "s1.pt"),
                stage2, model_cfg, training, diffusion)
    model, blob = load_weights(tmp_path / "s2.pt")
    assert blob["model_config"]["residual_scale"] == scale
    obs_lr, obs_msi = items[0]["lr_hsi"].numpy(), items[0]["hr_msi"].numpy()
    fused = fuse(model, obs_lr, obs_msi, 4, sampler=Schedule.from_config({"steps": 3, "beta_start": 1e-3, "beta_end": 0.5})).fused
    assert np.isfinite(fused).all()
    train_stage(StagePaths(demo_data / "p32.h5", tmp_path / "img.pt", tmp_path / "c3"), {**stage, "iterations": 1},
                {**TINY_MODEL, "residual_scale": "auto"}, training, diffusion)
    assert load_file(tmp_path / "img.pt")["model_config"]["residual_scale"] == 1.0


def test_probe_base_measures_the_network_against_the_base_it_was_trained_on(demo_data, tmp_path, capsys):
    """`hsrdiff probe-base`: an untrained network (zero output) scores its base's loss exactly; one
    whose output is the base's known error scores far below it; a file without the network's base
    is refused with the dataset's name."""
    import shutil

    import h5py

    from hsrdiff.errors import DataError
    from hsrdiff.models import save_atomic
    from hsrdiff.training.probe import loss_against_base

    patches = tmp_path / "p32.h5"
    shutil.copy(demo_data / "p32.h5", patches)
    with h5py.File(patches, "a") as fh:  # a base 0.01 below the truth
        fh["base_bicubic"] = np.clip(fh["gt"][()] - 0.01, 0, 1)
    config = ModelConfig(31, 3, **TINY_MODEL)
    model = build_model(config)
    save_atomic({"model_config": config.to_dict(), "state_dict": model.state_dict(), "mode": "regression", "ratio": 4},
                tmp_path / "untrained.pt")
    torch.nn.init.constant_(model.reconstruct.bias, 0.02)  # +0.02 on [-1, 1]: the base's 0.01 on [0, 1]
    save_atomic({"model_config": config.to_dict(), "state_dict": model.state_dict(), "mode": "diffusion", "ratio": 4},
                tmp_path / "offset.pt")
    untrained, offset = loss_against_base([tmp_path / "untrained.pt", tmp_path / "offset.pt"], patches)
    assert untrained["base"] == offset["base"] == "bicubic"
    assert untrained["base_l1"] == pytest.approx(0.01, rel=0.05)
    assert untrained["net_loss"] == pytest.approx(untrained["base_loss"], rel=1e-6)
    assert offset["base_loss"] == untrained["base_loss"] and offset["net_loss"] < 0.1 * offset["base_loss"]
    with pytest.raises(DataError, match="base_bicubic"):
        loss_against_base([tmp_path / "untrained.pt"], demo_data / "p32.h5")
    from hsrdiff.cli import main

    assert main(["probe-base", "--patches", str(patches), str(tmp_path / "untrained.pt"), "--device", "cpu"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert "| bicubic |" in row and row.endswith("| 0.00 % |")


def test_a_self_conditioned_network_trains_on_its_own_first_estimate_half_the_time(demo_data, tmp_path, monkeypatch):
    """model.self_condition: the steps that feed the network its first estimate are half of them,
    drawn from the step's seed (the same after a resume); on those the network runs twice, the
    second time on the first's clamped output; the weights keep the setting and fuse."""
    from hsrdiff.training import trainer

    draws = [trainer.self_condition_step(0, "s1", step) for step in range(400)]
    assert 0.42 < np.mean(draws) < 0.58
    assert draws == [trainer.self_condition_step(0, "s1", step) for step in range(400)]
    assert draws != [trainer.self_condition_step(1, "s1", step) for step in range(400)]

    previous_seen = []
    forward = trainer.Denoiser.forward

    def recording(self, x_t, noise_level, lr_hsi, hr_msi, base=None, previous=None):
        previous_seen.append(None if previous is None else (previous.detach().clone(), torch.is_grad_enabled()))
        return forward(self, x_t, noise_level, lr_hsi, hr_msi, base, previous)

    monkeypatch.setattr(trainer.Denoiser, "forward", recording)
    training, diffusion = training_defaults(checkpoint_every=100)
    stage = {"name": "s1", "patch_size": 32, "batch_size": 4, "iterations": 6, "learning_rate": 1e-3, "trainable": "all"}
    train_stage(StagePaths(demo_data / "p32.h5", tmp_path / "s1.pt", tmp_path / "c1"), stage,
                {**TINY_MODEL, "self_condition": True}, training, diffusion)
    expected = [trainer.self_condition_step(training["seed"], "s1", step) for step in range(6)]
    assert len(previous_seen) == 6 + sum(expected)
    calls = iter(previous_seen)
    for twice in expected:
        first = next(calls)
        assert first is None
        if twice:
            previous, grad = next(calls)
            assert grad and previous.abs().max() <= 1.0
    model, blob = load_weights(tmp_path / "s1.pt")
    assert blob["model_config"]["self_condition"] is True
    assert model.dn_embed.weight.shape[1] == 2 * blob["model_config"]["hsi_bands"]
    item = PatchDataset(demo_data / "p32.h5")[0]
    fused = fuse(model, item["lr_hsi"].numpy(), item["hr_msi"].numpy(), 4,
                 sampler=Schedule.from_config({"steps": 3, "beta_start": 1e-3, "beta_end": 0.5})).fused
    assert np.isfinite(fused).all()
