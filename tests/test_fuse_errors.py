"""`hsrdiff fuse` with bad input: one clear line naming the file and the cause, exit code 2, and
nothing written or harmed (the catalogue of docs/reliability.md, fuse part)."""

import hashlib
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hsrdiff.cli import main
from hsrdiff.models import ModelConfig, build_model, save_atomic

BANDS, MSI, RATIO = 6, 3, 4


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    lr = rng.uniform(0.1, 0.9, (BANDS, 8, 8)).astype(np.float32)
    msi = rng.uniform(0.1, 0.9, (MSI, 32, 32)).astype(np.float32)
    np.save(tmp_path / "lr.npy", lr)
    np.save(tmp_path / "msi.npy", msi)
    mc = ModelConfig(BANDS, MSI, channels=8, depth=2, heads=2, window=8)
    torch.manual_seed(0)
    save_atomic({"model_config": mc.to_dict(), "state_dict": build_model(mc).state_dict(), "mode": "diffusion", "ratio": RATIO},
                tmp_path / "w.pt")
    return tmp_path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fuse(files: Path, *extra: str, lr="lr.npy", msi="msi.npy", out="out.h5", weights="w.pt") -> int:
    return main(["fuse", "--weights", str(files / weights), "--lr-hsi", str(files / lr) if "/" not in lr else lr,
                 "--hr-msi", str(files / msi) if "/" not in msi else msi, "--out", str(files / out) if "/" not in out else out,
                 "--steps", "2", *extra])


def expect_refusal(files, capfd, fragment, before=None, out="out.h5", **kw):
    before = before or {p.name: digest(p) for p in files.iterdir() if p.is_file()}
    assert fuse(files, out=out, **kw) == 2
    err = capfd.readouterr().err
    assert fragment in err, err
    after = {p.name: digest(p) for p in files.iterdir() if p.is_file()}
    assert after == before  # nothing written, nothing changed
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_the_good_case_writes_a_finite_cube(files):
    assert fuse(files) == 0
    with h5py.File(files / "out.h5") as fh:
        assert fh["fused"].shape == (BANDS, 32, 32) and np.isfinite(fh["fused"][()]).all()


def test_a_crafted_weights_file_runs_no_code(files, capfd):
    marker = files / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(files / "evil.pt", "wb") as fh:
        pickle.dump({"model_config": Payload()}, fh)
    expect_refusal(files, capfd, "refused", weights="evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize("content,fragment", [
    (torch.zeros(3), "holds a Tensor, not an hsrdiff weights file"),
    ({"state_dict": {}}, "no 'model_config'"),
    ({"model_config": {"hsi_bands": 6, "msi_bands": 3, "channels": 16}, "state_dict": {}}, "do not agree"),
])
def test_files_that_are_not_hsrdiff_weights(files, capfd, content, fragment):
    torch.save(content, files / "bad.pt")
    expect_refusal(files, capfd, fragment, weights="bad.pt")


def test_nan_weights_are_refused(files, capfd):
    blob = torch.load(files / "w.pt", weights_only=True)
    first = next(iter(blob["state_dict"]))
    blob["state_dict"][first] = blob["state_dict"][first].clone().fill_(float("nan"))
    torch.save(blob, files / "nan.pt")
    expect_refusal(files, capfd, "hold NaN or infinite values", weights="nan.pt")


def test_not_a_torch_file(files, capfd):
    (files / "text.pt").write_text("hello")
    expect_refusal(files, capfd, "not a readable weights or checkpoint file", weights="text.pt")


@pytest.mark.parametrize("make,fragment", [
    (lambda lr: np.where(np.arange(lr.size).reshape(lr.shape) == 5, np.nan, lr), "1 NaN or infinite values (the first at (0, 0, 5))"),
    (lambda lr: np.where(np.arange(lr.size).reshape(lr.shape) == 7, np.inf, lr), "NaN or infinite"),
    (lambda lr: lr * 65535.0, "expected reflectance-like values on [0, 1]"),
    (lambda lr: lr - 0.5, "values from -0.3"),
    (lambda lr: lr.transpose(1, 2, 0), "transpose it to (bands, H, W)"),
    (lambda lr: lr[:4], "shape (4, 8, 8), 4 bands first"),
    (lambda lr: lr[0], "expected 3 axes (bands, H, W)"),
    (lambda lr: lr.astype(np.uint16), "pass --scale dtype to divide by 65535"),
    (lambda lr: lr[:, :6], "the model's ratio is 4, so lr_hsi of 6x8 needs 24x32"),
])
def test_bad_lr_hsi_values_and_shapes(files, capfd, make, fragment):
    np.save(files / "bad.npy", make(np.load(files / "lr.npy")))
    expect_refusal(files, capfd, fragment, lr="bad.npy")


def test_integer_input_fuses_with_an_explicit_scale(files):
    np.save(files / "lr16.npy", np.round(np.load(files / "lr.npy") * 65535).astype(np.uint16))
    assert fuse(files, "--scale", "dtype", lr="lr16.npy") == 0
    assert fuse(files, "--scale", "65535", lr="lr16.npy", out="out2.h5") == 0
    with h5py.File(files / "out.h5") as a, h5py.File(files / "out2.h5") as b:
        np.testing.assert_array_equal(a["fused"][()], b["fused"][()])


@pytest.mark.parametrize("which", ["lr", "msi", "weights"])
def test_out_equal_to_an_input_is_refused(files, capfd, which):
    target = {"lr": "lr.npy", "msi": "msi.npy", "weights": "w.pt"}[which]
    expect_refusal(files, capfd, "writing it would destroy the input", out=target)


def test_out_in_a_missing_or_read_only_folder_fails_before_sampling(files, capfd):
    expect_refusal(files, capfd, "does not exist", out=str(files / "nowhere" / "out.h5"))
    (files / "ro").mkdir()
    os.chmod(files / "ro", 0o555)
    try:
        if os.access(files / "ro", os.W_OK):  # root ignores permissions
            pytest.skip("running as root: a read-only folder is still writable")
        expect_refusal(files, capfd, "is not writable", out=str(files / "ro" / "out.h5"))
    finally:
        os.chmod(files / "ro", 0o755)


def test_out_that_is_a_folder(files, capfd):
    (files / "folder.h5").mkdir()
    expect_refusal(files, capfd, "is a folder", out="folder.h5")


@pytest.mark.parametrize("spec,fragment", [
    ("msi.h5", "name the variable or dataset as"),
    ("msi.h5:nope", "no dataset 'nope'; the file has: cube"),
    ("msi.xyz", "unknown file type '.xyz'"),
    ("missing.npy", "file not found"),
])
def test_unreadable_msi_specs(files, capfd, spec, fragment):
    with h5py.File(files / "msi.h5", "w") as fh:
        fh["cube"] = np.load(files / "msi.npy")
    (files / "msi.xyz").write_text("x")
    expect_refusal(files, capfd, fragment, msi=spec)


def test_matlab_v5_v73_npz_tiff_and_a_colon_in_the_path_are_read(files):
    import scipy.io
    import tifffile

    msi = np.load(files / "msi.npy")
    colon = files / "a:b"
    colon.mkdir()
    scipy.io.savemat(colon / "msi5.mat", {"msi": msi})
    with h5py.File(colon / "msi73.mat", "w") as fh:  # what MATLAB -v7.3 writes: axes reversed
        fh["msi"] = msi.transpose(2, 1, 0)
    np.savez(colon / "msi.npz", msi=msi)
    tifffile.imwrite(colon / "msi.tif", msi, photometric="minisblack")
    results = []
    for i, spec in enumerate([f"{colon}/msi5.mat:msi", f"{colon}/msi73.mat:msi", f"{colon}/msi.npz:msi", f"{colon}/msi.tif"]):
        assert fuse(files, msi=spec, out=f"o{i}.h5") == 0, spec
        with h5py.File(files / f"o{i}.h5") as fh:
            results.append(fh["fused"][()])
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_a_fusion_that_yields_nan_writes_nothing(files, monkeypatch):
    """Weights that pass the checks but produce NaN (here: the sampler's output replaced) leave no file."""
    from hsrdiff.errors import DataError
    from hsrdiff.files import FusionResult
    from hsrdiff.sampling import Fuser, fuse_files

    monkeypatch.setattr(Fuser, "__call__", lambda self, lr, msi, operators=None, base=None: FusionResult(np.full((BANDS, 32, 32), np.nan, np.float32), None, 0.0))
    with pytest.raises(DataError, match="holds NaN or infinite values .*nothing written"):
        fuse_files(files / "w.pt", np.load(files / "lr.npy"), np.load(files / "msi.npy"), files / "nan.h5",
                   {"steps": 2, "spacing": "log_snr"}, {})
    assert not (files / "nan.h5").exists()


@pytest.mark.parametrize("argv,fragment", [
    (["fuse", "--steps", "0"], "argument --steps: 0 is below 1"),
    (["fuse", "--n-samples", "0"], "argument --n-samples: 0 is below 1"),
    (["fuse", "--tile", "-8"], "argument --tile: -8 is below 8"),
    (["fuse", "--tile-batch", "0"], "argument --tile-batch: 0 is below 1"),
    (["fuse", "--overlap", "x"], "argument --overlap: 'x' is not an integer"),
    (["fuse", "--views", "3"], "argument --views: invalid choice: 3 (choose from 1, 2, 4, 8)"),
    (["bench-sampling", "--weights", "w.pt", "x.h5", "--views", "1", "16"], "argument --views: invalid choice: 16"),
    (["patches", "--dataset", "demo", "--patch-size", "0"], "argument --patch-size: 0 is below 1"),
    (["bench-train", "--batch", "0"], "argument --batch: 0 is below 1"),
    (["bench-train", "--widths", "0"], "argument --widths: 0 is below 1"),
    (["bench-sampling", "--weights", "w.pt", "x.h5", "--steps", "0"], "argument --steps: 0 is below 1"),
])
def test_numeric_options_out_of_range_stop_at_the_command_line(files, capsys, argv, fragment):
    if argv[0] == "fuse":
        argv = argv[:1] + ["--weights", "w.pt", "--lr-hsi", "a.npy", "--hr-msi", "b.npy", "--out", "o.h5"] + argv[1:]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and fragment in capsys.readouterr().err


@pytest.mark.parametrize("device,fragment", [("cuda", "has no CUDA device"), ("tpu", "expected auto, cpu or cuda[:N]")])
def test_an_absent_device_is_a_message_not_an_assertion(files, capfd, device, fragment):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    before = {p.name: digest(p) for p in files.iterdir() if p.is_file()}
    assert fuse(files, "--device", device) == 2
    err = capfd.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert {p.name: digest(p) for p in files.iterdir() if p.is_file()} == before
