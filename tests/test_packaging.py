"""The wheel works without the source tree: its SRF tables and schema are inside, and `hsrdiff
degrade` and `hsrdiff fuse` run from a folder that has no config/ (an installed user's case)."""

import os
import shutil
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest
import yaml

from conftest import REPO
from hsrdiff.config import load_config, validate_config
from hsrdiff.models import ModelConfig, build_model, save_atomic


def test_the_shipped_sampling_settings_are_the_schema_defaults():
    """`hsrdiff fuse` outside a checkout uses the schema's defaults: they must be the shipped ones."""
    shipped, defaults = load_config(REPO / "config" / "config.yaml"), validate_config({})
    assert shipped["sampling"] == defaults["sampling"]
    assert shipped["diffusion"]["sample_schedule"] == defaults["diffusion"]["sample_schedule"]


@pytest.mark.slow
def test_the_wheel_degrades_and_fuses_outside_the_repository(tmp_path):
    # Build from a copy of the files git knows: an in-tree build would leave build/ in the checkout.
    source = tmp_path / "src"
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    run = lambda *cmd, **kw: subprocess.run(cmd, capture_output=True, text=True, **kw)  # noqa: E731
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(source))
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("hsrdiff-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for packaged in ("hsrdiff/srf/nikon_d700.csv", "hsrdiff/srf/worldview3.csv", "hsrdiff/schemas/config.schema.yaml"):
        assert packaged in names
    site = tmp_path / "site"
    installed = run(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel))
    assert installed.returncode == 0, installed.stderr

    work = tmp_path / "user"  # no config/, no workflow/, no source
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    where = run(sys.executable, "-c", "import hsrdiff; print(hsrdiff.__file__)", cwd=work, env=env)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    hsrdiff = [sys.executable, "-m", "hsrdiff.cli"]

    # degrade: a prepared scene and a config naming a packaged SRF table
    rng = np.random.default_rng(0)
    with h5py.File(work / "prepared.h5", "w") as fh:
        fh["hsi"] = rng.random((31, 32, 32), dtype=np.float32)
        fh["wavelengths"] = np.arange(400, 701, 10.0)
    entry = {"source": {"path": "prepared.h5"}, "reader": "hdf5", "variable": "hsi", "axis_order": "bhw",
             "wavelengths": {"start": 400, "stop": 700, "count": 31}, "scale": 1.0, "ratio": 4,
             "psf": {"mode": "block"}, "srf": "nikon_d700", "scenes": {"test": ["s"]}}
    (work / "my.yaml").write_text(yaml.safe_dump({"active_datasets": ["mine"], "datasets": {"mine": entry}}))
    degraded = run(*hsrdiff, "degrade", "--config", "my.yaml", "--dataset", "mine", "--scene", "s",
                   "--input", "prepared.h5", "--out", "s.h5", cwd=work, env=env)
    assert degraded.returncode == 0, degraded.stderr
    with h5py.File(work / "s.h5") as fh:
        assert fh["lr_hsi"].shape == (31, 8, 8) and fh["hr_msi"].shape == (3, 32, 32)
        np.save(work / "lr.npy", fh["lr_hsi"][()])
        np.save(work / "msi.npy", fh["hr_msi"][()])

    # fuse: no --config and no config/config.yaml here
    mc = ModelConfig(31, 3, channels=8, depth=2, heads=2, window=8)
    save_atomic({"model_config": mc.to_dict(), "state_dict": build_model(mc).state_dict(), "mode": "diffusion", "ratio": 4},
                work / "w.pt")
    fused = run(*hsrdiff, "fuse", "--weights", "w.pt", "--lr-hsi", "lr.npy", "--hr-msi", "msi.npy", "--out", "f.h5",
                "--steps", "2", cwd=work, env=env)
    assert fused.returncode == 0, fused.stderr
    with h5py.File(work / "f.h5") as fh:
        cube = fh["fused"][()]
    assert cube.shape == (31, 32, 32) and np.isfinite(cube).all()
    assert not (work / "config").exists() and not (work / "build").exists()
