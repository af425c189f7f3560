"""Provenance of every file the pipeline makes: a JSON sidecar ``<file>.prov.json``.

A sidecar says which rule made the file (and with which wildcards), the configuration values it
used, the SHA-256 of each input, the code version (package version and git commit) and the
environment (Python, PyTorch, NumPy, host, SLURM job). One format for every kind of output
(HDF5, PyTorch weights, PNG, CSV, Markdown) and written by one function, so a test can check
that nothing escapes it.

Each sidecar also records the file's own digest with its size and modification time; the jobs
downstream take an input's digest from there when both still match, so that a large file
(CAVE's patches) is hashed once, by the job that made it, not by every job that reads it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from hsrdiff.io import atomic_path

SUFFIX = ".prov.json"
FORMAT_VERSION = 1


def sidecar_of(path: str | Path) -> Path:
    return Path(str(path) + SUFFIX)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stat_key(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def describe(path: str | Path) -> dict:
    """Digest, size and mtime of a file, or of every file in a directory (by relative name).

    Reuses the digests recorded in the path's own sidecar when size and mtime still match.
    """
    path = Path(path)
    recorded = {}
    sidecar = sidecar_of(path)
    if sidecar.is_file():
        try:
            recorded = json.loads(sidecar.read_text()).get("self", {})
        except (OSError, ValueError):
            recorded = {}

    def one(file: Path, known: Mapping | None) -> dict:
        key = _stat_key(file)
        if known and all(known.get(k) == v for k, v in key.items()) and known.get("sha256"):
            return {**key, "sha256": known["sha256"]}
        return {**key, "sha256": sha256_file(file)}

    if path.is_dir():
        known = recorded.get("files", {})
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.endswith(SUFFIX))
        return {"files": {str(f.relative_to(path)): one(f, known.get(str(f.relative_to(path)))) for f in files}}
    return one(path, recorded)


def _digest_only(description: dict) -> str | dict:
    if "files" in description:
        return {name: d["sha256"] for name, d in description["files"].items()}
    return description["sha256"]


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version and, in a git checkout, the commit (marked ``-dirty`` when modified)."""
    import hsrdiff

    root = Path(__file__).resolve().parents[1]
    commit = ""
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                                    text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
    return f"hsrdiff {hsrdiff.__version__}" + (f" ({commit})" if commit else "")


def environment() -> dict:
    import numpy

    env = {"python": platform.python_version(), "numpy": numpy.__version__, "host": socket.gethostname()}
    torch = sys.modules.get("torch")  # only where the job used it: importing torch costs seconds
    if torch is not None:
        env["torch"] = torch.__version__
        env["cuda"] = torch.version.cuda or ""
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        if os.environ.get(var):
            env[var.lower()] = os.environ[var]
    return env


def _plain(value: Any) -> Any:
    """JSON-safe copy of a settings value (Snakemake's Namedlist, paths, numpy scalars)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def record(rule: str, inputs: Iterable[str | Path], settings: Mapping[str, Any] | None = None,
           wildcards: Mapping[str, str] | None = None) -> dict:
    """The provenance of one job's outputs (everything but the outputs' own digests)."""
    return {
        "format": FORMAT_VERSION,
        "rule": rule,
        "wildcards": dict(wildcards or {}),
        "settings": _plain(dict(settings or {})),
        "inputs": {str(p): _digest_only(describe(p)) for p in dict.fromkeys(map(str, inputs))},
        "code_version": code_version(),
        "environment": environment(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write(outputs: Iterable[str | Path], rec: Mapping[str, Any]) -> list[Path]:
    """Write ``<output>.prov.json`` for each output (atomically), with the output's own digest."""
    written = []
    for out in dict.fromkeys(map(str, outputs)):
        sidecar = sidecar_of(out)
        with atomic_path(sidecar) as tmp:
            tmp.write_text(json.dumps({**rec, "file": Path(out).name, "self": describe(out)}, indent=1, sort_keys=True) + "\n")
        written.append(sidecar)
    return written


def clear_sidecars(outputs: Iterable[str | Path]) -> None:
    """Remove the sidecars of the outputs a job is about to make.

    Snakemake deletes a failed or killed job's declared outputs, not their sidecars (which no rule
    declares): without this, a job killed mid-run would leave the previous run's provenance beside
    a missing output, describing a file that no longer exists.
    """
    for out in dict.fromkeys(map(str, outputs)):
        sidecar_of(out).unlink(missing_ok=True)


def start_snakemake_job(smk: Any) -> None:
    """The first call of every workflow script: log to the rule's log, and clear the sidecars of
    the job's outputs (:func:`clear_sidecars`); :func:`stamp_snakemake_job` writes them anew."""
    from hsrdiff.log import setup_logging

    setup_logging(smk.log[0])
    clear_sidecars(smk.output)


def stamp(outputs: Iterable[str | Path], rule: str, inputs: Iterable[str | Path], settings: Mapping[str, Any] | None = None,
          wildcards: Mapping[str, str] | None = None) -> list[Path]:
    return write(outputs, record(rule, inputs, settings, wildcards))


def read(path: str | Path) -> dict:
    """The provenance recorded for ``path`` (from its sidecar)."""
    sidecar = sidecar_of(path)
    if not sidecar.is_file():
        from hsrdiff.errors import DataError

        raise DataError(f"{path}: no provenance sidecar {sidecar.name} beside it")
    return json.loads(sidecar.read_text())


def stamp_snakemake_job(smk: Any) -> list[Path]:
    """Stamp a workflow job's outputs from its ``snakemake`` object.

    The settings are the rule's params (in this workflow, the configuration values the rule
    uses) and, for rules with a ``dataset`` wildcard, that dataset's registry entry.
    """
    wildcards = dict(smk.wildcards.items())
    settings: dict[str, Any] = {"params": dict(smk.params.items())}
    if "dataset" in wildcards and wildcards["dataset"] in smk.config.get("datasets", {}):
        settings["dataset"] = smk.config["datasets"][wildcards["dataset"]]
    return stamp(list(smk.output), smk.rule, list(smk.input), settings, wildcards)
