"""A finished video record as the rows the store commits, and the buffer that groups them into shards.

One place turns a record into typed, schema-checked tables, so the driver's
store (local runner, rewrites) and the Ray workers that write shards
themselves (:mod:`curate.output.writer`) produce the same rows. In-run
latents (:mod:`curate.stages.latents`) become ``latents`` rows of the same
video, so they commit with its clips or not at all.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import pyarrow as pa

from curate.output import funnel as fn
from curate.output.ledger import video_row
from curate.output.shards import DERIVED, TABLES, chunks
from curate.records import DONE, FAILED, PENDING, REJECTED, STREAMED, public
from curate.schema import check_table, load_schema, to_table

PARAM_SCHEMAS = ("clip", "rejected")  # the schemas whose types take the embedding params
# Videos one commit holds at most: a long run of rejected or failed inputs (no
# bytes toward the shard target) must not pile up in one commit's memory.
MAX_BUFFER_VIDEOS = 1024
MAX_BUFFER_AGE_S = 600.0  # so runs of failures or reference-mode clips commit while the run goes on
_BINARY = {s: [f.name for f in load_schema(s) if pa.types.is_binary(f.type)] for s in TABLES.values()}
LATENTS_TABLE = "latents"
ROW_TABLES = {**TABLES, LATENTS_TABLE: DERIVED[LATENTS_TABLE]}  # what a run commit may hold


def table_of(row: dict[str, Any]) -> str:
    """Where a clip row goes: ``rejected`` with any reject reason, else ``review`` when flagged, else ``clips``."""
    if row.get("reject_reasons"):
        return fn.REJECTED_TABLE
    return fn.FLAGGED_TABLE if row.get("flag_reasons") else fn.ACCEPTED_TABLE


def checked(vid: str, rows: list[dict[str, Any]], schema: str, params: dict[str, Any] | None = None) -> pa.Table:
    """``rows`` as a table of ``schema``, or ``ValueError`` naming the video (a pipeline bug)."""
    params = params if schema in PARAM_SCHEMAS else None
    try:
        table = to_table(rows, schema, params)
    except (pa.ArrowException, TypeError, ValueError) as e:
        raise ValueError(f"video {vid}: rows do not fit schema {schema}: {e}") from e
    problems = check_table(table, schema, params)
    if problems:
        raise ValueError(f"video {vid}: rows do not fit schema {schema}: {'; '.join(problems)}")
    return table


@dataclass(frozen=True)
class Outcome:
    """What the driver logs and counts of a video once its rows are buffered (no clip data).

    ``streamed``: what the video sent ahead (``records.STREAMED``); such an
    outcome counts only the record's own clips until
    :meth:`curate.output.pieces.Pieces.settle` adds its pieces'.
    """

    video_id: str
    uri: str
    status: str
    reason: str | None
    clips: int
    kept: int
    flagged: int
    seconds: float
    streamed: dict[str, int] | None = None


def finished(video: dict[str, Any]) -> dict[str, Any]:
    """``video`` as it leaves the last stage: still ``pending`` means every stage passed it, so it is ``done``."""
    return dict(video, status=DONE) if video.get("status") == PENDING else video


def outcome(video: dict[str, Any]) -> Outcome:
    clips = video.get("clips") or []
    return Outcome(
        video_id=video["video_id"], uri=video["uri"], status=video["status"], reason=video.get("reason"),
        clips=len(clips),
        kept=sum(1 for c in clips if not c.get("reject_reasons") and not c.get("flag_reasons")),
        flagged=sum(1 for c in clips if not c.get("reject_reasons") and c.get("flag_reasons")),
        seconds=float(sum((video.get("timings") or {}).values())),
        streamed=video.get(STREAMED),
    )


@dataclass
class VideoRows:
    """One video's clip (and latent) rows per table, their stored bytes, and its ledger row (``part`` filled at commit).

    ``sets``: ``VAE/bucket`` -> the manifest's record of the latents it adds, with ``rows``.
    """

    video_id: str
    status: str
    tables: dict[str, pa.Table]
    sizes: dict[str, list[int]]
    ledger_row: dict[str, Any]
    streamed: dict[str, int] | None = None  # what it sent ahead (curate.records.STREAMED), whose rows join this commit
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RowMaker:
    """Turns finished video records into :class:`VideoRows` for one run."""

    run_id: str
    config_hash: str
    schema_params: dict[str, Any]

    def rows(self, video: dict[str, Any]) -> VideoRows:
        """The rows of ``video``; clips of a ``failed`` video are not stored (it is redone on retry).

        Raises:
            ValueError: the record is not finished, or its rows do not match the schemas.
        """
        vid, status = video.get("video_id"), video.get("status")
        if status not in (DONE, REJECTED, FAILED) or not vid:
            raise ValueError(f"video {vid or video.get('uri')!r}: add() takes records with a video_id and status "
                             f"done, rejected or failed, got status {status!r}")
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
        for clip in [] if status == FAILED else video.get("clips") or []:
            row = self._clip_row(video, clip)
            rows[table_of(row)].append(row)
        tables = {t: checked(vid, r, TABLES[t], self.schema_params) for t, r in rows.items() if r}
        # rows of clips it sent ahead are counted when they join the commit (curate.output.pieces)
        ledger_row = video_row(video, self.run_id, len(rows[fn.ACCEPTED_TABLE]), len(rows[fn.REJECTED_TABLE]), len(rows[fn.FLAGGED_TABLE]))
        checked(vid, [ledger_row], "videos")
        sizes = {t: [sum(len(r.get(c) or b"") for c in _BINARY[TABLES[t]]) for r in rows[t]] for t in tables}
        latents, sets = self._latent_rows(video, [] if status == FAILED else video.get("clips") or [])
        if latents:
            tables[LATENTS_TABLE] = checked(vid, latents, ROW_TABLES[LATENTS_TABLE])
            sizes[LATENTS_TABLE] = [len(r["latent"]) + len(r["logvar"] or b"") for r in latents]
        # only a done video waits for its pieces; a failed one drops those that came (the rest are staged files, removed at close)
        return VideoRows(vid, status, tables, sizes, ledger_row, video.get(STREAMED) if status == DONE else None, sets)

    def piece_tables(self, piece: dict[str, Any]) -> tuple[dict[str, pa.Table], dict[str, dict[str, Any]]]:
        """The rows of a clip piece (``curate.records.PIECE``) per table, as :meth:`rows` makes a video's, and the latent sets they add.

        The latents stage gives a piece's clips their latents as it does a
        record's (``_latents`` on the clips, ``_latent_sets`` on the piece): its
        ``latents`` rows are staged and committed with its clip rows.
        """
        rows: dict[str, list[dict[str, Any]]] = {}
        for clip in piece["clips"]:
            row = self._clip_row(piece, clip)
            rows.setdefault(table_of(row), []).append(row)
        tables = {t: checked(piece["video_id"], r, TABLES[t], self.schema_params) for t, r in rows.items()}
        latents, sets = self._latent_rows(piece, piece["clips"])
        if latents:
            tables[LATENTS_TABLE] = checked(piece["video_id"], latents, ROW_TABLES[LATENTS_TABLE])
        return tables, sets

    def _latent_rows(self, video: dict[str, Any], clips: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """Latent rows of the accepted clips (``_latents``, :mod:`curate.stages.latents`) and the sets they add."""
        rows: list[dict[str, Any]] = []
        sets: dict[str, dict[str, Any]] = {}
        records = video.get("_latent_sets") or {}
        for clip in clips:
            if table_of(clip) != fn.ACCEPTED_TABLE:
                continue
            for bucket, (latent, logvar) in sorted((clip.get("_latents") or {}).items()):
                info = records[bucket]
                rows.append({"clip_id": clip["clip_id"], "video_id": video["video_id"], "vae": info["id"], "bucket": bucket,
                             "latent": latent, "logvar": logvar, "run_id": self.run_id})
                add_sets(sets, {f"{info['id']}/{bucket}": dict(info, rows=1)})
        return rows, sets

    def _clip_row(self, video: dict[str, Any], clip: dict[str, Any]) -> dict[str, Any]:
        row = public(clip)
        for key, source in (("video_id", "video_id"), ("source_uri", "uri"), ("caption", "caption"),
                            ("caption_source", "caption_source"), ("input_meta", "input_meta")):
            if row.get(key) is None:
                row[key] = video.get(source)
        if isinstance(row["input_meta"], dict):
            row["input_meta"] = json.dumps(row["input_meta"], sort_keys=True, default=str)
        row.update(run_id=self.run_id, config_hash=self.config_hash)
        return row


def add_sets(into: dict[str, dict[str, Any]], sets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Add latent ``sets`` (``VAE/bucket`` -> set record with ``rows``) to ``into``, summing rows; returns ``into``."""
    for key, info in sets.items():
        into.setdefault(key, dict(info, rows=0))["rows"] += info["rows"]
    return into


@dataclass
class RowBuffer:
    """Whole videos' rows waiting for one commit; full at the shard target, at :data:`MAX_BUFFER_VIDEOS`, or when old."""

    tables: dict[str, list[pa.Table]] = field(default_factory=lambda: {t: [] for t in ROW_TABLES})
    sizes: dict[str, list[int]] = field(default_factory=lambda: {t: [] for t in ROW_TABLES})
    videos: list[dict[str, Any]] = field(default_factory=list)
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # latent sets the buffered rows add (with rows)
    status: dict[str, str] = field(default_factory=dict)
    pieces: dict[str, dict[str, int]] = field(default_factory=dict)  # video_id -> what it sent ahead of its rows (records.STREAMED)
    nbytes: int = 0
    since: float = field(default_factory=time.monotonic)

    def add(self, rows: VideoRows) -> None:
        for t, table in rows.tables.items():
            self.tables[t].append(table)
            self.sizes[t].extend(rows.sizes[t])
            self.nbytes += sum(rows.sizes[t])
        self.videos.append(rows.ledger_row)
        self.status[rows.video_id] = rows.status
        if rows.streamed:
            self.pieces[rows.video_id] = rows.streamed
        add_sets(self.sets, rows.sets)

    def full(self, target_bytes: int) -> bool:
        return (self.nbytes >= target_bytes or len(self.videos) >= MAX_BUFFER_VIDEOS
                or time.monotonic() - self.since >= MAX_BUFFER_AGE_S)

    def files(self, target_bytes: int) -> Iterator[tuple[str, int, pa.Table]]:
        """``(table, k, rows)`` of each data file of the commit, about ``target_bytes`` each."""
        for table, parts in self.tables.items():
            if parts:
                merged = pa.concat_tables(parts)
                for k, (offset, n) in enumerate(chunks(self.sizes[table], target_bytes)):
                    yield table, k, merged.slice(offset, n)
