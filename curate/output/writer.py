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
says how many pieces it had. :class:`Pieces` (wherever the commit happens)
holds a commit back until all its videos' pieces have arrived, then commits
them with it, or drops them when the video failed; uncommitted pieces are
staged files, which a dead run's recovery deletes like any other. With
in-run latents a piece's latent rows are one more staged file of the piece
(``latents/``), and the latent sets they add travel with it into the sets of
the commit it joins (the commit's sidecar and the manifest's ``latents.sets``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from curate.output.funnel import reason_counts
import pyarrow as pa

from curate.output.rows import Outcome, RowBuffer, RowMaker, add_sets, finished, outcome
from curate.output.shards import Location, write_staged
from curate.records import DONE, is_piece

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
    pieces: dict[str, int] = field(default_factory=dict)  # video_id -> pieces whose files join this commit
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # latent sets its latents rows add (``VAE/bucket``, with rows)


@dataclass(frozen=True)
class StagedPiece:
    """The staged files of one clip piece of ``video_id`` (its latent rows too), and the latent sets they add."""

    video_id: str
    files: list[StagedFile]
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)


def stage_table(loc: Location, table: str, rel: str, rows: pa.Table, row_group_rows: int) -> StagedFile:
    """Write ``rows`` to the staged name ``rel``; its manifest entry has rows, bytes and reason counts."""
    entry: dict[str, Any] = {"rows": rows.num_rows, "bytes": write_staged(loc, rel, rows, row_group_rows)}
    if "reject_reasons" in rows.column_names:
        entry["reasons"] = reason_counts(rows)
    return StagedFile(table, rel, entry)


def stage_piece(loc: Location, rows: RowMaker, piece: dict[str, Any], name: str, row_group_rows: int) -> StagedPiece:
    """Write a clip piece's rows now, one staged file per table named ``{table}/{name}.parquet.tmp`` (``latents/`` for its latents)."""
    tables, sets = rows.piece_tables(piece)
    return StagedPiece(piece["video_id"], [stage_table(loc, t, f"{t}/{name}.parquet.tmp", r, row_group_rows) for t, r in tables.items()],
                       sets)


class Pieces:
    """The committing side's hold on clip pieces: a commit waits until its videos' pieces are all in.

    Holds metadata only (staged paths and counts). A video that failed after
    sending pieces has its pieces dropped, not committed (their files are
    removed with the run's other uncommitted staged files).
    """

    def __init__(self) -> None:
        self._got: dict[str, list[StagedPiece]] = {}
        self._waiting: list[Staged] = []

    def add(self, piece: StagedPiece) -> None:
        self._got.setdefault(piece.video_id, []).append(piece)

    def hold(self, staged: Staged) -> None:
        self._waiting.append(staged)

    def take(self, ledger_rows: list[dict[str, Any]], expected: dict[str, int]) -> list[StagedPiece] | None:
        """The pieces that join a commit of ``ledger_rows`` (those of done videos); ``None`` while some are missing."""
        if any(len(self._got.get(v, ())) < n for v, n in expected.items()):
            return None
        joined = []
        for row in ledger_rows:  # a video that failed mid-stream may have sent pieces it does not count: drop them too
            for p in self._got.pop(row["video_id"], []):
                if row["status"] == DONE and row["video_id"] in expected:
                    joined.append(p)
        return joined

    def ready(self) -> list[Staged]:
        """The held commits whose pieces have all arrived, in the order held, with the pieces of done videos joined."""
        out, still = [], []
        for staged in self._waiting:
            joined = self.take(staged.ledger_rows, staged.pieces)
            if joined is None:
                still.append(staged)
            else:
                out.append(replace(staged, files=[*staged.files, *(f for p in joined for f in p.files)], pieces={},
                                   sets=joined_sets(staged.sets, joined)))
        self._waiting = still
        return out

    @property
    def waiting(self) -> int:
        """Commits still held for pieces (none once a run's writers are done, unless pieces were lost)."""
        return len(self._waiting)


def joined_sets(sets: dict[str, dict[str, Any]], pieces: list[StagedPiece]) -> dict[str, dict[str, Any]]:
    """A commit's latent ``sets`` with those of the ``pieces`` that join it (a new dict)."""
    out = add_sets({}, sets)
    for p in pieces:
        add_sets(out, p.sets)
    return out


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
            if is_piece(record):
                self._seq += 1
                name = f"{STAGED_PREFIX}{self._spec.tag}-{self._id}-p{self._seq:06d}"
                pieces.append(stage_piece(self._loc, self._spec.rows, record, name, self._spec.row_group_rows))
                continue
            video = finished(record)
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
