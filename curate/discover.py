"""Discover input videos: a directory, a glob, a single file, or a manifest.

Runs on the driver before any stage. Each input becomes a pending video
record with a deterministic ``video_id`` (URI + size + a hash of the file's
head and tail), so reruns recognise what a previous run finished. Only
regular files are hashed: reading a named pipe here would block the driver,
so such inputs keep an id from their URI and let the guarded probe fail them.
"""

from __future__ import annotations

import glob as globmod
import hashlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, Iterator

import fsspec

from curate.input_manifest import MANIFEST_EXTENSIONS, ROW_ERROR, ManifestError, json_safe, read_rows
from curate.media.uri import is_remote, local_path, local_uri
from curate.records import FAILED, PENDING, Record

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .vob .ts .mts .m2ts .wmv .flv .3gp .ogv .mxf .y4m .gif".split()
)
HASH_CHUNK = 1 << 20


class InputError(ValueError):
    """An --input (or --output) that cannot be used; the message says why."""


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def video_identity(uri: str) -> tuple[str, int | None]:
    """``(video_id, size)`` from the URI, size and a hash of the first and last MiB.

    A file replaced under the same name gets a new id, so it is processed as
    a new input; the rows of the old file stay (``curate validate`` lists them).
    """
    h = hashlib.sha256(uri.encode())
    size: int | None = None
    if is_remote(uri):
        fs, path = _fs(uri)
        size = int(fs.size(path))
        opener = lambda: fs.open(path, "rb")  # noqa: E731
    else:
        path = local_path(uri)
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            h.update(b"|not-a-regular-file")
            return h.hexdigest()[:24], None
        size = st.st_size
        opener = lambda: open(path, "rb")  # noqa: E731
    h.update(f"|{size}|".encode())
    with opener() as f:
        h.update(f.read(HASH_CHUNK))
        if size > 2 * HASH_CHUNK:
            f.seek(size - HASH_CHUNK)
            h.update(f.read(HASH_CHUNK))
    return h.hexdigest()[:24], size


def _read_text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.warning("%s is not UTF-8; read as Windows-1252/Latin-1", name)
        return data.decode("cp1252", errors="replace")


def _sidecar_caption(uri: str) -> str | None:
    """The caption in ``VIDEO.txt`` beside the video, if there is one."""
    try:
        if is_remote(uri):
            fs, path = _fs(uri)
            txt = path.rsplit(".", 1)[0] + ".txt"
            if not fs.isfile(txt):
                return None
            with fs.open(txt, "rb") as f:
                data = f.read()
        else:
            txt = local_path(uri).rsplit(".", 1)[0] + ".txt"
            if not os.path.isfile(txt):
                return None
            with open(txt, "rb") as f:
                data = f.read()
    except OSError:
        return None
    return " ".join(_read_text(data, f"caption file {txt!r}").split()) or None


def _has_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def _list_uris(input_uri: str) -> list[str]:
    """The videos an --input names. A path that exists is taken as it is, even with glob characters in it."""
    if not is_remote(input_uri):
        path = local_path(input_uri)
        if os.path.isdir(path):
            found = [os.path.join(d, f) for d, _, files in os.walk(path) for f in files if Path(f).suffix.lower() in VIDEO_EXTENSIONS]
        elif os.path.exists(path) or Path(path).is_fifo():
            found = [path]
        elif _has_glob(path):
            found = [p for p in globmod.glob(path, recursive=True) if not os.path.isdir(p)]
        else:
            raise InputError(f"input not found: {input_uri}")
        return sorted(local_uri(p) for p in found)
    fs, path = _fs(input_uri)
    if _has_glob(path) and not fs.exists(path):
        found = fs.glob(path)
    elif fs.isdir(path):
        found = [p for p in fs.find(path) if Path(p).suffix.lower() in VIDEO_EXTENSIONS]
    elif fs.exists(path):
        found = [path]
    else:
        raise InputError(f"input not found: {input_uri}")
    return [fs.unstrip_protocol(p) for p in sorted(found)]


def _manifest_entries(manifest: str) -> list[dict[str, Any]]:
    """Rows of a manifest with ``uri`` resolved (relative paths are relative to the manifest) or a row error."""
    fs, path = _fs(manifest) if is_remote(manifest) else (fsspec.filesystem("file"), local_path(manifest))
    if not fs.exists(path):
        raise InputError(f"input not found: {manifest}")
    try:
        rows = read_rows(fs, path, manifest)
    except ManifestError as e:
        raise InputError(str(e)) from None
    base = path.rsplit("/", 1)[0] if "/" in path else "."
    for i, row in enumerate(rows, 1):
        where = f"{manifest}#row={i}"
        u = row.get("uri")
        if ROW_ERROR in row:
            row["uri"] = where
            continue
        if not isinstance(u, str) or not u.strip():
            what = "missing" if u is None else "empty" if isinstance(u, str) else f"a {type(u).__name__} ({u!r:.60}), not a string"
            row.update({"uri": where, ROW_ERROR: f"manifest row {i}: uri is {what}"})
        elif is_remote(u):
            continue
        elif is_remote(manifest):
            row["uri"] = fs.unstrip_protocol(u if u.startswith("/") else f"{base}/{u}")
        else:
            row["uri"] = local_uri(local_path(u) if u.startswith(("/", "file://")) else os.path.join(base, u))
    return rows


def discover(inputs: list[str], limit: int | None = None) -> Iterator[Record]:
    """Yield one pending video record per input video, in a stable order.

    The same file named twice (``./a``, ``a``, ``x/../a``) is one input.
    An --input that names nothing is an :class:`InputError`; one that
    matches no video (an empty folder, a glob matching nothing) is warned about.
    """
    seen: set[str] = set()
    count = 0
    for input_uri in inputs:
        suffix = Path(input_uri.split("?")[0]).suffix.lower()
        if suffix in MANIFEST_EXTENSIONS:
            entries = _manifest_entries(input_uri)
        else:
            entries = [{"uri": u} for u in _list_uris(input_uri)]
        if not entries:
            log.warning("no videos found for --input %s", input_uri)
        for entry in entries:
            uri = entry.pop("uri")
            if uri in seen:
                continue
            seen.add(uri)
            if limit is not None and count >= limit:
                return
            count += 1
            yield _record(uri, entry)


def _record(uri: str, entry: dict[str, Any]) -> Record:
    error = entry.pop(ROW_ERROR, None)
    caption = entry.pop("caption", None)
    if caption is not None and not isinstance(caption, str):
        log.warning("%s: caption %r is a %s; stored as text", uri, caption, type(caption).__name__)
        caption = None if isinstance(caption, float) and caption != caption else str(caption)
    source = "manifest" if caption else None
    video: Record = {"uri": uri, "status": PENDING, "reason_key": None, "reason": None, "timings": {}}
    if error:
        video.update(video_id=hashlib.sha256(uri.encode()).hexdigest()[:24], size_bytes=None, status=FAILED,
                     reason_key="discover: bad manifest row", reason=f"discover: {error}")
    else:
        try:
            video["video_id"], video["size_bytes"] = video_identity(uri)
        except (OSError, ValueError) as e:
            video["video_id"] = hashlib.sha256(uri.encode()).hexdigest()[:24]
            video["size_bytes"] = None
            video.update(status=FAILED, reason_key="discover: cannot read input", reason=f"discover: cannot read input: {e}")
        if not caption:
            caption = _sidecar_caption(uri)
            source = "sidecar" if caption else None
    video["caption"], video["caption_source"] = caption, source
    video["input_meta"] = json.dumps(json_safe(entry), sort_keys=True, allow_nan=False) if entry else None
    return video
