"""A source's identity: ``video_id`` from its URI, size and a hash of its first and last MiB.

Reruns recognise what an earlier run finished by this id, and a file
replaced under the same name gets a new one. Hashing reads up to 2 MiB per
input, so it runs where the work runs (the probe stage, on a Ray worker),
not on the driver: the driver's skip check first asks
the ledger whether the input's URI and size belong to a finished video
(:func:`source_key`) and hashes only those inputs, to confirm.
"""

from __future__ import annotations

import hashlib
import os
import stat

import fsspec

from curate.media.uri import is_remote, local_path

HASH_CHUNK = 1 << 20


def video_identity(uri: str) -> tuple[str, int | None]:
    """``(video_id, size)`` from the URI, size and a hash of the first and last MiB.

    Only regular files are read: reading a named pipe would block, so such an
    input keeps an id from its URI and the guarded probe fails it.
    """
    h = hashlib.sha256(uri.encode())
    size: int | None = None
    if is_remote(uri):
        fs, path = fsspec.core.url_to_fs(uri)
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


def uri_id(uri: str) -> str:
    """The id of an input that cannot be read (its row says why it failed)."""
    return hashlib.sha256(uri.encode()).hexdigest()[:24]


def source_key(uri: str, size: int | None) -> int:
    """An 8-byte digest of ``(uri, size)``: what the ledger indexes finished videos by, and discovery knows unhashed."""
    return int.from_bytes(hashlib.blake2b(f"{uri}|{size}".encode(), digest_size=8).digest(), "little")
