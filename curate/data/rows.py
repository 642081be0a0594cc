"""The rows a worker will need this epoch, read one row group at a time.

A worker knows its whole share of the plan up front, so the first time it
needs any row of a row group it reads all the rows it will want from that
group in one go, and forgets each row after its last use: every row group
is read at most once per worker per epoch, and memory holds only rows read
but not yet batched (bounded by the plan's block shuffle).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from .index import RowIndex


class RowCache:
    """Rows by row id, fetched per row group on first use and evicted after the last."""

    def __init__(self, index: RowIndex, columns: Sequence[str], needed: list[int]) -> None:
        self.index, self.uses = index, Counter(needed)
        self.by_group: dict[tuple[int, int], list[int]] = defaultdict(list)
        for r in sorted(self.uses):
            self.by_group[(int(index.shard[r]), int(index.row_group[r]))].append(r)
        self.columns = list(dict.fromkeys(columns))
        self.rows: dict[int, dict[str, Any]] = {}
        self.types: dict[str, pa.DataType] = {}  # Arrow type of each column read, for tensor conversion

    def take(self, r: int) -> dict[str, Any]:
        if r not in self.rows:
            shard, rg = int(self.index.shard[r]), int(self.index.row_group[r])
            table = self.index.read(shard, rg, self.columns)
            self.types.update(zip(table.schema.names, table.schema.types))
            wanted = self.by_group.pop((shard, rg))
            for rid, row in zip(wanted, table.take(self.index.pos[wanted]).to_pylist()):
                if row["clip_id"] != self.index.clip_id[rid]:
                    raise RuntimeError(f"shard {self.index.paths[shard]} changed since it was indexed")
                self.rows[rid] = row
        self.uses[r] -= 1
        return self.rows[r] if self.uses[r] else self.rows.pop(r)
