"""Row metadata of the clip shards, read once without the ``video`` column.

The plan needs only a few small columns per row (id, size, length, fps) and
the row's address (shard, row group, position).  The filter is evaluated on
those columns and the ones it names, row group by row group; a row's
position is its row number in its row group, so a worker reads the row
group it needs and takes its rows by position, without evaluating the
filter again.  The ``video`` column is read only for rows that passed.

Every read goes through ``pyarrow.parquet.ParquetFile`` without pre-buffering
and decodes on the calling thread (:func:`open_shard`).  Shards on object
stores are read through Python (pyarrow's ``FSSpecHandler``), so the bytes
Arrow holds are Python objects; ``pyarrow.dataset`` reads asynchronously, and
its pool threads drop the last of those bytes just after a read has returned.
A thread that does so while Python finalises aborts the process ("terminate
called without an active exception", apache/arrow#34314): in a script that
read shards through an in-memory fsspec filesystem and exited, both core
dumps showed such a thread releasing a ``PyBuffer`` (a read future's result,
the row-group reader's read cache). The synchronous reader creates and drops
them all on the calling thread. Loader workers are processes already.
Row groups are not skipped by their statistics: the index reads only small
columns, and the filter's ones are needed to count what it keeps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .filters import ReadFilter, check_columns, filter_columns, report_yield

__all__ = ["ReadFilter", "RowIndex", "build_index", "open_shard", "resolve_shards"]
META_COLUMNS = ("clip_id", "width", "height", "num_frames", "fps")
CLIP_TABLES = ("clips", "clip")


def resolve_shards(source: str | Path | Sequence[str | Path]) -> tuple[Any, list[str]]:
    """Filesystem and shard paths of an OUTPUT dir, a manifest, a glob, or explicit paths.

    An OUTPUT dir is read through its ``manifest.json`` because object stores
    may hold uncommitted part files that only the manifest leaves out.
    """
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    sources = [source] if isinstance(source, (str, Path)) else list(source)
    if not sources:
        raise ValueError("no shard source given")
    fs, paths = None, []
    for src in map(str, sources):
        src_fs, path = fsspec.core.url_to_fs(src)
        if not isinstance(src_fs, LocalFileSystem):  # a cached listing would hide shards committed since
            src_fs, path = fsspec.core.url_to_fs(src, use_listings_cache=False)
        if fs is not None and src_fs.protocol != fs.protocol:
            raise ValueError(f"all sources must share one filesystem; {src} is on {src_fs.protocol}")
        fs = src_fs
        if path.endswith(".json") or src_fs.isdir(path):
            paths += _manifest_shards(src_fs, path)
        elif any(c in path for c in "*?["):
            paths += sorted(src_fs.glob(path))
        elif not src_fs.exists(path):
            raise ValueError(f"{src} does not exist")
        else:
            paths.append(path)
    if not paths:
        raise ValueError(f"no shards found in {sources}")
    import pyarrow.fs as pafs

    return (pafs.LocalFileSystem() if isinstance(fs, LocalFileSystem) else pafs.PyFileSystem(pafs.FSSpecHandler(fs))), paths


def _manifest_shards(fs: Any, path: str) -> list[str]:
    manifest = path if path.endswith(".json") else f"{path.rstrip('/')}/manifest.json"
    if not fs.exists(manifest):
        raise ValueError(f"{path} has no manifest.json; pass a glob such as '{path}/clips/*.parquet' to read files directly")
    root = manifest.rsplit("/", 1)[0] if "/" in manifest else ""
    shards = json.loads(fs.cat_file(manifest)).get("shards", [])
    if isinstance(shards, dict):  # {table: [entries]}, as curate/output/manifest.py writes it
        shards = [{**e, "table": t} for t, entries in shards.items() for e in entries]
    out = []
    for entry in shards:
        rel, table = entry["path"], entry.get("table")
        if table in CLIP_TABLES or (table is None and rel.startswith("clips/")):
            absolute = rel.startswith("/") or "://" in rel
            out.append(fs._strip_protocol(rel) if absolute else f"{root}/{rel}" if root else rel)
    return out


@dataclass
class RowIndex:
    """One entry per filter-passing row, in (shard, row group, position) order.

    ``pos`` is the row's number in its row group. Picklable (numpy arrays,
    paths, the filesystem and the filter), so DataLoader workers get it from
    the main process instead of re-reading metadata.
    """

    filesystem: Any
    paths: list[str]
    filter: pc.Expression | None
    shard: np.ndarray
    row_group: np.ndarray
    pos: np.ndarray
    clip_id: np.ndarray
    width: np.ndarray
    height: np.ndarray
    num_frames: np.ndarray
    fps: np.ndarray
    schemas: list[pa.Schema] = field(default_factory=list)
    _footers: dict[int, pq.FileMetaData] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.shard)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_footers": {}}

    @property
    def fingerprint(self) -> str:
        """Changes when the shards (by name), their passing rows or the filter change (guards resume)."""
        h = hashlib.sha256(json.dumps([[p.rsplit("/", 1)[-1] for p in self.paths], str(self.filter)]).encode())
        h.update(np.ascontiguousarray(self.shard).tobytes())
        h.update(np.ascontiguousarray(self.row_group).tobytes())
        return h.hexdigest()[:16]

    def read(self, shard: int, row_group: int, columns: Sequence[str]) -> pa.Table:
        """Every row of one row group; ``pos`` picks the filter-passing ones.

        Columns the shard lacks (a score added by a later run) are left out.
        """
        with open_shard(self.filesystem, self.paths[shard], self._footers.get(shard)) as pf:
            self._footers[shard] = pf.metadata  # a shard's footer is read once per process, its file not held open
            names = set(pf.schema_arrow.names)
            return pf.read_row_group(row_group, columns=[c for c in columns if c in names], use_threads=False)


@contextmanager
def open_shard(fs: Any, path: str, footer: pq.FileMetaData | None = None) -> Iterator[pq.ParquetFile]:
    """A shard whose reads run and release their bytes on the calling thread (module docstring), closed after."""
    with fs.open_input_file(path) as f:
        yield pq.ParquetFile(f, metadata=footer, pre_buffer=False)


def read_columns(fs: Any, path: str, columns: Sequence[str]) -> pa.Table:
    """``columns`` of every row of one shard, decoded on this thread (module docstring)."""
    with open_shard(fs, path) as pf:
        return pf.read(columns=list(columns), use_threads=False)


def _scan_shard(fs: Any, path: str, filter: ReadFilter | pc.Expression | None, expr: pc.Expression | None,
                needs: dict[pa.Schema, list[str]]) -> tuple[pa.Schema, int, list[tuple[int, pa.Table]]]:
    """``(schema, rows, [(row group, its metadata and filter columns)])`` of one shard.

    ``needs`` caches the columns to read per schema: shards of one output share one, so the filter is bound once.
    """
    with open_shard(fs, path) as pf:
        schema = pf.schema_arrow
        check_columns(filter, [(path, schema)])
        if schema not in needs:
            needs[schema] = list(dict.fromkeys([*META_COLUMNS, *filter_columns(expr, path, schema)]))
        groups = [(rg, pf.read_row_group(rg, columns=needs[schema], use_threads=False)) for rg in range(pf.num_row_groups)]
        return schema, pf.metadata.num_rows, groups


def build_index(source: str | Path | Sequence[str | Path], filter: ReadFilter | pc.Expression | None = None, threads: int = 8) -> RowIndex:
    """Read the metadata columns of every shard (in parallel) and keep the rows that pass the filter.

    Raises when a filter column is missing or the filter keeps nothing; warns
    when it keeps almost nothing (:mod:`curate.data.filters`).
    """
    fs, paths = resolve_shards(source)
    expr = filter.expression() if isinstance(filter, ReadFilter) else filter
    with ThreadPoolExecutor(max(1, min(threads, len(paths)))) as pool:
        needs: dict[pa.Schema, list[str]] = {}
        shards = list(pool.map(lambda p: _scan_shard(fs, p, filter, expr, needs), paths))
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("shard", "row_group", "pos", *META_COLUMNS)}
    for shard, (_, _, groups) in enumerate(shards):
        for rg, table in groups:
            # from a range, not numpy: filter runs on Arrow's pool threads, and a numpy-backed column dropped there
            # needs the GIL as the Python bytes do (module docstring; 3 aborts in 600 runs of tests/test_data_exit.py)
            table = table.append_column("pos", pa.array(range(table.num_rows), pa.int32()))
            if expr is not None:
                table = table.filter(expr)
            n = table.num_rows
            cols["shard"].append(np.full(n, shard, np.int32))
            cols["row_group"].append(np.full(n, rg, np.int32))
            for name in ("pos", *META_COLUMNS):
                cols[name].append(table.column(name).to_numpy(zero_copy_only=False))
    arrays = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    total = sum(rows for _, rows, _ in shards)
    report_yield(filter, len(arrays["shard"]), total, lambda e: sum(t.filter(e).num_rows for _, _, groups in shards for _, t in groups))
    return RowIndex(fs, paths, expr, **arrays, schemas=[schema for schema, _, _ in shards])
