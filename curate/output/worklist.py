"""The run's work list, spilled to ``OUTPUT/_work/`` in chunks as discovery streams.

The driver writes pending records there a chunk at a time and keeps none of
them; runners read them back a chunk at a time (Ray: the workers do, which is
why it lives in OUTPUT, the one place every node reaches). It is scratch: the
run removes it at the end, and opening an OUTPUT removes what a dead run left
(:func:`curate.output.shards.recover`).
"""

from __future__ import annotations

import pickle
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from curate.output.shards import WORK_DIR, Location
from curate.records import Record

CHUNK_ROWS = 1024  # records per chunk file: the driver's buffer while spilling


class WorkList:
    """Appends records to chunk files; :attr:`chunks` lists them (relpaths) once :meth:`close` d."""

    def __init__(self, loc: Location, tag: str, chunk_rows: int = CHUNK_ROWS) -> None:
        self._loc, self._tag, self._chunk_rows = loc, tag, chunk_rows
        self._buf: list[Record] = []
        self.chunks: list[str] = []
        self.count = 0

    def add(self, record: Record) -> None:
        self._buf.append(record)
        self.count += 1
        if len(self._buf) >= self._chunk_rows:
            self._spill()

    def close(self) -> None:
        if self._buf:
            self._spill()

    def _spill(self) -> None:
        rel = f"{WORK_DIR}/{self._tag}-{len(self.chunks):06d}.parquet"
        self._loc.fs.makedirs(self._loc.path(WORK_DIR), exist_ok=True)
        table = pa.table({"uri": [r["uri"] for r in self._buf],
                          "payload": pa.array([pickle.dumps(r, protocol=5) for r in self._buf], pa.binary())})
        with self._loc.fs.open(self._loc.path(rel), "wb") as f:
            pq.write_table(table, f)
        self.chunks.append(rel)
        self._buf = []

    def records(self) -> Iterator[Record]:
        """Every record, in the order added, one chunk in memory at a time."""
        for rel in self.chunks:
            yield from (pickle.loads(b) for b in read_chunk(self._loc.url, rel)["payload"])

    def remove(self) -> None:
        """Delete ``_work/`` (one run writes an OUTPUT at a time: all of it is this run's)."""
        path = self._loc.path(WORK_DIR)
        if self._loc.fs.exists(path):
            self._loc.fs.rm(path, recursive=True)


def read_chunk(root: str, rel: str) -> dict[str, Any]:
    """One chunk as columns ``uri`` and ``payload`` (pickled records), for a runner's batch."""
    loc = Location.of(root)
    with loc.fs.open(loc.path(rel), "rb") as f:
        table = pq.ParquetFile(f).read(use_threads=False)  # synchronous: see curate.data.index
    return {"uri": table["uri"].to_pylist(), "payload": table["payload"].to_pylist()}
