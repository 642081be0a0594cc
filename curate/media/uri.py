"""How a source is named in records and shards, and how that name is opened again.

Records store one string per source (``uri``), and Parquet, JSON and the
ledger need it to be valid UTF-8. Local paths are stored absolute and
normalised (``./a``, ``x/../a`` and ``//a`` name one file once); a path whose
bytes are not UTF-8 (file systems allow any bytes) is stored as an RFC 8089
``file://`` URI with those bytes percent-encoded, and opened from it again
byte-exactly. Remote sources keep their fsspec URI.
"""

from __future__ import annotations

import os
from urllib.parse import quote_from_bytes, unquote_to_bytes

FILE_SCHEME = "file://"


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith(FILE_SCHEME)


def local_uri(path: str) -> str:
    """The stored name of local ``path`` (a str, possibly holding surrogate escapes)."""
    absolute = os.path.abspath(path)
    if absolute.startswith("//"):  # POSIX keeps a leading '//' in normpath; it names the root here
        absolute = "/" + absolute.lstrip("/")
    try:
        absolute.encode("utf-8")
        return absolute
    except UnicodeEncodeError:
        return FILE_SCHEME + quote_from_bytes(os.fsencode(absolute), safe="/")


def local_path(uri: str) -> str:
    """The path to open for a local ``uri`` (plain path or ``file://`` URI); non-UTF-8 bytes come back as surrogate escapes."""
    if uri.startswith(FILE_SCHEME):
        return os.fsdecode(unquote_to_bytes(uri[len(FILE_SCHEME):]))
    return uri
