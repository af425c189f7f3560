"""Shared fixtures: real data location, a real HTTP server on 127.0.0.1, config helpers."""

from __future__ import annotations

import copy
import http.server
import threading
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    """The Slurm cluster tests run last. They install Slurm's client tools, and once their cluster
    is stopped every later Snakemake start waits 9 s: the Slurm executor plugin asks `scontrol
    show config` for MinJobAge as it loads, and scontrol retries the stopped controller before it
    gives up (3.5 s for a dry run of the demo without scontrol, 12.4 s with it)."""
    items.sort(key=lambda item: item.path.name == "test_slurm.py")  # stable: the rest keep their order


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "real").is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA / 'real'} is absent (only in the project's CI and dev machines)")
    return SHARED_DATA


@pytest.fixture
def default_config() -> dict:
    with open(REPO / "config" / "config.yaml") as fh:
        return yaml.safe_load(fh)


def make_config(datasets: dict, **top) -> dict:
    """A minimal valid configuration holding ``datasets`` (validated with defaults filled)."""
    from hsrdiff.config import validate_config

    raw = {"active_datasets": list(datasets), "datasets": copy.deepcopy(datasets), **top}
    return validate_config(raw)


def simulate_demo(root: Path, settings: dict) -> dict[str, Path]:
    """A generated demo (``source.generate`` settings) run through the data stages in ``root``:
    each scene's degraded file (``<scene>.h5``, with its PSF and SRF), by scene name."""
    from hsrdiff.data.demo import generate_demo
    from hsrdiff.data.prepare import prepare_scene
    from hsrdiff.data.registry import DatasetSpec
    from hsrdiff.data.simulate import degrade_scene

    generate_demo(settings, root / "scenes.h5")
    scenes = {"train": [f"train_{i:02d}" for i in range(settings["n_train"])],
              "test": [f"test_{i:02d}" for i in range(settings["n_test"])]}
    entry = {"source": {"path": str(root / "scenes.h5")}, "reader": "hdf5", "variable": "scenes/{scene}",
             "axis_order": "bhw", "wavelengths": {"variable": "wavelengths"}, "scale": 1.0, "ratio": 4,
             "srf": "nikon_d700", "scenes": scenes}
    spec = DatasetSpec.from_config(make_config({"demo": entry}), "demo")
    for scene in spec.train_scenes + spec.test_scenes:
        prepare_scene(spec.name, spec.scene(scene), spec.reader_settings(), spec.raw_location(), root / f"{scene}_prep.h5")
        degrade_scene(spec.name, spec.scene(scene), spec.degradation_settings(), root / f"{scene}_prep.h5", root / f"{scene}.h5")
    return {scene: root / f"{scene}.h5" for scene in spec.train_scenes + spec.test_scenes}


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (name -> bytes) with HTTP Range support.

    ``server.cut_after[name] = n`` makes the next full (non-Range) response for ``name`` stop after
    ``n`` bytes and drop the connection, as a flaky network does.
    """

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        self.server.requests.append((name, self.headers.get("Range")))
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404, "no such file")
            return
        rng = self.headers.get("Range")
        if rng and self.server.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.server.cut_after.pop(name, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.cut_after, server.requests, server.honour_range = {}, {}, [], True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()
