"""Discover input videos: a directory, a glob, a single file, or a manifest.

Runs on the driver before any stage. Each input becomes a pending video
record with a deterministic ``video_id`` (URI + size + a hash of the file's
head and tail), so reruns recognise what a previous run finished. Only
regular files are hashed: reading a named pipe here would block the driver,
so such inputs keep an id from their URI and let the guarded probe fail them.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any, Iterator

import fsspec

from curate.records import PENDING, Record

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .vob .ts .mts .m2ts .wmv .flv .3gp .ogv .mxf .y4m .gif".split()
)
MANIFEST_EXTENSIONS = frozenset({".csv", ".jsonl", ".parquet"})
HASH_CHUNK = 1 << 20


class InputError(ValueError):
    """The --input cannot be used; the message says why."""


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return path if _is_local(fs) else fs.unstrip_protocol(path)


def video_identity(uri: str) -> tuple[str, int | None]:
    """``(video_id, size)`` from the URI, size and a hash of the first and last MiB."""
    fs, path = _fs(uri)
    h = hashlib.sha256(uri.encode())
    size: int | None = None
    if _is_local(fs):
        st = Path(path).stat()
        if not stat.S_ISREG(st.st_mode):
            h.update(b"|not-a-regular-file")
            return h.hexdigest()[:24], None
        size = st.st_size
    else:
        size = int(fs.size(path))
    h.update(f"|{size}|".encode())
    with fs.open(path, "rb") as f:
        h.update(f.read(HASH_CHUNK))
        if size > 2 * HASH_CHUNK:
            f.seek(size - HASH_CHUNK)
            h.update(f.read(HASH_CHUNK))
    return h.hexdigest()[:24], size


def _sidecar_caption(uri: str) -> str | None:
    fs, path = _fs(uri)
    txt = path.rsplit(".", 1)[0] + ".txt"
    try:
        if fs.isfile(txt):
            with fs.open(txt, "r") as f:
                return " ".join(f.read().split()) or None
    except OSError:
        return None
    return None


def _read_manifest(uri: str) -> list[dict[str, Any]]:
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    fs, path = _fs(uri)
    ext = Path(path).suffix.lower()
    with fs.open(path, "rb") as f:
        if ext == ".csv":
            table = pcsv.read_csv(f)
        elif ext == ".jsonl":
            table = pjson.read_json(f)
        else:
            table = pq.read_table(f)
    if "uri" not in table.column_names:
        raise InputError(f"manifest {uri} has no 'uri' column (columns: {table.column_names})")
    base = path.rsplit("/", 1)[0]
    rows = table.to_pylist()
    for r in rows:
        u = str(r["uri"])
        if "://" not in u and not u.startswith("/"):
            r["uri"] = _uri(fs, f"{base}/{u}")  # relative to the manifest
    return rows


def _list_uris(input_uri: str) -> list[str]:
    fs, path = _fs(input_uri)
    if any(ch in path for ch in "*?["):
        found = fs.glob(path)
    elif fs.isdir(path):
        found = [p for p in fs.find(path) if Path(p).suffix.lower() in VIDEO_EXTENSIONS]
    elif fs.exists(path) or _is_local(fs) and Path(path).is_fifo():
        found = [path]
    else:
        raise InputError(f"input not found: {input_uri}")
    return [_uri(fs, p) for p in sorted(found)]


def discover(inputs: list[str], limit: int | None = None) -> Iterator[Record]:
    """Yield one pending video record per input video, in a stable order."""
    seen: set[str] = set()
    count = 0
    for input_uri in inputs:
        suffix = Path(input_uri.split("?")[0]).suffix.lower()
        if suffix in MANIFEST_EXTENSIONS:
            entries = _read_manifest(input_uri)
        else:
            entries = [{"uri": u} for u in _list_uris(input_uri)]
        for entry in entries:
            uri = str(entry.pop("uri"))
            if uri in seen:
                continue
            seen.add(uri)
            if limit is not None and count >= limit:
                return
            count += 1
            yield _record(uri, entry)


def _record(uri: str, entry: dict[str, Any]) -> Record:
    caption = entry.pop("caption", None)
    source = "manifest" if caption else None
    video: Record = {"uri": uri, "status": PENDING, "reason": None, "timings": {}}
    try:
        video["video_id"], video["size_bytes"] = video_identity(uri)
    except (OSError, ValueError) as e:
        video["video_id"] = hashlib.sha256(uri.encode()).hexdigest()[:24]
        video["size_bytes"] = None
        video.update(status="failed", reason=f"discover: cannot read input: {e}")
    if not caption:
        caption = _sidecar_caption(uri)
        source = "sidecar" if caption else None
    video["caption"], video["caption_source"] = caption, source
    video["input_meta"] = json.dumps(entry, default=str, sort_keys=True) if entry else None
    return video
