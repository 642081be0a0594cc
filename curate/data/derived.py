"""Rows of a derived table (``latents``, ``text_embeddings``) indexed for the loader.

:func:`derived_index` finds every row (file, row group, position) of the table
through the OUTPUT's manifest, in the same shape :class:`curate.data.index.RowIndex`
has, so the loader's :class:`curate.data.rows.RowCache` fetches derived rows
exactly as it fetches clip rows: one read per row group, rows dropped after
their last use.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from .index import RowIndex, open_shard, resolve_shards


def section_of(source: Any, table: str) -> tuple[Any, str, dict[str, Any]]:
    """``(filesystem, root, manifest section of derived table)`` of an OUTPUT dir or its manifest.json."""
    import fsspec

    if not isinstance(source, (str,)) and not hasattr(source, "__fspath__"):
        raise ValueError(f"{table}= needs the OUTPUT directory (or its manifest.json) as source: it is found through the manifest")
    fs, path = fsspec.core.url_to_fs(str(source))
    manifest = path if path.endswith(".json") else f"{path.rstrip('/')}/manifest.json"
    if not fs.exists(manifest):
        raise ValueError(f"{source} has no manifest.json; {table}= needs an OUTPUT directory")
    root = manifest.rsplit("/", 1)[0] if "/" in manifest else ""
    return fs, root, json.loads(fs.cat_file(manifest)).get(table) or {}


def derived_index(source: Any, table: str, columns: list[str]) -> tuple[RowIndex, dict[str, Any], dict[str, list[Any]]]:
    """``(index of every row of derived table, its manifest section, the values of columns per row id)``."""
    _, root, section = section_of(source, table)
    paths = [f"{root}/{e['path']}" if root else e["path"] for e in section.get("shards") or []]
    fs, paths = resolve_shards(paths) if paths else (None, [])
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("shard", "row_group", "pos", "clip_id")}
    values: dict[str, list[Any]] = {c: [] for c in columns}
    n = 0
    for shard, path in enumerate(paths):
        with open_shard(fs, path) as pf:
            groups = [pf.read_row_group(rg, columns=["clip_id", *columns], use_threads=False) for rg in range(pf.num_row_groups)]
        for rg, t in enumerate(groups):
            ids = t.column("clip_id").to_numpy(zero_copy_only=False)
            for c in columns:
                values[c] += t.column(c).to_pylist()
            cols["shard"].append(np.full(len(ids), shard, np.int32))
            cols["row_group"].append(np.full(len(ids), rg, np.int32))
            cols["pos"].append(np.arange(len(ids), dtype=np.int32))
            cols["clip_id"].append(ids)
            n += len(ids)
    arrays = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    zeros = np.zeros(n)
    return RowIndex(fs, paths, None, **arrays, width=zeros, height=zeros, num_frames=zeros, fps=zeros), section, values
