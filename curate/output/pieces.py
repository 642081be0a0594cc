"""The committing side's hold on clip pieces: a video's ledger row commits with all its pieces, or with none.

A long video sends clips ahead of its record (``curate.records.PIECE``):
analysis pieces, and byte pieces the encode stage splits off them or off the
record. Writers stage each piece's rows at once (:class:`StagedPiece`:
paths and counts only). The record says what to wait for
(``records.STREAMED``: ``analysed`` pieces, and ``pieces``, byte pieces of
its own clips); each analysis piece, closed by the encode stage, says how
many byte pieces were split off it (``records.PARTS``). With Ray these may
come from any node's writer in any order, so :class:`Pieces` holds a commit
(and the video's :class:`~curate.output.rows.Outcome`) until they are all
in. The commit then moves their files in and its ledger row counts their
clips and adds their timings. A video that failed, or one of whose pieces a
stage failed on, commits as ``failed`` with none of them: that is why the
rows of a record with analysis pieces are staged as one more piece
(:func:`own_piece`) rather than buffered with other videos' rows.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from curate.output import funnel as fn
from curate.output.rows import Outcome, add_sets
from curate.records import DONE, FAILED, PARTS, STREAMED, piece

Expect = dict[str, int]  # ``records.STREAMED`` of a record: {"analysed", "pieces"}


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
    pieces: dict[str, Expect] = field(default_factory=dict)  # video_id -> the pieces that join this commit
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # latent sets its latents rows add (``VAE/bucket``, with rows)


@dataclass(frozen=True)
class StagedPiece:
    """The staged files of one clip piece of ``video_id`` (its latent rows too), the latent sets they add, and what it says.

    ``parts``: an analysis piece's byte pieces (``None`` for a byte piece);
    ``failed``: the ``reason_key``/``reason`` of a stage that failed on it;
    ``timings``: the stages' seconds on it, added to the video's.
    """

    video_id: str
    files: list[StagedFile]
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    parts: int | None = None
    failed: dict[str, str] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        """Clip rows per clip table (``clips``, ``review``, ``rejected``)."""
        return Counter({f.table: f.entry["rows"] for f in self.files if f.table in fn.LEDGER_COUNT})


def own_piece(video: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """A done record with analysis pieces as ``(its clips as one more byte piece, the record without them)``; else ``(None, video)``.

    Staged on their own, the record's rows can be dropped with its pieces
    when one of those turns out failed, which rows buffered with other
    videos' could not.
    """
    streamed = video.get(STREAMED) or {}
    if video.get("status") != DONE or not streamed.get("analysed"):
        return None, video
    # "_latent_sets": what the latents stage noted for the clips' latent rows (curate.stages.latents.SETS)
    own = dict(piece(video, video.get("clips") or []), _latent_sets=video.get("_latent_sets"))
    return own, dict(video, clips=[], **{STREAMED: dict(streamed, pieces=streamed.get("pieces", 0) + 1)})


class Pieces:
    """Staged pieces by video, and the commits and outcomes waiting for them (metadata only)."""

    def __init__(self) -> None:
        self._got: dict[str, list[StagedPiece]] = {}
        self._waiting: list[Staged] = []
        self._outcomes: list[Outcome] = []

    def add(self, piece: StagedPiece) -> None:
        self._got.setdefault(piece.video_id, []).append(piece)

    def complete(self, video_id: str, expect: Expect) -> bool:
        """Whether every piece ``expect`` announces is in (or one failed: the video fails, the rest need no wait)."""
        got = self._got.get(video_id, [])
        if any(p.failed for p in got):
            return True
        analysed = [p for p in got if p.parts is not None]
        return (len(analysed) >= expect.get("analysed", 0)
                and len(got) - len(analysed) >= expect.get("pieces", 0) + sum(p.parts or 0 for p in analysed))

    def take(self, ledger_rows: list[dict[str, Any]], expected: dict[str, Expect]) -> tuple[list[dict[str, Any]], list[StagedPiece]] | None:
        """``(ledger rows with their pieces counted, pieces that join)`` for a commit of ``ledger_rows``; ``None`` while some are missing.

        Pieces of a video whose row is not ``done`` (it failed mid-stream) or
        one of whose pieces failed are dropped, never committed.
        """
        if any(not self.complete(v, e) for v, e in expected.items()):
            return None
        rows, joined = [], []
        for row in ledger_rows:
            got = self._got.pop(row["video_id"], [])
            failed = next((p.failed for p in got if p.failed), None)
            if row["status"] != DONE or row["video_id"] not in expected:
                rows.append(row)
            elif failed:
                rows.append(dict(row, status=FAILED, **failed, **dict.fromkeys(("num_clips", *fn.LEDGER_COUNT.values()), 0)))
            else:
                rows.append(_counted(row, got))
                joined += got
        return rows, joined

    def hold(self, staged: Staged) -> None:
        self._waiting.append(staged)

    def ready(self) -> list[Staged]:
        """The held commits whose pieces have all arrived, in the order held, with those of done videos joined."""
        out, still = [], []
        for staged in self._waiting:
            taken = self.take(staged.ledger_rows, staged.pieces)
            if taken is None:
                still.append(staged)
                continue
            rows, joined = taken
            out.append(replace(staged, files=[*staged.files, *(f for p in joined for f in p.files)], ledger_rows=rows, pieces={},
                               sets=joined_sets(staged.sets, joined)))
        self._waiting = still
        return out

    def settle(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Outcomes whose videos' pieces are all in (these and earlier ones), with the pieces' clips, seconds or failure.

        Call before :meth:`ready` or a commit takes the pieces.
        """
        self._outcomes += outcomes
        out, still = [], []
        for o in self._outcomes:
            if o.streamed is None or o.status != DONE:
                out.append(o)
            elif self.complete(o.video_id, o.streamed):
                out.append(self._settled(o))
            else:
                still.append(o)
        self._outcomes = still
        return out

    def _settled(self, o: Outcome) -> Outcome:
        got = self._got.get(o.video_id, [])
        failed = next((p.failed for p in got if p.failed), None)
        if failed:
            return replace(o, status=FAILED, reason=failed["reason"], clips=0, kept=0, flagged=0)
        n: Counter[str] = sum((p.counts() for p in got), Counter())
        return replace(o, clips=o.clips + sum(n.values()), kept=o.kept + n[fn.ACCEPTED_TABLE], flagged=o.flagged + n[fn.FLAGGED_TABLE],
                       seconds=o.seconds + sum(sum(p.timings.values()) for p in got))

    @property
    def waiting(self) -> int:
        """Commits (and outcomes) still held for pieces: none once a run's writers are done, unless pieces were lost."""
        return len(self._waiting) + len(self._outcomes)


def _counted(row: dict[str, Any], pieces: list[StagedPiece]) -> dict[str, Any]:
    """A done video's ledger row with its pieces' clips counted and their stages' seconds added."""
    n: Counter[str] = sum((p.counts() for p in pieces), Counter())
    out = dict(row, **{col: row[col] + n[t] for t, col in fn.LEDGER_COUNT.items()})
    out["num_clips"] = row["num_clips"] + sum(n.values())
    timings: dict[str, float] = json.loads(row["timings"] or "{}")
    for p in pieces:
        for stage, s in p.timings.items():
            timings[stage] = timings.get(stage, 0.0) + float(s)
    out["timings"] = json.dumps(timings, sort_keys=True)
    return out


def joined_sets(sets: dict[str, dict[str, Any]], pieces: list[StagedPiece]) -> dict[str, dict[str, Any]]:
    """A commit's latent ``sets`` with those of the ``pieces`` that join it (a new dict)."""
    out = add_sets({}, sets)
    for p in pieces:
        add_sets(out, p.sets)
    return out


def staged_piece(video_id: str, record: dict[str, Any], files: list[StagedFile], sets: dict[str, dict[str, Any]]) -> StagedPiece:
    """What a writer reports of a piece ``record`` it staged as ``files``."""
    failed = {"reason_key": record.get("reason_key") or "", "reason": record.get("reason") or ""} if record.get("status") == FAILED else None
    return StagedPiece(video_id, files, sets, record.get(PARTS), failed, dict(record.get("timings") or {}))
