"""Row metadata of the clip shards, read once without the ``video`` column.

The plan needs only a few small columns per row (id, size, length, fps) and
the row's address (shard, row group, position).  Filters are pushed down
through ``pyarrow.dataset``: row groups whose statistics exclude every row
are never read, and rows that fail are never fetched or decoded.  A row's
position counts *passing* rows of its row group, so a worker re-reading the
row group with the same filter finds the same rows at the same positions.

Every read decodes on the calling thread (``use_threads=False``): shards on
object stores are read through Python (pyarrow's ``FSSpecHandler``), and an
Arrow worker thread still releasing those bytes while Python finalises
aborts the process (see :mod:`curate.output.shards`): a script that read
the demo's shards through an in-memory fsspec filesystem and exited aborted
in 145 of 150 runs, and in none of 150 with reads on one thread. Loader
workers are processes already.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .filters import ReadFilter, check_columns, explain_arrow_error, report_yield

__all__ = ["ReadFilter", "RowIndex", "build_index", "resolve_shards"]
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

    Picklable (numpy arrays, paths, the filesystem and the filter), so DataLoader
    workers get it from the main process instead of re-reading metadata.
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
    _fragments: dict[int, ds.ParquetFileFragment] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.shard)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fragments": {}}

    @property
    def fingerprint(self) -> str:
        """Changes when the shards (by name), their passing rows or the filter change (guards resume)."""
        h = hashlib.sha256(json.dumps([[p.rsplit("/", 1)[-1] for p in self.paths], str(self.filter)]).encode())
        h.update(np.ascontiguousarray(self.shard).tobytes())
        h.update(np.ascontiguousarray(self.row_group).tobytes())
        return h.hexdigest()[:16]

    def read(self, shard: int, row_group: int, columns: Sequence[str]) -> pa.Table:
        """Filter-passing rows of one row group, in index position order.

        Columns the shard lacks (a score added by a later run) are left out.
        """
        frag = self._fragments.get(shard)
        if frag is None:
            frag = self._fragments[shard] = _fragment(self.filesystem, self.paths[shard])
        names = set(frag.physical_schema.names)
        return frag.subset(row_group_ids=[row_group]).to_table(columns=[c for c in columns if c in names], filter=self.filter,
                                                                use_threads=False)


def read_columns(fs: Any, path: str, columns: Sequence[str]) -> pa.Table:
    """``columns`` of every row of one shard, decoded on this thread (module docstring)."""
    return _fragment(fs, path).to_table(columns=list(columns), use_threads=False)


def _fragment(fs: Any, path: str) -> ds.ParquetFileFragment:
    frag = ds.ParquetFileFormat().make_fragment(path, filesystem=fs)
    frag.ensure_complete_metadata()
    return frag


def _scan_shard(frag: ds.ParquetFileFragment, path: str, expr: pc.Expression | None) -> list[tuple[int, pa.Table]]:
    try:
        return [(rg.row_groups[0].id, rg.to_table(columns=list(META_COLUMNS), filter=expr, use_threads=False)) for rg in frag.split_by_row_group(filter=expr)]
    except pa.ArrowInvalid as e:
        raise explain_arrow_error(e, path, frag.physical_schema) from e


def build_index(source: str | Path | Sequence[str | Path], filter: ReadFilter | pc.Expression | None = None, threads: int = 8) -> RowIndex:
    """Read the metadata columns of every shard (in parallel) with the filter pushed down.

    Raises when a filter column is missing or the filter keeps nothing; warns
    when it keeps almost nothing (:mod:`curate.data.filters`).
    """
    fs, paths = resolve_shards(source)
    expr = filter.expression() if isinstance(filter, ReadFilter) else filter
    with ThreadPoolExecutor(max(1, min(threads, len(paths)))) as pool:
        frags = list(pool.map(lambda p: _fragment(fs, p), paths))
        check_columns(filter, [(p, f.physical_schema) for p, f in zip(paths, frags)])
        scans = list(pool.map(lambda pf: _scan_shard(pf[1], pf[0], expr), zip(paths, frags)))
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("shard", "row_group", "pos", *META_COLUMNS)}
    for shard, groups in enumerate(scans):
        for rg, table in groups:
            n = table.num_rows
            cols["shard"].append(np.full(n, shard, np.int32))
            cols["row_group"].append(np.full(n, rg, np.int32))
            cols["pos"].append(np.arange(n, dtype=np.int32))
            for name in META_COLUMNS:
                cols[name].append(table.column(name).to_numpy(zero_copy_only=False))
    arrays = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    total = sum(f.metadata.num_rows for f in frags)
    report_yield(filter, len(arrays["shard"]), total, lambda e: sum(f.count_rows(filter=e) for f in frags))
    return RowIndex(fs, paths, expr, **arrays, schemas=[f.physical_schema for f in frags])
