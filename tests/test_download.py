"""Download against a real HTTP server on 127.0.0.1: success, resume, checksum, failures."""

import hashlib
import io
import socket
import zipfile

import pytest

from hsrdiff.data.download import download, fetch_dataset
from hsrdiff.errors import DownloadError

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB, not a multiple of the read chunk
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_verifies_and_renames_atomically(http_server, tmp_path):
    http_server.files["data.bin"] = PAYLOAD
    dest = download(f"{http_server.url}/data.bin", tmp_path / "data.bin", sha256=SHA, size=len(PAYLOAD), backoff=0)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    # present and verified: no second request
    n = len(http_server.requests)
    download(f"{http_server.url}/data.bin", dest, sha256=SHA)
    assert len(http_server.requests) == n


def test_resume_after_a_cut_asks_only_for_the_rest(http_server, tmp_path):
    http_server.files["data.bin"] = PAYLOAD
    http_server.cut_after["data.bin"] = 300_000
    dest = download(f"{http_server.url}/data.bin", tmp_path / "data.bin", sha256=SHA, retries=3, backoff=0)
    assert dest.read_bytes() == PAYLOAD
    assert http_server.requests == [("data.bin", None), ("data.bin", "bytes=300000-")]


def test_partial_file_from_a_killed_job_is_resumed(http_server, tmp_path):
    http_server.files["data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:123_456])
    download(f"{http_server.url}/data.bin", tmp_path / "data.bin", sha256=SHA, backoff=0)
    assert http_server.requests == [("data.bin", "bytes=123456-")]
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_server_without_range_support_restarts_from_zero(http_server, tmp_path):
    http_server.files["data.bin"] = PAYLOAD
    http_server.honour_range = False
    (tmp_path / "data.bin.part").write_bytes(b"garbage" * 10)
    download(f"{http_server.url}/data.bin", tmp_path / "data.bin", sha256=SHA, backoff=0)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_is_an_error_and_leaves_no_file(http_server, tmp_path):
    http_server.files["data.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match=f"sha256 {SHA} does not match the expected {'0' * 64}"):
        download(f"{http_server.url}/data.bin", tmp_path / "data.bin", sha256="0" * 64, backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_not_found_is_not_retried_and_says_where_to_put_the_file(http_server, tmp_path):
    with pytest.raises(DownloadError) as err:
        download(f"{http_server.url}/missing.zip", tmp_path / "missing.zip", retries=4, backoff=0)
    message = str(err.value)
    assert "HTTP 404" in message and f"{http_server.url}/missing.zip" in message
    assert f"place it at {tmp_path / 'missing.zip'}" in message
    assert len(http_server.requests) == 1


def test_unreachable_host_is_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/PaviaU.mat"
    with pytest.raises(DownloadError, match=rf"could not download {url}: .*refused.*place it at"):
        download(url, tmp_path / "PaviaU.mat", retries=2, backoff=0, timeout=2)
    assert not (tmp_path / "PaviaU.mat").exists()


def test_fetch_dataset_extracts_zip_archives_and_links_plain_files(http_server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("scene_ms/scene_ms_01.png", b"x")
    http_server.files["set.zip"] = buf.getvalue()
    http_server.files["cube.mat"] = PAYLOAD
    out = fetch_dataset(f"{http_server.url}/set.zip", tmp_path / "raw_zip", tmp_path / "cache", backoff=0)
    assert (out / "scene_ms" / "scene_ms_01.png").read_bytes() == b"x"
    assert (tmp_path / "cache" / "set.zip").exists()  # kept: a rerun does not download again
    out = fetch_dataset(f"{http_server.url}/cube.mat", tmp_path / "raw_mat", tmp_path / "cache", backoff=0)
    assert (out / "cube.mat").read_bytes() == PAYLOAD


def test_zip_members_cannot_escape_the_output_folder(http_server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.txt", b"x")
    http_server.files["evil.zip"] = buf.getvalue()
    with pytest.raises(DownloadError, match="would be written outside"):
        fetch_dataset(f"{http_server.url}/evil.zip", tmp_path / "raw", tmp_path / "cache", backoff=0)
    assert not (tmp_path / "evil.txt").exists()
