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

Clip pieces (a long video's clips sent ahead of its record,
``curate.records.PIECE``) are written at once as staged files of their own
and reported as a :class:`StagedPiece`; the video's record, when it comes,
says what it sent ahead, and a done record with analysis pieces has its own
rows staged as one more piece. :class:`~curate.output.pieces.Pieces`
(wherever the commit happens) holds a commit back until all its videos'
pieces have arrived, then commits them with it, or drops them when the video
failed; uncommitted pieces are staged files, which a dead run's recovery
deletes like any other. With in-run latents a piece's latent rows are one
more staged file of the piece (``latents/``), and the latent sets they add
travel with it into the sets of the commit it joins (the commit's sidecar
and the manifest's ``latents.sets``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from curate.output.funnel import reason_counts
from curate.output.pieces import Staged, StagedFile, StagedPiece, own_piece, staged_piece
from curate.output.rows import Outcome, RowBuffer, RowMaker, finished, outcome
from curate.output.shards import Location, write_staged
from curate.records import FAILED, is_piece

STAGED_PREFIX = ".w-"


def stage_table(loc: Location, table: str, rel: str, rows: pa.Table, row_group_rows: int) -> StagedFile:
    """Write ``rows`` to the staged name ``rel``; its manifest entry has rows, bytes and reason counts."""
    entry: dict[str, Any] = {"rows": rows.num_rows, "bytes": write_staged(loc, rel, rows, row_group_rows)}
    if "reject_reasons" in rows.column_names:
        entry["reasons"] = reason_counts(rows)
    return StagedFile(table, rel, entry)


def stage_piece(loc: Location, rows: RowMaker, piece: dict[str, Any], name: str, row_group_rows: int) -> StagedPiece:
    """Write a clip piece's rows now, one staged file per table named ``{table}/{name}.parquet.tmp`` (``latents/`` for its latents).

    A piece a stage failed on has no rows: it only fails its video (:class:`~curate.output.pieces.Pieces`).
    """
    tables, sets = ({}, {}) if piece.get("status") == FAILED else rows.piece_tables(piece)
    return staged_piece(piece["video_id"], piece, [stage_table(loc, t, f"{t}/{name}.parquet.tmp", r, row_group_rows) for t, r in tables.items()],
                        sets)


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

    def add(self, records: list[dict[str, Any]]) -> tuple[list[Outcome], list[Staged], list[StagedPiece]]:
        """Buffer finished records, write clip pieces at once; returns outcomes, what a full buffer wrote, and the pieces."""
        outcomes, pieces = [], []
        for record in records:
            own, video = own_piece(finished(record)) if not is_piece(record) else (record, None)
            if own is not None:
                self._seq += 1
                name = f"{STAGED_PREFIX}{self._spec.tag}-{self._id}-p{self._seq:06d}"
                pieces.append(stage_piece(self._loc, self._spec.rows, own, name, self._spec.row_group_rows))
            if video is not None:
                self._buf.add(self._spec.rows.rows(video))
                outcomes.append(outcome(video))
        staged = self.flush() if self._buf.videos and self._buf.full(self._spec.target_bytes) else None
        return outcomes, [staged] if staged else [], pieces

    def flush(self) -> Staged | None:
        """Write everything buffered; ``None`` when nothing is."""
        buf, self._buf = self._buf, RowBuffer()
        if not buf.videos:
            return None
        self._seq += 1
        files = [stage_table(self._loc, table, f"{table}/{STAGED_PREFIX}{self._spec.tag}-{self._id}-{self._seq:06d}-{k:03d}.parquet.tmp",
                             rows, self._spec.row_group_rows)
                 for table, k, rows in buf.files(self._spec.target_bytes)]
        return Staged(files, list(buf.videos), dict(buf.pieces), buf.sets)
