"""Evaluation: bicubic baseline, per-scene metrics, the summary table, and `hsrdiff fuse`."""

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import simulate_demo
from hsrdiff.cli import main
from hsrdiff.baselines import bicubic
from hsrdiff.evaluation import PAPER_TABLE1, evaluate_scene, summarise, write_table
from hsrdiff.metrics import psnr
from hsrdiff.models import ModelConfig, build_model
from hsrdiff.files import write_fused
from hsrdiff.models import save_atomic


@pytest.fixture
def degraded(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.2, 0.8, (5, 32, 32)).astype(np.float32)
    lr = torch.nn.functional.avg_pool2d(torch.from_numpy(gt)[None], 4)[0].numpy()
    msi = gt[:3]
    path = tmp_path / "scene.h5"
    with h5py.File(path, "w") as fh:
        fh["gt"], fh["lr_hsi"], fh["hr_msi"], fh["wavelengths"] = gt, lr, msi, np.arange(5.0)
        fh.attrs["ratio"] = 4
    return path, gt, lr, msi


def test_bicubic_and_evaluate_scene(degraded, tmp_path):
    path, gt, lr, _ = degraded
    result = bicubic(lr, 4)
    assert result.fused.shape == gt.shape and 0 <= result.fused.min() and result.fused.max() <= 1
    fused = tmp_path / "bicubic.h5"
    write_fused(fused, result, np.arange(5.0), {"method": "bicubic"})
    row = evaluate_scene(fused, path, "d", "bicubic", "scene")
    assert row["method"] == "bicubic" and row["psnr"] == pytest.approx(psnr(result.fused, gt), abs=1e-9)
    assert set(row) >= {"psnr", "ssim", "sam", "ergas", "rmse", "seconds"}


def test_summary_averages_scenes_and_adds_the_papers_rows(tmp_path):
    rows = [{"dataset": "cave", "method": m, "scene": s, "psnr": p, "ssim": 0.9, "sam": 3.0, "ergas": 1.0, "rmse": 0.01, "seconds": 1.0}
            for m, ps in (("hsrdiff", (40.0, 42.0)), ("bicubic", (30.0, 31.0))) for s, p in zip(("a", "b"), ps)]
    write_table(rows, tmp_path / "metrics.csv")
    table = summarise(tmp_path / "metrics.csv", tmp_path / "summary.csv", tmp_path / "summary.md", ["hsrdiff", "bicubic"])
    assert list(table.index[:2]) == ["hsrdiff", "bicubic"]
    assert table.loc["hsrdiff", "psnr"] == 41.0 and table.loc["bicubic", "scenes"] == 2
    assert table.loc["HSR-Diff (paper)", "psnr"] == PAPER_TABLE1["cave"]["HSR-Diff (paper)"][0]
    md = (tmp_path / "summary.md").read_text()
    assert "| hsrdiff | 41.00 | 0.9000 | 3.00 | 1.000 | 0.0100 | 1.0 |" in md and "HSR-Diff (paper) | 44.33" in md
    assert "| regression, same CDFormer (paper, Table 2) | 43.26 |" in md
    assert pd.read_csv(tmp_path / "summary.csv")["method"].tolist()[:2] == ["hsrdiff", "bicubic"]


def test_fuse_cli_on_user_files(degraded, tmp_path):
    _, gt, lr, msi = degraded
    torch.manual_seed(0)
    mc = ModelConfig(5, 3, channels=8, depth=2, heads=2, window=8)
    save_atomic({"model_config": mc.to_dict(), "state_dict": build_model(mc).state_dict(), "mode": "diffusion",
                 "ratio": 4, "stage": "s"}, tmp_path / "w.pt")
    np.save(tmp_path / "lr.npy", lr)
    with h5py.File(tmp_path / "msi.h5", "w") as fh:
        fh["msi"] = msi
    out = tmp_path / "fused.h5"
    args = ["fuse", "--weights", str(tmp_path / "w.pt"), "--lr-hsi", str(tmp_path / "lr.npy"),
            "--hr-msi", f"{tmp_path / 'msi.h5'}:msi", "--out", str(out), "--steps", "4", "--n-samples", "2",
            "--views", "2"]
    assert main(args) == 0
    with h5py.File(out) as fh:
        assert fh["fused"].shape == (5, 32, 32) and fh["std"].shape == (5, 32, 32)
        assert len(fh.attrs["weights_sha256"]) == 64 and '"n_samples": 2' in fh.attrs["sampling"]
        assert '"views": 2' in fh.attrs["sampling"]
    from hsrdiff.provenance import read, sha256_file

    rec = read(out)
    assert rec["inputs"][str(tmp_path / "msi.h5")] == sha256_file(tmp_path / "msi.h5")
    assert rec["settings"]["schedule"]["steps"] == 4 and rec["settings"]["sampling"]["n_samples"] == 2
    np.save(tmp_path / "lr_bad.npy", lr[:4])
    args[args.index(str(tmp_path / "lr.npy"))] = str(tmp_path / "lr_bad.npy")
    assert main(args) == 2  # 4 bands for a 5-band model: a clear error, no traceback


def test_probe_bases_scores_bases_and_their_mixes(tmp_path, degraded, capsys):
    """`hsrdiff probe-bases`: a base scores as the classical method of its name, projecting it onto
    the observations lifts it on simulated data, a mix's end points are its two bases; a base that
    needs an operator the file lacks is refused naming the file."""
    from hsrdiff.baselines import classical
    from hsrdiff.errors import DataError
    from hsrdiff.evaluation import score_bases
    from hsrdiff.files import read_observations

    path = simulate_demo(tmp_path, {"seed": 3, "n_train": 1, "n_test": 1, "size": 64, "n_endmembers": 6})["train_00"]
    rows = score_bases([path], ["glp-hs", "glp-hs+p20"], [0.0, 0.5, 1.0])
    by = {r["image"]: r for r in rows}
    assert list(by) == ["glp-hs", "glp-hs+p20", "mix w=0", "mix w=0.5", "mix w=1"]
    assert {r["scene"] for r in rows} == {"train_00"}
    obs = read_observations(path)
    published = classical("glp-hs", obs.lr_hsi, obs.hr_msi, obs.psf, obs.srf).fused
    assert by["glp-hs"]["psnr"] == pytest.approx(psnr(published, obs.gt), abs=0.01)
    assert by["glp-hs+p20"]["psnr"] > by["glp-hs"]["psnr"]
    assert by["mix w=0"]["psnr"] == pytest.approx(by["glp-hs"]["psnr"])
    assert by["mix w=1"]["psnr"] == pytest.approx(by["glp-hs+p20"]["psnr"])
    assert by["mix w=0.5"]["psnr"] >= by["glp-hs"]["psnr"]  # the squared error is convex
    with pytest.raises(DataError, match="scene.h5.*needs the observations' PSF"):
        score_bases([degraded[0]], ["glp-hs", "bicubic"], [0.5])
    assert main(["probe-bases", str(path), "--bases", "glp-hs", "bicubic", "cnmf"]) != 0
    assert "--weights mixes exactly two bases, got 3" in capsys.readouterr().err
    assert main(["probe-bases", str(path), "--bases", "bicubic", "glp-hs", "--weights", "0.5"]) == 0
    table = capsys.readouterr().out
    assert "Mean over 1 scenes." in table and "| mix w=0.5 |" in table and "of 1 |" in table
    # a mix of the mean base's parts is named as the model base to configure, and scores as it
    rows = score_bases([path], ["glp-hs+p5", "cnmf+p5"], [0.75])
    by = {r["image"]: r for r in rows}
    assert list(by) == ["glp-hs+p5", "cnmf+p5", "glp-hs+cnmf@0.75+p5"]
    assert main(["probe-bases", str(path), "--bases", "glp-hs+p5", "cnmf+p5", "--weights", "0.75"]) == 0
    assert "| glp-hs+cnmf@0.75+p5 |" in capsys.readouterr().out
    # any base by its name, three-part means included, each fusion computed once for all of them
    rows = score_bases([path], ["glp-hs+cnmf@0.75+p5", "glp-hs+cnmf+gsa@0.5,0.2+p5"], [])
    assert [r["image"] for r in rows] == ["glp-hs+cnmf@0.75+p5", "glp-hs+cnmf+gsa@0.5,0.2+p5"]
    assert rows[0]["psnr"] == pytest.approx(by["glp-hs+cnmf@0.75+p5"]["psnr"], abs=1e-6)
    assert rows[1]["psnr"] != pytest.approx(rows[0]["psnr"], abs=1e-3)
    # a misspelt base is the caller's error, not the file's
    assert main(["probe-bases", str(path), "--bases", "glp-hs", "cnmf+q5", "--weights", "0.5"]) == 2
    assert "unknown model base 'cnmf+q5'" in capsys.readouterr().err
