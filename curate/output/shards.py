"""Parquet shards on any fsspec filesystem: layout, naming, the commit write, recovery.

A commit is a set of files that share one *part id* ``part-{seq:06d}-{tag}``:
data files ``{table}/{part}-{k:03d}.parquet`` and the ledger part
``_ledger/{part}.parquet``, which is the commit point (see
:mod:`curate.output.store`). On a local filesystem files are first written
under hidden temp names (``.{name}.tmp``, which no ``*.parquet`` glob and no
pyarrow dataset discovery matches), fsynced, then renamed, the ledger last.
Object stores have no atomic rename; there final names are written directly,
the ledger part last, and orphans are removed on the next open.

A *rewrite* commit (dedup, refilter) also replaces committed data files: its
sidecar ``_ledger/{part}.json`` names the files it supersedes, and is written
before its ledger part, so the ledger rename commits the replacement as a
whole. Superseded files are deleted after the commit, or by recovery.

Every read of a file opened through fsspec passes ``use_threads=False``: the
bytes Arrow reads from a Python file are Python objects, and an Arrow worker
thread that drops the last of them after the read has returned needs the GIL.
When Python is finalising by then, that thread is cancelled inside a C++
destructor and the process aborts ("terminate called without an active
exception", exit 134, apache/arrow#34314) after its work is done: 5 of 347
``curate validate`` runs here before, none of 550 after. Decoding on the
calling thread was no slower on a 200 MB clip shard. The reads are also
synchronous (``ParquetFile.read`` and ``read_row_group``, not ``iter_batches``
or ``pyarrow.dataset``), whose pool threads hold those bytes too
(:mod:`curate.data.index`).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

# Output table directory -> schema name. ``review`` holds flagged clips (with their bytes).
TABLES: dict[str, str] = {"clips": "clip", "review": "clip", "rejected": "rejected"}
# Tables derived from committed clips (not clip rows: no funnel, no rewrite moves them), directory -> schema.
DERIVED: dict[str, str] = {"latents": "latents", "text_embeddings": "text_embeddings"}
LEDGER_DIR = "_ledger"
WORK_DIR = "_work"  # a run's spilled work list (curate.output.worklist); scratch, never committed data
_PART = re.compile(r"^(part-(\d{6,})-[0-9a-f]{8})(?:-\d{3,})?\.parquet$")


@dataclass(frozen=True)
class Location:
    """Where an output lives: its filesystem, root path, and whether renames are atomic."""

    fs: fsspec.AbstractFileSystem
    root: str
    local: bool

    @classmethod
    def of(cls, output: str) -> "Location":
        fs, root = fsspec.core.url_to_fs(output)
        if not isinstance(fs, LocalFileSystem):
            # Other processes (a resumed run, refilter, dedup) add and delete files here: a listing
            # cached by this process would hide them (opening a new shard raised FileNotFoundError).
            fs, root = fsspec.core.url_to_fs(output, use_listings_cache=False)
        return cls(fs, root.rstrip("/") or "/", isinstance(fs, LocalFileSystem))

    @property
    def url(self) -> str:
        """The root as another process opens it (:meth:`of` gives this location back)."""
        return self.root if self.local else self.fs.unstrip_protocol(self.root)

    def path(self, *rel: str) -> str:
        return posixpath.join(self.root, *rel)

    def names(self, rel: str) -> dict[str, int]:
        """File names directly under ``rel`` -> size in bytes (empty when it does not exist)."""
        self.fs.invalidate_cache(self.path(rel))  # object-store clients cache listings
        try:
            entries = self.fs.ls(self.path(rel), detail=True)
        except FileNotFoundError:
            return {}
        return {posixpath.basename(e["name"].rstrip("/")): int(e.get("size") or 0) for e in entries if e["type"] == "file"}


def part_name(seq: int, tag: str) -> str:
    return f"part-{seq:06d}-{tag}"


def parse_part(name: str) -> tuple[str, int] | None:
    """``(part id, seq)`` of a committed-looking file name, or ``None`` for anything else."""
    m = _PART.match(name)
    return (m.group(1), int(m.group(2))) if m else None


def temp_name(name: str) -> str:
    return f".{name}.tmp"


def _temp_path(loc: Location, rel: str) -> str:
    return loc.path(posixpath.dirname(rel), temp_name(posixpath.basename(rel)))


def chunks(sizes: list[int], target: int) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` runs of rows splitting ``sum(sizes)`` into files of about ``target`` bytes.

    A commit happens when its buffer reaches the target, so this usually
    gives one file; a video much larger than the target spreads over several.
    """
    total = sum(sizes)
    n = max(1, round(total / target))
    start, acc, cut = 0, 0, 1
    for i, size in enumerate(sizes):
        acc += size
        if cut < n and acc >= cut * total / n:
            yield start, i + 1 - start
            start, cut = i + 1, cut + 1
    if start < len(sizes):
        yield start, len(sizes) - start


def _write(loc: Location, path: str, table: pa.Table, row_group_rows: int) -> None:
    # Dictionary-encoding video bytes and thumbnails only wastes time: they never repeat.
    dict_cols = [f.name for f in table.schema if not pa.types.is_binary(f.type)]
    kw = dict(row_group_size=row_group_rows, compression="zstd", use_dictionary=dict_cols)
    if loc.local:
        with open(path, "wb") as f:
            pq.write_table(table, f, **kw)
            f.flush()
            os.fsync(f.fileno())
    else:
        with loc.fs.open(path, "wb") as f:
            pq.write_table(table, f, **kw)


def _rename(src: str, dst: str) -> None:
    os.replace(src, dst)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stage_file(loc: Location, rel: str, table: pa.Table, row_group_rows: int) -> int:
    """Write one file of a commit that :func:`publish` will commit; returns its size in bytes.

    Locally it goes under its temp name (invisible to readers until published);
    on object stores under its final name (an orphan until the ledger part exists).
    """
    path = _temp_path(loc, rel) if loc.local else loc.path(rel)
    _write(loc, path, table, row_group_rows)
    return int(loc.fs.size(path))


def unstage(loc: Location, rel: str) -> None:
    """Remove a staged, uncommitted file (a commit given up before :func:`publish`)."""
    path = _temp_path(loc, rel) if loc.local else loc.path(rel)
    if loc.fs.exists(path):
        loc.fs.rm_file(path)


def publish(loc: Location, data: list[str], ledger: tuple[str, pa.Table], row_group_rows: int,
            sidecar: tuple[str, bytes] | None = None, moves: Sequence[tuple[str, str]] = ()) -> int:
    """Commit staged ``data`` files and ``moves``: put them in place, write the ``sidecar``, then the ledger part LAST.

    ``data`` were staged by :func:`stage_file` under names derived from their
    final ones; ``moves`` are ``(staged, final)`` relpaths of files a worker
    wrote under names of its own (:mod:`curate.output.writer`). Data files are
    in place (renamed and their directories fsynced; on object stores copied
    server-side) before the ledger part, so a committed ledger part never points
    at data that could be lost. Returns the ledger part's size.
    """
    if not loc.local:  # final names: data copied in, the sidecar, then the ledger part, which commits
        for src, dst in moves:
            loc.fs.copy(loc.path(src), loc.path(dst))
        if sidecar is not None:
            write_bytes(loc, *sidecar)
        size = stage_file(loc, ledger[0], ledger[1], row_group_rows)
        for src, _ in moves:  # after the commit; recovery deletes them if this is cut short
            loc.fs.rm_file(loc.path(src))
        return size
    size = stage_file(loc, ledger[0], ledger[1], row_group_rows)
    renames = [(_temp_path(loc, rel), loc.path(rel)) for rel in data] + [(loc.path(s), loc.path(d)) for s, d in moves]
    for src, dst in renames:
        _rename(src, dst)
    for d in sorted({posixpath.dirname(dst) for _, dst in renames}):
        _fsync_dir(d)
    if sidecar is not None:
        write_bytes(loc, *sidecar)
    _rename(_temp_path(loc, ledger[0]), loc.path(ledger[0]))
    _fsync_dir(loc.path(posixpath.dirname(ledger[0])))
    return size


def commit_files(loc: Location, data: list[tuple[str, pa.Table]], ledger: tuple[str, pa.Table], row_group_rows: int,
                 sidecar: tuple[str, bytes] | None = None, moves: Sequence[tuple[str, str]] = ()) -> dict[str, int]:
    """Write one commit: ``data`` files, ``moves`` (staged, final) in place and the ``sidecar``, then the ``ledger`` file last.

    Returns relpath -> bytes (of the files written here; moved ones keep the size their stager recorded).
    """
    sizes = {rel: stage_file(loc, rel, table, row_group_rows) for rel, table in data}
    sizes[ledger[0]] = publish(loc, list(sizes), ledger, row_group_rows, sidecar, moves=moves)
    return sizes


def write_staged(loc: Location, rel: str, table: pa.Table, row_group_rows: int) -> int:
    """Write ``table`` to ``rel`` as it is (a worker's staged file, already under a temp name); returns its size."""
    _write(loc, loc.path(rel), table, row_group_rows)
    return int(loc.fs.size(loc.path(rel)))


def remove_staged(loc: Location, prefix: str) -> list[str]:
    """Delete the data-table files whose names start with ``prefix`` (staged, never committed). Returns their relpaths."""
    removed = []
    for d in TABLES:
        for name in loc.names(d):
            if name.startswith(prefix):
                loc.fs.rm_file(loc.path(d, name))
                removed.append(f"{d}/{name}")
    return removed


def write_bytes(loc: Location, rel: str, data: bytes) -> None:
    """Replace file ``rel`` atomically where the filesystem allows it (temp + rename)."""
    if not loc.local:
        loc.fs.pipe_file(loc.path(rel), data)
        return
    tmp = _temp_path(loc, rel)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    _rename(tmp, loc.path(rel))


def write_tables(loc: Location, rel: str, schema: pa.Schema, tables: Iterator[pa.Table]) -> None:
    """Write ``tables`` as one zstd Parquet file ``rel``, one at a time, replacing it atomically where renames are."""
    path = _temp_path(loc, rel) if loc.local else loc.path(rel)
    with loc.fs.open(path, "wb") as f:
        with pq.ParquetWriter(f, schema, compression="zstd") as writer:
            for table in tables:
                writer.write_table(table)
        if loc.local:
            f.flush()
            os.fsync(f.fileno())
    if loc.local:
        _rename(path, loc.path(rel))


def read_table(loc: Location, rel: str, columns: list[str] | None = None) -> pa.Table:
    """``columns`` (``None``: all) of the file ``rel``, in the current schema's shape.

    Files of an older schema version are upgraded as they are read
    (:func:`curate.output.legacy.upgrade`), so every reader sees one shape.
    """
    from curate.output import legacy

    with loc.fs.open(loc.path(rel), "rb") as f:
        pf = pq.ParquetFile(f)
        names = pf.schema_arrow.names
        want = None if columns is None else [c for c in columns if c in names]
        if want is not None:
            want += legacy.extra_columns(columns, names)
        table = pf.read(columns=want, use_threads=False)  # see the module docstring
        name = (pf.schema_arrow.metadata or {}).get(b"curate.schema", b"").decode()
    return legacy.upgrade(table, columns, name)


def metadata(loc: Location, rel: str) -> pq.FileMetaData:
    """A shard's footer: row count, row groups, column statistics and schema, without its data."""
    with loc.fs.open(loc.path(rel), "rb") as f:
        return pq.read_metadata(f)


def sidecar_name(part: str) -> str:
    """``_ledger/{part}.json``: what a rewrite commit replaced (see the module docstring)."""
    return f"{LEDGER_DIR}/{part}.json"


def recover(loc: Location, committed_parts: set[str], superseded: set[str] = frozenset()) -> list[str]:
    """Delete temp files, files of interrupted commits, ``superseded`` data files and dead runs' work lists.

    Returns the deleted relpaths (``_work/`` for the work lists).

    Must run under the output lock, after reading which ledger parts exist.
    """
    removed = []
    if loc.fs.exists(loc.path(WORK_DIR)):  # work lists of runs that died; this one's is written after
        loc.fs.rm(loc.path(WORK_DIR), recursive=True)
        removed.append(f"{WORK_DIR}/")
    for d in ["", LEDGER_DIR, *TABLES, *DERIVED]:
        for name in loc.names(d):
            parsed = parse_part(name)
            orphan = (d in TABLES or d in DERIVED) and parsed is not None and parsed[0] not in committed_parts
            stray_sidecar = d == LEDGER_DIR and name.endswith(".json") and name[:-5] not in committed_parts
            if name.endswith(".tmp") or orphan or stray_sidecar or f"{d}/{name}" in superseded:
                rel = posixpath.join(d, name) if d else name
                loc.fs.rm_file(loc.path(rel))
                removed.append(rel)
    return removed
