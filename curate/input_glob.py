"""Expand a glob (``dir/**/*.mp4``, ``s3://bucket/prefix/**/*.mp4``) as a stream, one directory listing at a time.

``glob.glob`` and fsspec's ``glob`` build the whole match list before the
first path comes back, which on a bucket of millions of objects holds them
all in the driver. Here the pattern's literal head is the starting
directory and the rest is matched component by component while walking: a
directory is listed only when some pattern state can still match below it,
and entries are visited in the order a sort of full paths gives (a
directory sorts as ``name/``), so the output is the sorted match list that
``sorted(glob(...))`` gave, without holding it.

Semantics follow :mod:`glob` with ``recursive=True``: ``*``, ``?`` and
``[...]`` match within one component, a ``**`` component matches zero or
more components; on local disks names starting with ``.`` match only a
component that starts with ``.`` (fsspec's glob has no such rule, nor has
the remote walk). Only files are yielded.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from typing import Callable, Iterator

# (sort key, full path, is a directory) of each entry of one directory
Listing = Callable[[str], list[tuple[str, str, bool]]]

GLOB_CHARS = "*?["


def has_glob(part: str) -> bool:
    return any(ch in part for ch in GLOB_CHARS)


def split_pattern(pattern: str, sep: str = "/") -> tuple[str, list[str]]:
    """``(literal head directory, pattern components after it)``; the head may be ``""`` (relative) or ``"/"``."""
    parts = pattern.split(sep)
    k = next(i for i, p in enumerate(parts) if has_glob(p))
    head = sep.join(parts[:k]) or (sep if pattern.startswith(sep) else "")
    return head, [p for p in parts[k:] if p]


def _closure(states: set[int], parts: list[str]) -> set[int]:
    """``states`` plus the states a ``**`` that matches nothing moves on to."""
    out, todo = set(states), list(states)
    while todo:
        i = todo.pop()
        if i < len(parts) and parts[i] == "**" and i + 1 not in out:
            out.add(i + 1)
            todo.append(i + 1)
    return out


def _step(states: set[int], parts: list[str], name: str, hidden_rule: bool) -> set[int]:
    """The pattern states after matching one more path component ``name``."""
    nxt = set()
    for i in _closure(states, parts):
        if i >= len(parts):
            continue
        hidden = hidden_rule and name.startswith(".") and not parts[i].startswith(".")
        if parts[i] == "**":
            if not hidden:
                nxt.add(i)
        elif not hidden and fnmatch.fnmatchcase(name, parts[i]):
            nxt.add(i + 1)
    return nxt


def walk_glob(listing: Listing, head: str, parts: list[str], hidden_rule: bool) -> Iterator[str]:
    """Files under ``head`` whose path below it matches ``parts``, in sorted full-path order."""

    def walk(directory: str, states: set[int]) -> Iterator[str]:
        for key, full, is_dir in listing(directory):
            name = key.rstrip("/")
            nxt = _step(states, parts, name, hidden_rule)
            if not nxt:
                continue
            if is_dir:
                yield from walk(full, nxt)
            elif len(parts) in _closure(nxt, parts):
                yield full

    yield from walk(head, {0})


def local_listing(directory: str) -> list[tuple[str, str, bool]]:
    """One local directory's entries (none when it cannot be listed, as :mod:`glob` treats it)."""
    try:
        with os.scandir(directory or ".") as it:
            entries = [(e.name + ("/" if e.is_dir() else ""), os.path.join(directory, e.name), e.is_dir()) for e in it]
    except OSError:
        return []
    return sorted(entries)


def glob_local(pattern: str) -> Iterator[str]:
    """Files matching local ``pattern``, streamed in sorted order."""
    head, parts = split_pattern(pattern, os.sep)
    return walk_glob(local_listing, head, parts, hidden_rule=True)


def glob_fs(fs: object, pattern: str) -> Iterator[str]:
    """Files matching ``pattern`` on fsspec filesystem ``fs`` (protocol stripped), streamed in sorted order."""

    def listing(directory: str) -> list[tuple[str, str, bool]]:
        try:
            found = fs.ls(directory, detail=True)  # type: ignore[attr-defined]
        except FileNotFoundError:
            return []
        entries = []
        for e in found:
            full = e["name"].rstrip("/")
            is_dir = e["type"] == "directory"
            entries.append((posixpath.basename(full) + ("/" if is_dir else ""), full, is_dir))
        return sorted(entries)

    head, parts = split_pattern(pattern)
    return walk_glob(listing, head, parts, hidden_rule=False)
