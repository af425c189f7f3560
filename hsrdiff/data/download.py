"""Download: streaming HTTP(S) with resume, retries, size and SHA-256 checks, atomic rename.

The partial file ``<dest>.part`` survives a failed or killed attempt and the next attempt asks
the server for the remaining bytes (HTTP Range); a server that ignores Range makes us start over.
Only a complete, verified file is renamed to ``dest``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from http.client import HTTPException
from pathlib import Path

from tqdm import tqdm

from hsrdiff.errors import DownloadError
from hsrdiff.io import atomic_path
from hsrdiff.provenance import sha256_file

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "hsrdiff-downloader/1.0"


def _manual_hint(url: str, dest: Path, sha256: str | None) -> str:
    check = f" (sha256 {sha256})" if sha256 else ""
    return f"Download {url} by other means and place it at {dest}{check}, then rerun."


def _total_from_content_range(value: str | None) -> int | None:
    # "bytes 100-999/1000" -> 1000
    if value and "/" in value:
        tail = value.rsplit("/", 1)[1].strip()
        return int(tail) if tail.isdigit() else None
    return None


def _attempt(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One request, appending to ``part`` from its current size; raises if the body is cut short."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the partial file is complete
            return
        raise
    with response:
        if have and response.status == 206:
            mode = "ab"
            total = _total_from_content_range(response.headers.get("Content-Range"))
        else:
            if have:
                log.info("server ignored the Range request; downloading %s from the start", url)
            mode, have = "wb", 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"),
                   disable=not progress, mininterval=2.0)
        with open(part, mode) as out, bar:
            while block := response.read(CHUNK):
                out.write(block)
                bar.update(len(block))
    got = part.stat().st_size
    if total is not None and got < total:
        raise DownloadError(f"connection closed after {got} of {total} bytes")


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 2.0,
    progress: bool | None = None,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there; returns ``dest``.

    Raises :class:`DownloadError` naming the URL and saying where to place the file by hand.
    """
    dest = Path(dest)
    if dest.exists():
        if sha256 and sha256_file(dest) != sha256.lower():
            raise DownloadError(f"{dest} exists but its sha256 differs from the expected {sha256}; delete it to download again")
        log.info("%s already present", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    progress = os.isatty(2) if progress is None else progress
    wait, last_error = backoff, None
    for attempt in range(1, retries + 1):
        try:
            _attempt(url, part, timeout, progress)
            last_error = None
            break
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code} {exc.reason}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                break  # the resource is wrong, not the network: retrying will not help
        except (urllib.error.URLError, OSError, HTTPException, DownloadError) as exc:
            last_error = str(getattr(exc, "reason", exc))
        log.warning("attempt %d/%d for %s failed: %s", attempt, retries, url, last_error)
        if attempt < retries:
            time.sleep(wait)
            wait *= 2
    if last_error is not None:
        raise DownloadError(f"could not download {url}: {last_error}. {_manual_hint(url, dest, sha256)}")

    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: got {got} bytes, expected {size}; the partial file was removed. {_manual_hint(url, dest, sha256)}"
        )
    if sha256:
        actual = sha256_file(part)
        if actual != sha256.lower():
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{url}: sha256 {actual} does not match the expected {sha256}; the file was removed. "
                + _manual_hint(url, dest, sha256)
            )
    os.replace(part, dest)
    log.info("downloaded %s -> %s (%d bytes)", url, dest, got)
    return dest


def extract_zip(archive: str | Path, out_dir: str | Path) -> Path:
    """Extract ``archive`` into ``out_dir`` atomically (all members or nothing)."""
    archive, out_dir = Path(archive), Path(out_dir)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{archive}: not a valid zip archive ({exc}); delete it to download again") from exc
    tmp = out_dir.with_name(out_dir.name + ".extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    with zf:
        root = tmp.resolve()
        for member in zf.namelist():
            if not (root / member).resolve().is_relative_to(root):
                raise DownloadError(f"{archive}: member '{member}' would be written outside {out_dir}")
        zf.extractall(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def fetch_dataset(url: str, out_dir: str | Path, cache_dir: str | Path, **kwargs) -> Path:
    """Download ``url`` into ``cache_dir`` and make its content appear in ``out_dir``.

    Zip archives are extracted into ``out_dir``; other files are hard-linked (copied across file
    systems). The cache keeps the partial or complete download across failed jobs.
    """
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    archive = download(url, cache_dir / name, **kwargs)
    if zipfile.is_zipfile(archive):
        return extract_zip(archive, out_dir)
    with atomic_path(out_dir / name) as tmp:
        tmp.unlink()
        try:
            os.link(archive, tmp)
        except OSError:
            shutil.copy2(archive, tmp)
    return out_dir
