"""The SLURM profile against a real Slurm cluster (tests/slurm/cluster-up.sh).

The demo pipeline goes through `snakemake --profile slurm all` (the profile found by name after
`make slurm-profile`) with real sbatch, srun and sacct, and the test reads back from Slurm's
accounting what each job asked for. Training stage 1 gets, at a known step, the SIGTERM that the
profile's pre-kill signal makes Slurm send before a time limit: it must checkpoint, be resubmitted
by Snakemake's retries, resume where it stopped and complete.

Needs root on Debian (the cluster is installed with apt-get and started by hand, no systemd);
skipped elsewhere. `pytest -m "not slurm"` leaves it out.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM_DIR = REPO / "tests" / "slurm"
GPU_RULES = {"train_stage1", "train_stage2", "train_stage3", "sample"}
CPU_RULES = {"generate_demo", "prepare", "degrade", "base", "patches", "bicubic", "evaluate", "aggregate", "figures"}
# The CPU rules of this run whose mem_mb follows their inputs' size (workflow/rules/common.smk, memory_mb).
INPUT_SIZED_MEMORY = {"degrade", "base", "bicubic", "evaluate", "figures"}
# Stage 1 is stopped once, as Slurm's pre-kill warning does (SIGTERM to the job's steps), when its
# log shows it has passed INTERRUPT_AT_STEP: the same preemption whatever the machine's speed. The
# 300 steps after it (tests/slurm/demo.yaml) take about 30 s on a 2-core CI machine: far more
# than the watcher's 0.2 s poll and scancel need.
INTERRUPT_AT_STEP = 100
SACCT_FIELDS = ("JobID", "Comment", "Partition", "State", "ExitCode", "Elapsed", "AllocTRES", "WorkDir", "SubmitLine")


def _why_no_cluster() -> str | None:
    if os.environ.get("HSRDIFF_SLURM", "") == "0":
        return "HSRDIFF_SLURM=0"
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "the Slurm test cluster is installed and started as root (this is not root)"
    if shutil.which("apt-get") is None:
        return "the Slurm test cluster is installed with apt-get (Debian); none here"
    if shutil.which("timeout") is None:
        return "coreutils' timeout is needed to bound the Snakemake run"
    return None


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    reason = _why_no_cluster()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm-state")
    env = {**os.environ, "HSRDIFF_SLURM_STATE": str(state)}
    up = subprocess.run(["bash", str(SLURM_DIR / "cluster-up.sh")], env=env, capture_output=True, text=True, timeout=900)
    if up.returncode == 3:
        pytest.skip(up.stderr.strip())
    try:
        # Root on Debian is where this test must run (CI): a cluster that does not start fails it.
        assert up.returncode == 0, f"cluster-up.sh failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        yield state
    finally:
        subprocess.run(["bash", str(SLURM_DIR / "cluster-down.sh")], env=env, capture_output=True, text=True, timeout=120)


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path) as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _interrupt_stage1(workdir: Path, done: threading.Event, record: dict) -> None:
    """Once stage 1's first job has logged a step >= INTERRUPT_AT_STEP, send it what the profile's
    `--signal=TERM@N` makes Slurm send before a time limit: SIGTERM to the job's steps."""
    ckpt_dir = workdir / "results" / "demo" / "checkpoints" / "hsrdiff" / "stage1"
    while not done.wait(0.2):
        attempts = _read_csv(ckpt_dir / "attempts.csv")
        if not attempts or attempts[-1]["event"] != "start":
            continue
        steps = [int(row["step"]) for row in _read_csv(ckpt_dir / "log.csv") if (row.get("step") or "").isdigit()]
        if steps and max(steps) >= INTERRUPT_AT_STEP:
            job = attempts[-1]["slurm_job_id"]
            record.update(job=job, logged_step=max(steps),
                          scancel=subprocess.run(["scancel", "--signal=TERM", job], capture_output=True, text=True).returncode)
            return


@pytest.fixture(scope="module")
def pipeline(slurm_cluster, tmp_path_factory):
    """One run of the demo pipeline through the shipped profile, with the design card's exact
    line `snakemake --profile slurm all` (profile found by name after `make slurm-profile`, in a
    temporary config home); its workdir and output."""
    workdir = tmp_path_factory.mktemp("slurm-run")
    config_home = tmp_path_factory.mktemp("config-home")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_CONFIG_HOME": str(config_home),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    made = subprocess.run(["make", "-C", str(REPO), "slurm-profile"], env=env, capture_output=True, text=True)
    assert made.returncode == 0 and (config_home / "snakemake" / "slurm").resolve() == REPO / "profiles" / "slurm", made
    with open(SLURM_DIR / "demo.yaml") as fh:
        iterations = yaml.safe_load(fh)["training"]["stages"][0]["iterations"]
    command = [
        # SIGINT, not SIGTERM, stops a Snakemake that waits on cluster jobs.
        "timeout", "-k", "30", "-s", "INT", "1500",
        "snakemake", "--profile", "slurm", "all",
        "-d", str(workdir), "--configfile", str(REPO / "config" / "config.yaml"), str(SLURM_DIR / "demo.yaml"),
        # The documented overrides for this small cluster (docs/slurm.md): 2-core node, its
        # partitions, quick first status checks ...
        "--max-threads", "2",
        "--slurm-partition-config", str(SLURM_DIR / "partitions.yaml"),
        # The plugin's first check comes after this many seconds (40 by default), each later one
        # 10 s later than the last while no job has finished. 2 and 5 gave the same 398 s here.
        "--slurm-init-seconds-before-status-checks", "5",
        # ... and what the test is about: two GPUs for stage 2 (one core each: the node has two),
        # and stage 3 as a multi-node job on one node. --set-resources replaces the profile's
        # whole set-resources: its signal lines are repeated, as docs/slurm.md tells users to.
        "--set-resources", "train_stage1:slurm_extra='--signal=TERM@300'",
        "train_stage2:gpu=2", "train_stage2:cpus_per_gpu=1",
        "train_stage2:slurm_extra='--signal=TERM@300'", "train_stage3:slurm_extra='--signal=TERM@300'",
        "train_stage3:gpu=2", "train_stage3:cpus_per_gpu=1", "train_stage3:mpi=srun", "train_stage3:tasks_per_node=2",
    ]
    started = time.monotonic()
    done, interrupted = threading.Event(), {}
    watcher = threading.Thread(target=_interrupt_stage1, args=(workdir, done, interrupted), daemon=True)
    watcher.start()
    try:
        run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1600, env=env)
    finally:
        done.set()
        watcher.join()
    seconds = time.monotonic() - started
    out = run.stdout + run.stderr
    assert run.returncode == 0, f"snakemake through the profile failed (rc {run.returncode}):\n{out[-6000:]}"
    jobs = _sacct(workdir)
    print(f"\nslurm pipeline: {seconds:.0f} s, {len(jobs)} jobs; stage 1 interrupted: {interrupted}")
    for job in jobs:
        print(f"  {job['JobID']:>5} {job['rule']:<14} {job['Partition']:<4} {job['State']:<10} {job['Elapsed']} "
              f"{job['AllocTRES']} | {job['SubmitLine'].split(' --wrap')[0]}")
    return {"workdir": workdir, "out": out, "jobs": jobs, "seconds": seconds, "iterations": iterations,
            "interrupted": interrupted}


def _sacct(workdir: Path) -> list[dict]:
    """Slurm's accounting records of the jobs that ran in ``workdir``, with the rule of each."""
    result = subprocess.run(
        ["sacct", "-X", "-P", "-n", "--starttime", "now-1days", "--format", ",".join(SACCT_FIELDS)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    jobs = []
    for line in result.stdout.splitlines():
        # SubmitLine is last and may contain '|' inside the wrapped command: split the rest only.
        fields = line.split("|", len(SACCT_FIELDS) - 1)
        job = dict(zip(SACCT_FIELDS, fields))
        if Path(job["WorkDir"]) != workdir:
            continue
        # The plugin's comment: rule_<rule>_wildcards_<values>, or rule_<rule> without wildcards.
        job["rule"] = job["Comment"].removeprefix("rule_").split("_wildcards_")[0]
        jobs.append(job)
    return jobs


def _tres(tres: str, name: str) -> str | None:
    """One item of sacct's AllocTRES (``billing=1,cpu=1,mem=2009M,node=1``) by name."""
    for item in tres.split(","):
        key, _, value = item.partition("=")
        if key == name:
            return value
    return None


def _gpus(tres: str) -> int:
    return int(_tres(tres, "gres/gpu") or 0)


def _mem_mb(tres: str) -> int:
    value = _tres(tres, "mem") or "0M"
    return int(float(value[:-1]) * (1024 if value.endswith("G") else 1))


def test_every_rule_went_through_slurm(pipeline):
    rules = {job["rule"] for job in pipeline["jobs"]}
    assert rules == GPU_RULES | CPU_RULES, rules
    summary = pd.read_csv(pipeline["workdir"] / "results" / "demo" / "summary.csv")
    assert set(summary["method"]) == {"hsrdiff", "bicubic"}
    assert summary["psnr"].between(10, 80).all(), summary
    # Provenance names the Slurm job that made a file.
    from hsrdiff.provenance import read

    (sample,) = [job for job in pipeline["jobs"] if job["rule"] == "sample"]
    fused = read(pipeline["workdir"] / "results" / "demo" / "fused" / "hsrdiff" / "test_00.h5")
    assert fused["environment"]["slurm_job_id"] == sample["JobID"]
    # The plugin keeps a log per job (slurm-keep-successful-logs): one per sacct record.
    logs = list((pipeline["workdir"] / "logs" / "slurm").rglob("*.log"))
    assert {p.stem for p in logs} == {job["JobID"] for job in pipeline["jobs"]}


def test_gpu_rules_asked_for_gpus_and_cpu_rules_did_not(pipeline):
    for job in pipeline["jobs"]:
        submit, gpus = job["SubmitLine"].split(" --wrap")[0], _gpus(job["AllocTRES"])
        if job["rule"] in GPU_RULES:
            want = 2 if job["rule"] in ("train_stage2", "train_stage3") else 1
            assert gpus == want and f"--gpus={want}" in submit, job
            assert job["Partition"] == "gpu", job
            assert f"--cpus-per-gpu={3 - want}" in submit, job
            # Never tasks on a GPU rule: one process per job, torchrun makes the per-GPU ones;
            # only the multi-node path asks for one task per GPU on each node.
            tasks = ["--ntasks-per-node=2"] if job["rule"] == "train_stage3" else []
            assert [w for w in submit.split() if w.startswith("--ntasks")] == tasks, job
            # Training is warned before its time limit, so that it checkpoints.
            assert ("--signal=TERM@" in submit) == job["rule"].startswith("train_"), job
        else:
            assert gpus == 0 and "--gpus" not in submit and "--gres" not in submit, job
            assert job["Partition"] == "cpu", job
            assert "--cpus-per-task=1" in submit, job
        if job["rule"] in INPUT_SIZED_MEMORY:
            # Memory from the inputs' size (a 64x64 demo scene: a few hundred kB), not a fixed amount.
            assert 2000 <= _mem_mb(job["AllocTRES"]) < 2100, job


def test_a_training_job_stopped_by_the_pre_kill_signal_is_resubmitted_and_resumes_without_loss(pipeline):
    interrupted = pipeline["interrupted"]
    assert interrupted.get("scancel") == 0, f"stage 1 was not signalled: {interrupted}"
    stage1 = [job for job in pipeline["jobs"] if job["rule"] == "train_stage1"]
    assert [job["State"] for job in stage1] == ["FAILED", "COMPLETED"], stage1
    assert stage1[0]["JobID"] == interrupted["job"]
    assert all("--signal=TERM@300" in job["SubmitLine"] for job in stage1)

    ckpt_dir = pipeline["workdir"] / "results" / "demo" / "checkpoints" / "hsrdiff" / "stage1"
    attempts = _read_csv(ckpt_dir / "attempts.csv")
    # The signalled job wrote a checkpoint at the step it had reached and exited; Snakemake's
    # retry resubmitted it and the new job resumed at that very step: nothing lost.
    assert [a["event"] for a in attempts] == ["start", "interrupted", "resume", "done"], attempts
    assert [a["slurm_job_id"] for a in attempts if a["event"] in ("start", "resume")] == [j["JobID"] for j in stage1]
    stopped, resumed = attempts[1], attempts[2]
    assert int(resumed["step"]) == int(stopped["step"]) >= interrupted["logged_step"] >= INTERRUPT_AT_STEP
    assert int(stopped["step"]) < pipeline["iterations"]
    assert int(attempts[-1]["step"]) == pipeline["iterations"]
    weights = pipeline["workdir"] / "results" / "demo" / "models" / "hsrdiff" / "stage1.pt"
    assert weights.exists()


@pytest.mark.parametrize("stage,launcher", [
    ("stage2", "torch.distributed.run --standalone --nproc_per_node=2 -m hsrdiff.cli train"),  # one node, torchrun
    ("stage3", "exec srun --nodes=1 --ntasks-per-node=2 --kill-on-bad-exit=1 "),  # the multi-node path
])
def test_two_gpu_jobs_train_with_two_processes(pipeline, stage, launcher):
    ckpt_dir = pipeline["workdir"] / "results" / "demo" / "checkpoints" / "hsrdiff" / stage
    with open(ckpt_dir / "attempts.csv") as fh:
        attempts = list(csv.DictReader(fh))
    assert [a["event"] for a in attempts] == ["start", "done"]
    assert {a["world_size"] for a in attempts} == {"2"}
    (job,) = [job for job in pipeline["jobs"] if job["rule"] == f"train_{stage}"]
    assert _gpus(job["AllocTRES"]) == 2 and job["State"] == "COMPLETED"
    assert launcher in pipeline["out"]
