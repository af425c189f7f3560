"""The package's layout rules (docs/package.md): who may import whom, and one home per file format."""

import json
import re
import subprocess
import sys

from conftest import REPO

INFERENCE = ("hsrdiff.sampling", "hsrdiff.realpair", "hsrdiff.files", "hsrdiff.evaluation", "hsrdiff.baselines",
             "hsrdiff.figures", "hsrdiff.models")


def _imported_by(module: str, prefix: str = "hsrdiff") -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(m for m in sys.modules if m.startswith({prefix!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    return set(out.split())


def test_inference_imports_no_training_code():
    # One interpreter for all (torch's import is most of each one's 3-4 s): torch first, then each
    # module with every hsrdiff module forgotten before it, as a fresh interpreter would import it.
    code = ("import importlib, json, sys, torch\n"
            "found = {}\n"
            f"for module in {list(INFERENCE)!r}:\n"
            "    for name in [m for m in sys.modules if m == 'hsrdiff' or m.startswith('hsrdiff.')]:\n"
            "        del sys.modules[name]\n"
            "    importlib.import_module(module)\n"
            "    found[module] = sorted(m for m in sys.modules if m.startswith('hsrdiff'))\n"
            "print(json.dumps(found))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    found = json.loads(out)
    assert set(found) == set(INFERENCE)
    for module, loaded in found.items():
        assert module in loaded, (module, loaded)
        assert not {m for m in loaded if m.startswith("hsrdiff.training")}, (module, loaded)


def test_the_workflow_imports_neither_the_cli_nor_torch_code_to_build_its_dag():
    for path in [REPO / "workflow" / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]:
        text = path.read_text()
        assert not re.search(r"^\s*(from|import) hsrdiff\.cli", text, re.M), path
    # What the rule files import stays light: no network, trainer or sampler modules, and not
    # torch, which Snakemake would import again at every start and in every cluster job (3-4 s).
    imported = sorted({m for path in (REPO / "workflow" / "rules").glob("*.smk")
                       for m in re.findall(r"^from (hsrdiff[\w.]*) import", path.read_text(), re.M)})
    assert "hsrdiff.bases" in imported and "hsrdiff.methods" in imported, imported
    modules = ", ".join(imported)
    loaded = _imported_by(modules)
    assert not {m for m in loaded if m.split(".")[1:2] in (["training"], ["models"], ["sampling"], ["diffusion"], ["cli"])}, loaded
    assert not _imported_by(modules, prefix="torch"), "the workflow's DAG building imports torch"


def test_file_layout_names_are_spelled_in_one_module():
    """The attribute names of observation files appear in hsrdiff/files.py and nowhere else in the
    package or the workflow scripts (tests may read them to check what was written)."""
    names = ("psf_mode", "psf_offset", "srf_bands", "srf_fitted")
    found = {}
    for path in [*(REPO / "hsrdiff").rglob("*.py"), *(REPO / "workflow" / "scripts").glob("*.py")]:
        if path.name == "files.py" and path.parent.name == "hsrdiff":
            continue
        text = path.read_text()
        hits = [n for n in names if f'"{n}"' in text]
        if hits:
            found[str(path.relative_to(REPO))] = hits
    assert not found, found
