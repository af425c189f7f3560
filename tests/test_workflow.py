"""The Snakemake workflow: lint, dry run of the default config, a real run of the data stages."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO
from hsrdiff.provenance import read, sha256_file

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile")]


def run_snakemake(workdir: Path, config: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [*SNAKEMAKE, "-d", str(workdir), "--configfile", str(config_path), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def small_demo_config(default_config: dict) -> dict:
    config = copy.deepcopy(default_config)
    # As few scenes as every path needs: two to train on, one held out, one test scene.
    config["datasets"]["demo"]["source"]["generate"] = {"seed": 3, "n_train": 3, "n_test": 1, "size": 64}
    config["datasets"]["demo"]["scenes"] = {"validation": ["train_02"]}  # scored apart, not trained on
    config["training"]["stages"] = [
        {"name": "s1", "patch_size": 16, "batch_size": 4, "iterations": 6},
        {"name": "s2", "patch_size": 32, "batch_size": 2, "iterations": 4},
        {"name": "s3", "patch_size": "full", "batch_size": 2, "iterations": 2, "trainable": "second_half"},
    ]
    config["training"].update(checkpoint_every=2, log_every=1)
    config["model"] = {"channels": 8, "depth": 2, "heads": 2, "window": 8}
    config["diffusion"] = {"sample_schedule": {"steps": 4, "beta_start": 1e-3, "beta_end": 0.5}}
    config["evaluation"] = {"cnmf": {"inner_iterations": 20, "outer_iterations": 1}}
    return config


def test_lint_has_no_remarks():
    result = subprocess.run([*SNAKEMAKE, "--lint", "--cores", "1"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr, result.stdout + result.stderr


def test_dry_run_of_the_default_config(tmp_path, default_config):
    result = run_snakemake(tmp_path, default_config, "-n", "--cores", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    for rule, count in (("generate_demo", 1), ("prepare", 20), ("degrade", 20), ("patches", 3),
                        ("train_stage1", 2), ("train_stage2", 2), ("train_stage3", 2), ("sample", 8),
                        ("cnmf", 4), ("hysure", 4), ("hypersharpen", 8), ("bicubic", 4), ("evaluate", 28), ("aggregate", 1),
                        ("figures", 4)):
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), (rule, out[-2000:])


def test_validation_scenes_are_scored_apart_and_never_cut_into_patches(tmp_path, default_config):
    config = copy.deepcopy(default_config)
    config["datasets"]["demo"]["scenes"] = {"validation": ["train_14", "train_15"]}
    result = run_snakemake(tmp_path, config, "-n", "--cores", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    for rule, count in (("prepare", 20), ("degrade", 20), ("patches", 3), ("sample", 12), ("evaluate", 42),
                        ("aggregate", 1), ("aggregate_validation", 1), ("figures", 4)):
        assert any(line.split()[:2] == [rule, str(count)] for line in out.splitlines()), (rule, out[-2000:])
    patch_jobs = out.split("rule patches:")[1:]
    assert patch_jobs and all("train_13.h5" in job.split("rule ")[0] and "train_14.h5" not in job.split("rule ")[0]
                              and "train_15.h5" not in job.split("rule ")[0] for job in patch_jobs)
    assert "results/demo/validation/summary.md" in out


def test_unknown_config_key_stops_the_workflow(tmp_path, default_config):
    config = copy.deepcopy(default_config)
    config["patches"]["strid_fraction"] = 0.5
    result = run_snakemake(tmp_path, config, "-n", "--cores", "1")
    assert result.returncode != 0
    assert "strid_fraction" in result.stdout + result.stderr


def test_inactive_dataset_without_source_does_not_block_the_demo_but_active_one_explains(tmp_path, default_config):
    config = copy.deepcopy(default_config)
    config["active_datasets"] = ["hypsen"]
    result = run_snakemake(tmp_path, config, "-n", "--cores", "1")
    assert result.returncode != 0
    assert "HypSen has no public download" in result.stdout + result.stderr


@pytest.mark.slow
def test_data_and_training_stages_run_on_a_small_demo(tmp_path, default_config):
    result = run_snakemake(tmp_path, small_demo_config(default_config), "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    res = tmp_path / "resources"
    assert sorted(p.name for p in (res / "prepared" / "demo").glob("*.h5")) == [
        "test_00.h5", "train_00.h5", "train_01.h5", "train_02.h5"]
    with h5py.File(res / "degraded" / "demo" / "test_00.h5") as fh:
        assert fh["gt"].shape == (31, 64, 64)
        assert fh["lr_hsi"].shape == (31, 16, 16)
        assert fh["hr_msi"].shape == (3, 64, 64)
        assert fh["srf"].shape == (3, 31) and fh["psf"].shape == (10, 10)  # block-centred at ratio 4
        assert fh.attrs["split"] == "test" and fh.attrs["ratio"] == 4
    expected = {"p16": (2 * 49, 16, 4), "p32": (2 * 9, 32, 8), "pfull": (2, 64, 16)}
    for name, (n, hr, lr) in expected.items():
        with h5py.File(res / "patches" / "demo" / f"{name}.h5") as fh:
            assert fh["gt"].shape == (n, 31, hr, hr), name
            assert fh["lr_hsi"].shape == (n, 31, lr, lr), name
            assert fh["hr_msi"].shape == (n, 3, hr, hr), name
            assert set(fh["scene_index"][()]) == {0, 1}  # training scenes only
    # each scene's network base once (both networks add to GLP-HS), for the patches and the samples
    assert sorted(p.name for p in (res / "bases" / "demo" / "glp-hs").glob("*.h5")) == [
        "test_00.h5", "train_00.h5", "train_01.h5", "train_02.h5"]
    for rule in ("generate_demo", "prepare", "degrade", "base", "patches", "train"):
        assert list((tmp_path / "logs" / rule).rglob("*.log")), rule
        assert list((tmp_path / "benchmarks" / rule).rglob("*.tsv")), rule
    assert not list(res.rglob("*.part"))

    # Stages chain: each starts from the previous one's weights; checkpoints stay beside them.
    for run, mode in (("hsrdiff", "diffusion"), ("regression", "regression")):
        models = tmp_path / "results" / "demo" / "models" / run
        assert sorted(p.name for p in models.iterdir() if not p.name.endswith(".prov.json")) == ["s1.pt", "s1_loss.png", "s2.pt", "s2_loss.png", "s3.pt", "s3_loss.png"]
        s3 = torch.load(models / "s3.pt", weights_only=False)
        assert s3["stage"] == "s3" and s3["step"] == 2 and s3["model_config"]["channels"] == 8 and s3["mode"] == mode
    assert "resuming" not in (tmp_path / "logs" / "train" / "demo" / "hsrdiff" / "s2.log").read_text()
    rows = (tmp_path / "results" / "demo" / "checkpoints" / "hsrdiff" / "s1" / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and len(rows) == 7

    # Evaluation: every method on every test scene, one table.
    metrics = pd.read_csv(tmp_path / "results" / "demo" / "metrics.csv")
    assert sorted(metrics["method"].unique()) == ["bicubic", "cnmf", "glp-hs", "gsa", "hsrdiff", "hysure", "regression"]
    assert len(metrics) == 7
    assert metrics["psnr"].between(15, 80).all() and metrics["sam"].ge(0).all()
    summary = (tmp_path / "results" / "demo" / "summary.md").read_text()
    assert all(f"| {m} |" in summary for m in ("hsrdiff", "regression", "cnmf", "hysure", "gsa", "glp-hs", "bicubic"))
    validation = pd.read_csv(tmp_path / "results" / "demo" / "validation" / "metrics.csv")
    assert sorted(validation["method"].unique()) == sorted(metrics["method"].unique()) and set(validation["scene"]) == {"train_02"}
    assert "1 validation scenes" in (tmp_path / "results" / "demo" / "validation" / "summary.md").read_text()
    with h5py.File(tmp_path / "results" / "demo" / "fused" / "hsrdiff" / "test_00.h5") as fh:
        assert fh["fused"].shape == (31, 64, 64) and len(fh.attrs["weights_sha256"]) == 64
        assert fh.attrs["base_file"] == "resources/bases/demo/glp-hs/test_00.h5"

    figures = tmp_path / "results" / "demo" / "figures"
    assert sorted(p.name for p in figures.glob("*.png")) == sorted(
        f"test_00_{kind}.png" for kind in ("composite", "errors", "spectra"))
    assert all(p.stat().st_size > 5000 for p in figures.glob("*.png"))

    # Provenance: every file a rule made has a sidecar naming the rule, its settings, the digest
    # of each input and the code version; the digests chain from one stage to the next.
    made = [p for top in ("resources", "results") for p in (tmp_path / top).rglob("*")
            if p.is_file() and not p.name.endswith(".prov.json") and "checkpoints" not in p.parts]
    assert len(made) > 40
    missing = [str(p.relative_to(tmp_path)) for p in made if not Path(f"{p}.prov.json").is_file()]
    assert not missing, missing
    fused = read(tmp_path / "results" / "demo" / "fused" / "hsrdiff" / "test_00.h5")
    assert fused["rule"] == "sample" and fused["wildcards"] == {"dataset": "demo", "method": "hsrdiff", "scene": "test_00"}
    weights = tmp_path / "results" / "demo" / "models" / "hsrdiff" / "s3.pt"
    assert fused["inputs"]["results/demo/models/hsrdiff/s3.pt"] == sha256_file(weights)
    assert fused["settings"]["params"]["schedule"]["steps"] == 4
    assert fused["code_version"].startswith("hsrdiff ")
    trained = read(weights)
    assert trained["rule"] == "train_s3" and trained["settings"]["stage"]["name"] == "s3"
    assert trained["inputs"]["results/demo/models/hsrdiff/s2.pt"] == read(weights.with_name("s2.pt"))["self"]["sha256"]
    degraded = read(res / "degraded" / "demo" / "test_00.h5")
    assert degraded["settings"]["dataset"]["ratio"] == 4 and degraded["rule"] == "degrade"

    report = tmp_path / "report.html"
    result = run_snakemake(tmp_path, small_demo_config(default_config), "--report", str(report))
    assert result.returncode == 0 and report.stat().st_size > 100_000, result.stderr[-2000:]

    # Nothing left to do; forcing one stage reruns it and what depends on it, nothing upstream.
    result = run_snakemake(tmp_path, small_demo_config(default_config), "-n", "--cores", "2")
    assert "Nothing to be done" in result.stdout + result.stderr
    result = run_snakemake(tmp_path, small_demo_config(default_config), "-n", "--cores", "2", "--forcerun", "degrade")
    out = result.stdout + result.stderr
    assert any(line.split()[:2] == ["degrade", "4"] for line in out.splitlines()), out[-2000:]
    assert not any(line.split()[:1] == ["prepare"] for line in out.splitlines())
    result = run_snakemake(tmp_path, small_demo_config(default_config), "-n", "--cores", "2", "--forcerun", "train_s2")
    assert _job_counts(result) == {"train_s2": 2, "train_s3": 2, "sample": 4, "evaluate": 4, "aggregate": 1,
                                   "aggregate_validation": 1, "figures": 1, "all": 1}
    # A sampling setting invalidates sampling and metrics only.
    config = small_demo_config(default_config)
    config["sampling"] = {"seed": 7}
    result = run_snakemake(tmp_path, config, "-n", "--cores", "2")
    assert _job_counts(result) == {"sample": 4, "evaluate": 4, "aggregate": 1, "aggregate_validation": 1, "figures": 1, "all": 1}
    # So does another number of sampling steps: no stage is retrained.
    config = small_demo_config(default_config)
    config["diffusion"]["sample_schedule"]["steps"] = 8
    result = run_snakemake(tmp_path, config, "-n", "--cores", "2")
    assert _job_counts(result) == {"sample": 4, "evaluate": 4, "aggregate": 1, "aggregate_validation": 1, "figures": 1, "all": 1}
    # Another base (here the mix, weighted) is computed for every scene, and the patches and the
    # networks follow it (not from the cnmf row: this config's CNMF settings are not the network's).
    config = small_demo_config(default_config)
    config["model"].update(base="glp-hs+cnmf", base_weight=0.75)
    result = run_snakemake(tmp_path, config, "-n", "--cores", "2")
    assert _job_counts(result) == {"base": 4, "patches": 3, "train_s1": 2, "train_s2": 2, "train_s3": 2, "sample": 4,
                                   "evaluate": 4, "aggregate": 1, "aggregate_validation": 1, "figures": 1, "all": 1}
    assert "resources/bases/demo/glp-hs+cnmf@0.75/test_00.h5" in result.stdout + result.stderr
    # A dataset's simulation settings (here its PSF) re-simulate every scene and redo all that
    # follows from the observations, but read no raw data again.
    config = small_demo_config(default_config)
    config["datasets"]["demo"]["psf"] = {"mode": "convolve", "sigma": 1.5}
    result = run_snakemake(tmp_path, config, "-n", "--cores", "2")
    assert _job_counts(result) == {"degrade": 4, "base": 4, "patches": 3, "train_s1": 2, "train_s2": 2, "train_s3": 2, "sample": 4,
                                   "cnmf": 2, "hysure": 2, "hypersharpen": 4, "bicubic": 2, "evaluate": 14, "aggregate": 1,
                                   "aggregate_validation": 1, "figures": 1, "all": 1}
    # A reader setting (the scale) starts from prepare; the generated raw data stay.
    config = small_demo_config(default_config)
    config["datasets"]["demo"]["scale"] = 2.0
    counts = _job_counts(run_snakemake(tmp_path, config, "-n", "--cores", "2"))
    assert counts["prepare"] == 4 and counts["degrade"] == 4 and "generate_demo" not in counts, counts
    # Training on the validation scene too recuts the patches and retrains; no scene is re-simulated.
    config = small_demo_config(default_config)
    config["datasets"]["demo"]["scenes"] = {}
    assert _job_counts(run_snakemake(tmp_path, config, "-n", "--cores", "2")) == {
        "patches": 3, "train_s1": 2, "train_s2": 2, "train_s3": 2, "sample": 2, "evaluate": 2, "aggregate": 1,
        "figures": 1, "all": 1}


def _job_counts(result) -> dict[str, int]:
    """The 'Job stats' table of a dry run."""
    out = (result.stdout + result.stderr).splitlines()
    start = out.index("Job stats:") + 3
    counts = {}
    for line in out[start:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.parametrize("overlay,expected", [
    # a fresh directory: hsrdiff trains too, and every trained method fuses the 4 test scenes
    ("architecture", {"train_stage1": 4, "train_stage2": 4, "train_stage3": 4, "sample": 16, "evaluate": 16, "cnmf": None}),
    ("progressive", {"train_fixed": 1, "train_stage1": 1, "sample": 8, "evaluate": 8, "cnmf": None}),
    ("recipe", {"train_stage1": 4, "train_stage2": 4, "train_stage3": 4, "sample": 16, "evaluate": 32, "cnmf": 4, "hypersharpen": 8}),
    ("seeds", {"train_stage1": 8, "train_stage2": 8, "train_stage3": 8, "sample": 32, "evaluate": 40, "cnmf": 4, "hypersharpen": 4}),
    # two training scenes held out: 4 networks fuse 4 test + 2 validation scenes
    ("long-training", {"train_stage1": 4, "train_stage2": 4, "train_stage3": 4, "sample": 24, "evaluate": 36, "cnmf": 6, "hypersharpen": 6}),
])
def test_ablation_tables_are_one_overlay_each(tmp_path, default_config, overlay, expected):
    from hsrdiff.config import deep_merge

    with open(REPO / "config" / "ablation" / f"{overlay}.yaml") as fh:
        config = deep_merge(default_config, yaml.safe_load(fh))
    result = run_snakemake(tmp_path, config, "-n", "--cores", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    counts = _job_counts(result)
    assert all(counts.get(k) == v for k, v in expected.items()), counts


def test_unknown_method_is_a_clear_error(tmp_path, default_config):
    config = copy.deepcopy(default_config)
    config["evaluation"] = {"methods": ["hsrdiff", "unet"]}
    result = run_snakemake(tmp_path, config, "-n", "--cores", "1")
    assert result.returncode != 0
    assert "evaluation.methods lists 'unet', which is neither hsrdiff" in result.stdout + result.stderr


def _rulegraph(fmt: str) -> str:
    result = subprocess.run([*SNAKEMAKE, "--rulegraph", fmt, "--cores", "1"], capture_output=True, text=True, cwd=REPO,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _mermaid_edges(graph: str) -> set[tuple[str, str]]:
    """The edges of a Mermaid flowchart by rule name (Snakemake's edge order and ids vary)."""
    import re

    names = dict(re.findall(r"^\s*(id\d+)\[([^\]]+)\]", graph, re.M))
    return {(names[a], names[b]) for a, b in re.findall(r"^\s*(id\d+) --> (id\d+)", graph, re.M)}


def test_readme_shows_the_current_rule_graph():
    readme = (REPO / "README.md").read_text()
    shown = readme.split("<!-- rulegraph:start -->\n```mermaid\n")[1].split("```\n<!-- rulegraph:end -->")[0]
    edges = _mermaid_edges(shown)
    assert ("train_stage1", "train_stage2") in edges and ("sample", "evaluate") in edges
    assert edges == _mermaid_edges(_rulegraph("mermaid-js")), "README's rule graph is stale: run `make rulegraph`"


def test_rule_graph_renders_to_svg_with_graphviz(tmp_path):
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed (apt-get install graphviz); `make dag` needs it")
    svg = subprocess.run(["dot", "-Tsvg"], input=_rulegraph("dot"), capture_output=True, text=True, timeout=60, check=True).stdout
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert all(f">{rule}<" in svg for rule in ("prepare", "degrade", "patches", "train_stage1", "sample", "aggregate"))


def test_multi_node_training_without_tasks_per_node_is_a_clear_error(tmp_path, default_config):
    result = run_snakemake(tmp_path, default_config, "-n", "--cores", "1",
                           "--set-resources", "train_stage1:mpi=srun", "train_stage1:nodes=2", "train_stage1:gpu=8")
    assert result.returncode != 0
    assert "an `mpi` training job needs `tasks_per_node`" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_the_cave_benchmark_plans_the_whole_protocol(tmp_path, default_config):
    """config/bench/cave.yaml (make bench-cave, with its four-part base): the 32 CAVE scenes
    through every stage, two networks of one stage each, every method on the 12 test scenes. The CAVE folder is the shared
    copy when present, else an empty stand-in (a dry run reads no data)."""
    from hsrdiff.config import deep_merge

    config = default_config
    with open(REPO / "config" / "bench" / "cave.yaml") as fh:
        config = deep_merge(config, yaml.safe_load(fh))
    cave = (REPO / config["datasets"]["cave"]["source"]["path"]).resolve()
    if not cave.is_dir():
        cave = tmp_path / "cave"
        cave.mkdir()
    config["datasets"]["cave"]["source"]["path"] = str(cave)
    result = run_snakemake(tmp_path / "run", config, "-n", "--cores", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _job_counts(result) == {"prepare": 32, "degrade": 32, "base": 32, "patches": 1, "train_stage1": 2, "sample": 24, "cnmf": 12,
                                   "hysure": 12, "hypersharpen": 24, "bicubic": 12, "evaluate": 84, "aggregate": 1, "figures": 12, "all": 1}
    # a test scene's base takes its CNMF and HySure parts from those rows; a training scene's computes them
    base_jobs = {job.split("output: ")[1].split()[0]: job.split("output: ")[0] for job in result.stdout.split("rule base:")[1:]}
    test_base = next(inputs for out, inputs in base_jobs.items() if out.endswith("/balloons.h5"))
    assert "results/cave/fused/cnmf/balloons.h5" in test_base and "results/cave/fused/hysure/balloons.h5" in test_base
    train_base = next(inputs for out, inputs in base_jobs.items() if out.endswith("/beads.h5"))
    assert "results/cave/fused" not in train_base


@pytest.mark.parametrize("change,expected", [
    (lambda c: c["training"]["stages"][0].update(patch_size=30), "patch_size 30 is not a multiple of dataset demo's ratio 4"),
    (lambda c: c["datasets"]["demo"].update(srf="/nonexistent/camera.csv"), "datasets.demo.srf (/nonexistent/camera.csv)"),
    (lambda c: c.setdefault("sampling", {}).update(tile=66), "sampling.tile 66 and sampling.overlap"),
])
def test_what_would_fail_a_job_later_stops_the_workflow_before_any_job(tmp_path, default_config, change, expected):
    """The workflow runs validate-config's check before planning: a run (not a dry run) ends
    with the message and writes nothing."""
    config = copy.deepcopy(default_config)
    change(config)
    result = run_snakemake(tmp_path, config, "--cores", "1")
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".snakemake") == ["config.yaml"]


def test_a_failed_job_leaves_no_sidecar_of_the_previous_run(tmp_path, default_config):
    """Snakemake deletes a failed job's outputs, not their undeclared sidecars: each job clears
    them when it starts, so no provenance is left describing a file that is gone."""
    config = small_demo_config(default_config)
    target = "resources/degraded/demo/test_00.h5"
    assert run_snakemake(tmp_path, config, "--cores", "1", target).returncode == 0
    degraded = tmp_path / target
    assert degraded.is_file() and read(degraded)["rule"] == "degrade"
    prepared = tmp_path / "resources" / "prepared" / "demo" / "test_00.h5"
    prepared.write_bytes(b"not an HDF5 file")  # newer than the output: the rerun of degrade fails
    result = run_snakemake(tmp_path, config, "--cores", "1", target)
    assert result.returncode != 0
    assert "test_00.h5" in result.stderr
    assert not degraded.exists()
    assert not Path(str(degraded) + ".prov.json").exists()
