"""Discover input videos: a directory, a glob, a single file, or a manifest.

Runs on the driver before any stage, as a stream: a directory or a glob is
listed one folder at a time and a manifest read in batches, so the driver's memory does
not grow with the number of inputs. Each input becomes a pending video
record with its URI and size; its ``video_id`` (URI + size + a hash of the
file's head and tail, :mod:`curate.media.identity`) is left ``None`` for the
workers to compute, so discovery reads no file's content. Only a stat is
made: a named pipe is never opened here (it would block the driver).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import posixpath
import stat
from pathlib import Path
from typing import Any, Iterator

import fsspec

from curate.input_glob import glob_fs, glob_local, has_glob
from curate.input_manifest import MANIFEST_EXTENSIONS, ROW_ERROR, ManifestError, iter_rows, json_safe
from curate.media.identity import uri_id
from curate.media.uri import is_remote, local_path, local_uri
from curate.records import FAILED, PENDING, Record

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .vob .ts .mts .m2ts .wmv .flv .3gp .ogv .mxf .y4m .gif".split()
)


class InputError(ValueError):
    """An --input (or --output) that cannot be used; the message says why."""


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def _size(uri: str) -> int | None:
    """The input's size in bytes (``None`` for what is not a regular file: it is never read here)."""
    if is_remote(uri):
        fs, path = _fs(uri)
        return int(fs.size(path))
    st = os.stat(local_path(uri))
    return st.st_size if stat.S_ISREG(st.st_mode) else None


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


def _is_video(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS


def _walk_local(path: str) -> Iterator[str]:
    """Video files under ``path`` in the order a sort of their full paths gives, one directory listed at a time.

    A directory sorts as ``name/`` among its siblings, which is where its
    files fall in a sort of full paths, so no listing of the whole tree is held.
    """
    with os.scandir(path) as it:
        entries = sorted(((e.name + "/" if e.is_dir(follow_symlinks=False) else e.name), e.path) for e in it)
    for key, full in entries:
        if key.endswith("/"):
            yield from _walk_local(full)
        elif _is_video(key):
            yield full


def _walk_remote(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[str]:
    """:func:`_walk_local` on an fsspec filesystem (one listing of a prefix at a time)."""
    entries = sorted(((posixpath.basename(e["name"].rstrip("/")) + ("/" if e["type"] == "directory" else ""), e["name"])
                      for e in fs.ls(path, detail=True)))
    for key, full in entries:
        if key.endswith("/"):
            yield from _walk_remote(fs, full)
        elif _is_video(key):
            yield full


def _list_uris(input_uri: str) -> Iterator[str]:
    """The videos an --input names, streamed. A path that exists is taken as it is, even with glob characters in it.

    Raises :class:`InputError` at once (before the first URI) when the input names nothing.
    A glob and a directory are walked lazily, one listing at a time, in sorted order (:mod:`curate.input_glob`).
    """
    if not is_remote(input_uri):
        path = local_path(input_uri)
        if os.path.isdir(path):
            return (local_uri(p) for p in _walk_local(path))
        if os.path.exists(path) or Path(path).is_fifo():
            return iter([local_uri(path)])
        if has_glob(path):
            return (local_uri(p) for p in glob_local(path))
        raise InputError(f"input not found: {input_uri}")
    fs, path = _fs(input_uri)
    if has_glob(path) and not fs.exists(path):
        found: Iterator[str] = glob_fs(fs, path)
    elif fs.isdir(path):
        found = _walk_remote(fs, path)
    elif fs.exists(path):
        found = iter([path])
    else:
        raise InputError(f"input not found: {input_uri}")
    return (fs.unstrip_protocol(p) for p in found)


def _manifest_entries(manifest: str) -> Iterator[dict[str, Any]]:
    """Rows of a manifest with ``uri`` resolved (relative paths are relative to the manifest) or a row error, streamed."""
    fs, path = _fs(manifest) if is_remote(manifest) else (fsspec.filesystem("file"), local_path(manifest))
    if not fs.exists(path):
        raise InputError(f"input not found: {manifest}")
    base = path.rsplit("/", 1)[0] if "/" in path else "."
    try:
        for i, row in enumerate(iter_rows(fs, path, manifest), 1):
            where = f"{manifest}#row={i}"
            u = row.get("uri")
            if ROW_ERROR in row:
                row["uri"] = where
            elif not isinstance(u, str) or not u.strip():
                what = "missing" if u is None else "empty" if isinstance(u, str) else f"a {type(u).__name__} ({u!r:.60}), not a string"
                row.update({"uri": where, ROW_ERROR: f"manifest row {i}: uri is {what}"})
            elif is_remote(u):
                pass
            elif is_remote(manifest):
                row["uri"] = fs.unstrip_protocol(u if u.startswith("/") else f"{base}/{u}")
            else:
                row["uri"] = local_uri(local_path(u) if u.startswith(("/", "file://")) else os.path.join(base, u))
            yield row
    except ManifestError as e:
        raise InputError(str(e)) from None


def _entries(input_uri: str) -> Iterator[dict[str, Any]]:
    """One input's entries (``{"uri": ...}`` plus manifest columns), streamed; the first is read at once.

    Reading the first entry up front surfaces a missing input or an unusable
    manifest before anything else happens (and before OUTPUT is touched).
    """
    suffix = Path(input_uri.split("?")[0]).suffix.lower()
    entries = _manifest_entries(input_uri) if suffix in MANIFEST_EXTENSIONS else ({"uri": u} for u in _list_uris(input_uri))
    first = next(entries, None)
    if first is None:
        log.warning("no videos found for --input %s", input_uri)
        return iter(())
    return itertools.chain([first], entries)


class _Seen:
    """URIs already yielded, as 8-byte digests: about 60 bytes an input instead of the URI string.

    Two distinct URIs sharing a digest (odds about n²/2⁶⁵, 3·10⁻⁸ for a million
    inputs) would drop the second one; that is the price of a bounded-size key.
    """

    def __init__(self) -> None:
        self._keys: set[int] = set()

    def add(self, uri: str) -> bool:
        """Record ``uri``; ``False`` when it was seen before."""
        key = int.from_bytes(hashlib.blake2b(uri.encode(), digest_size=8).digest(), "little")
        if key in self._keys:
            return False
        self._keys.add(key)
        return True


def discover(inputs: list[str], limit: int | None = None) -> Iterator[Record]:
    """Yield one pending video record per input video, in a stable order, streaming.

    The same file named twice (``./a``, ``a``, ``x/../a``) is one input.
    An --input that names nothing is an :class:`InputError`, raised for every
    input before the first record is yielded; one that matches no video (an
    empty folder, a glob matching nothing) is warned about. Memory holds one
    directory listing or manifest batch at a time, plus :class:`_Seen`.
    """
    streams = [_entries(u) for u in inputs]
    seen = _Seen()
    count = 0
    for entry in itertools.chain.from_iterable(streams):
        uri = entry.pop("uri")
        if not seen.add(uri):
            continue
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
    video: Record = {"uri": uri, "status": PENDING, "reason_key": None, "reason": None, "timings": {}, "video_id": None}
    if error:
        video.update(video_id=uri_id(uri), size_bytes=None, status=FAILED,
                     reason_key="discover: bad manifest row", reason=f"discover: {error}")
    else:
        try:
            video["size_bytes"] = _size(uri)
        except (OSError, ValueError) as e:
            video.update(video_id=uri_id(uri), size_bytes=None, status=FAILED,
                         reason_key="discover: cannot read input", reason=f"discover: cannot read input: {e}")
        if not caption:
            caption = _sidecar_caption(uri)
            source = "sidecar" if caption else None
    video["caption"], video["caption_source"] = caption, source
    video["input_meta"] = json.dumps(json_safe(entry), sort_keys=True, allow_nan=False) if entry else None
    return video
