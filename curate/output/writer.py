"""The worker's half of a commit: write shards where the clips are, hand the driver only paths and ledger rows.

A :class:`ShardWriter` runs beside the stages (a Ray actor on each node). It
buffers finished videos' rows like the store does and, at the shard target,
writes the data files straight to OUTPUT under staged names
(``clips/.w-{tag}-{writer}-{n}-{k}.parquet.tmp``: hidden from readers' globs,
deleted by recovery as temp files). What it returns is a :class:`Staged`: those
paths with row counts, bytes and reason counts, and the videos' ledger rows.
The driver commits it (:meth:`curate.output.store.OutputStore.commit_staged`):
it moves the files to part names and writes the ledger part last, so the
commit point, the order of commits and exactly-once stay with the one
process that holds the lock. A writer that dies loses only its buffer,
which the runner sends again to its restarted actor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from curate.output.funnel import reason_counts
from curate.output.rows import Outcome, RowBuffer, RowMaker, finished, outcome
from curate.output.shards import Location, write_staged

STAGED_PREFIX = ".w-"


@dataclass(frozen=True)
class StagedFile:
    """A data file written under a staged name; ``entry`` is its manifest entry less ``path`` and ``part``."""

    table: str
    temp: str
    entry: dict[str, Any]


@dataclass(frozen=True)
class Staged:
    """One commit's worth of files and the ledger rows of every video whose rows they hold (``sets``: latent sets added)."""

    files: list[StagedFile]
    ledger_rows: list[dict[str, Any]]
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class WriterSpec:
    """What a worker needs to write this run's shards (small, pickled to each writer)."""

    root: str
    tag: str
    rows: RowMaker
    target_bytes: int
    row_group_rows: int


class ShardWriter:
    """Buffers whole videos' rows and writes them to OUTPUT under staged names at the shard target."""

    def __init__(self, spec: WriterSpec) -> None:
        self._spec = spec
        self._loc = Location.of(spec.root)
        self._id = uuid.uuid4().hex[:8]
        self._seq = 0
        self._buf = RowBuffer()

    def add(self, videos: list[dict[str, Any]]) -> tuple[list[Outcome], list[Staged]]:
        """Buffer finished records; returns their outcomes and what was written if the buffer filled."""
        outcomes = []
        for video in map(finished, videos):
            self._buf.add(self._spec.rows.rows(video))
            outcomes.append(outcome(video))
        staged = self.flush() if self._buf.full(self._spec.target_bytes) else None
        return outcomes, [staged] if staged else []

    def flush(self) -> Staged | None:
        """Write everything buffered; ``None`` when nothing is."""
        buf, self._buf = self._buf, RowBuffer()
        if not buf.videos:
            return None
        self._seq += 1
        files = []
        for table, k, rows in buf.files(self._spec.target_bytes):
            rel = f"{table}/{STAGED_PREFIX}{self._spec.tag}-{self._id}-{self._seq:06d}-{k:03d}.parquet.tmp"
            entry: dict[str, Any] = {"rows": rows.num_rows, "bytes": write_staged(self._loc, rel, rows, self._spec.row_group_rows)}
            if "reject_reasons" in rows.column_names:
                entry["reasons"] = reason_counts(rows)
            files.append(StagedFile(table, rel, entry))
        return Staged(files, list(buf.videos), buf.sets)
