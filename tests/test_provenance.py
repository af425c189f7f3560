"""Provenance sidecars: what they record, digest reuse, directories, atomic writes."""

import hashlib
import json
import os

import pytest

from hsrdiff import provenance
from hsrdiff.errors import DataError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_sidecar_records_rule_settings_inputs_and_code(tmp_path):
    src, out = tmp_path / "in.bin", tmp_path / "out.h5"
    src.write_bytes(b"input bytes")
    out.write_bytes(b"output bytes")
    (sidecar,) = provenance.stamp([out], "degrade", [src], {"ratio": 4, "srf": "nikon_d700"}, {"scene": "s0"})
    assert sidecar == tmp_path / "out.h5.prov.json"
    rec = provenance.read(out)
    assert rec["rule"] == "degrade" and rec["wildcards"] == {"scene": "s0"}
    assert rec["settings"] == {"ratio": 4, "srf": "nikon_d700"}
    assert rec["inputs"] == {str(src): _sha(b"input bytes")}
    assert rec["self"]["sha256"] == _sha(b"output bytes") and rec["self"]["size"] == 12
    assert rec["code_version"].startswith("hsrdiff ") and rec["environment"]["python"]
    assert not list(tmp_path.glob("*.part"))


def test_an_input_digest_comes_from_its_sidecar_while_the_file_is_unchanged(tmp_path):
    made, out = tmp_path / "patches.h5", tmp_path / "weights.pt"
    made.write_bytes(b"A" * 1000)
    out.write_bytes(b"w")
    provenance.stamp([made], "patches", [], {})
    # A planted digest shows whether the file was read again or the recorded one reused.
    rec = json.loads(provenance.sidecar_of(made).read_text())
    rec["self"]["sha256"] = "recorded"
    provenance.sidecar_of(made).write_text(json.dumps(rec))
    assert provenance.record("train", [made])["inputs"][str(made)] == "recorded"
    # Changed content (and so size or mtime): hashed again.
    made.write_bytes(b"B" * 1001)
    assert provenance.record("train", [made])["inputs"][str(made)] == _sha(b"B" * 1001)
    # Same size, new mtime: hashed again too.
    made.write_bytes(b"C" * 1001)
    st = made.stat()
    os.utime(made, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert provenance.record("train", [made])["inputs"][str(made)] == _sha(b"C" * 1001)


def test_a_directory_is_described_file_by_file(tmp_path):
    raw = tmp_path / "downloads" / "cave"
    (raw / "balloons").mkdir(parents=True)
    (raw / "balloons" / "b_01.png").write_bytes(b"png1")
    (raw / "readme.txt").write_bytes(b"hello")
    provenance.stamp([raw], "download", [], {"url": "http://example/cave.zip"})
    assert provenance.sidecar_of(raw).is_file()
    rec = provenance.record("prepare", [raw])
    assert rec["inputs"][str(raw)] == {"balloons/b_01.png": _sha(b"png1"), "readme.txt": _sha(b"hello")}


def test_missing_sidecar_is_a_clear_error(tmp_path):
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(DataError, match=r"x\.csv: no provenance sidecar x\.csv\.prov\.json"):
        provenance.read(tmp_path / "x.csv")


def test_settings_with_non_json_values_are_recorded_as_text(tmp_path):
    import numpy as np

    out = tmp_path / "o.txt"
    out.write_text("o")
    provenance.stamp([out], "r", [], {"path": tmp_path, "n": np.int64(3), "nested": {"x": [np.float32(0.5)]}})
    assert provenance.read(out)["settings"] == {"path": str(tmp_path), "n": 3, "nested": {"x": [0.5]}}


def test_every_workflow_script_clears_its_sidecars_first_and_stamps_last():
    """The job lifecycle of tests/test_workflow.py's failed-job test, for every script: nothing
    escapes start_snakemake_job (a killed job leaves no stale sidecar) or stamp_snakemake_job."""
    from conftest import REPO

    scripts = sorted((REPO / "workflow" / "scripts").glob("*.py"))
    assert len(scripts) >= 10
    for script in scripts:
        lines = [ln for ln in script.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        assert lines[1] == "start_snakemake_job(snakemake)", script.name
        assert lines[-1] == "stamp_snakemake_job(snakemake)", script.name


def test_clear_sidecars_removes_only_sidecars(tmp_path):
    out = tmp_path / "w.pt"
    out.write_bytes(b"old weights")
    provenance.stamp([out], "train_s1", [], {})
    provenance.clear_sidecars([out, tmp_path / "never_made.png"])
    assert out.read_bytes() == b"old weights" and not provenance.sidecar_of(out).exists()
