"""The ledger: one ``videos``-schema row per video per commit, in ``OUTPUT/_ledger/``.

A ledger part exists only once every data file of its commit is in place, so
the set of ledger parts *is* the set of committed work. Parts are ordered by
their commit sequence; a later row for a video supersedes an earlier one (a
``failed`` video that a later run retried). ``videos.parquet`` is the latest
row per video, rewritten at close; the ledger stays the source of truth.

Rewrite commits (dedup, refilter) add rows too: the same video with its new
per-table counts. Their stage timings are not counted again, and their
sidecars (``_ledger/{part}.json``) say which data files they superseded.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from curate.media.identity import source_key
from curate.output.shards import LEDGER_DIR, Location, parse_part, read_table, sidecar_name
from curate.records import DONE, REJECTED
from curate.schema import to_table

_STATE_COLUMNS = ["video_id", "uri", "size_bytes", "status", "reason_key", "num_clips", "timings"]


class VideoState(NamedTuple):
    status: str
    reason_key: str | None  # what the funnel counts a rejected or failed video under
    num_clips: int
    part: str = ""  # the ledger part holding the video's latest row


def video_row(record: dict[str, Any], run_id: str, num_accepted: int, num_rejected: int, num_flagged: int = 0) -> dict[str, Any]:
    """The ledger row of a finished video record (``part`` is filled in at commit).

    Frame count, duration and rate come from what decoding yielded when the
    record has it, else from the container header (``probe``).
    """
    probe = record.get("probe") or {}
    decoded = record.get("decoded") or {}

    def measured(key: str) -> Any:
        return decoded[key] if decoded.get(key) is not None else probe.get(key)

    return {
        "video_id": record.get("video_id"),
        "uri": record.get("uri"),
        "size_bytes": record.get("size_bytes"),
        "status": record.get("status"),
        "reason_key": record.get("reason_key"),
        "reason": record.get("reason"),
        "num_clips": num_accepted + num_rejected + num_flagged,
        "num_accepted": num_accepted,
        "num_rejected": num_rejected,
        "num_flagged": num_flagged,
        "duration_s": measured("duration_s"),
        "num_frames": measured("num_frames"),
        "fps": measured("fps"),
        "shots": record.get("shots"),  # set by the analysis pass; None for a video it never finished
        "transitions": record.get("transitions"),
        "width": probe.get("width"),
        "height": probe.get("height"),
        "codec": probe.get("codec"),
        "container": probe.get("container"),
        "timings": json.dumps({k: float(v) for k, v in (record.get("timings") or {}).items()}, sort_keys=True),
        "run_id": run_id,
        "part": "",
    }


def committed_parts(loc: Location) -> list[tuple[int, str]]:
    """``(seq, part id)`` of every committed ledger part, in commit order."""
    found = []
    for name in loc.names(LEDGER_DIR):
        parsed = parse_part(name)
        if parsed and name == f"{parsed[0]}.parquet":
            found.append((parsed[1], parsed[0]))
    return sorted(found)


def read_sidecars(loc: Location, parts: list[str]) -> list[dict[str, Any]]:
    """The sidecars of the committed rewrite parts among ``parts``, in commit order."""
    present = set(loc.names(LEDGER_DIR))
    return [json.loads(loc.fs.cat_file(loc.path(sidecar_name(p)))) for p in parts if f"{p}.json" in present]


def read_parts(loc: Location, parts: list[str], columns: list[str] | None = None) -> pa.Table:
    """All rows of ``parts`` concatenated in the given (commit) order."""
    tables = [read_table(loc, f"{LEDGER_DIR}/{p}.parquet", columns) for p in parts]
    empty = to_table([], "videos")
    return pa.concat_tables(tables) if tables else empty.select(columns or empty.column_names)


def latest(rows: pa.Table) -> pa.Table:
    """The last row per ``video_id``, kept in commit order."""
    idx = rows.append_column("_i", pa.array(range(rows.num_rows), pa.int64()))
    last = idx.group_by("video_id", use_threads=False).aggregate([("_i", "max")])["_i_max"]
    return rows.take(pc.take(last, pc.sort_indices(last)))


@dataclass
class Ledger:
    """Committed state: latest status per video and stage time spent, updated per commit."""

    parts: list[str] = field(default_factory=list)
    next_seq: int = 1
    states: dict[str, VideoState] = field(default_factory=dict)
    # stage -> [seconds, rows]; over every committed row, so retried attempts count as time spent.
    stage_time: dict[str, list[float]] = field(default_factory=dict)
    # Sidecars of committed rewrite parts, in commit order, and the data files they superseded.
    rewrites: list[dict[str, Any]] = field(default_factory=list)
    superseded: set[str] = field(default_factory=set)
    # source_key(uri, size) of every done or rejected video: the driver's skip check hashes only inputs found here
    finished_keys: set[int] = field(default_factory=set)

    @classmethod
    def load(cls, loc: Location) -> "Ledger":
        found = committed_parts(loc)
        ledger = cls(parts=[p for _, p in found], next_seq=(found[-1][0] + 1) if found else 1)
        for sidecar in read_sidecars(loc, ledger.parts):
            ledger.rewrites.append(sidecar)
            ledger.superseded.update(sidecar["supersedes"])
        rewritten = {s["part"] for s in ledger.rewrites if not s.get("run_commit")}
        for r in read_parts(loc, ledger.parts, [*_STATE_COLUMNS, "part"]).to_pylist():
            ledger._fold(r, timed=r["part"] not in rewritten)
        return ledger

    def apply(self, rows: list[dict[str, Any]], part: str | None = None, sidecar: dict[str, Any] | None = None) -> None:
        """Fold committed ledger rows (in commit order) into the state; ``part`` advances the sequence.

        Rows of a rewrite commit (given its ``sidecar``) change counts, not time spent; a run's
        commit that also adds latents has a sidecar too (``run_commit``), and its rows are timed.
        """
        if part is not None:
            self.parts.append(part)
            self.next_seq += 1
        if sidecar is not None:
            self.rewrites.append(sidecar)
            self.superseded.update(sidecar["supersedes"])
        for r in rows:
            self._fold(r, timed=sidecar is None or bool(sidecar.get("run_commit")))

    def _fold(self, r: dict[str, Any], timed: bool) -> None:
        self.states[r["video_id"]] = VideoState(r["status"], r["reason_key"], int(r["num_clips"]), sys.intern(r["part"]))
        if r["status"] in (DONE, REJECTED):
            self.finished_keys.add(source_key(r["uri"], r.get("size_bytes")))
        if not timed:
            return
        for stage, seconds in json.loads(r["timings"] or "{}").items():
            acc = self.stage_time.setdefault(stage, [0.0, 0])
            acc[0] += float(seconds)
            acc[1] += 1

    def status(self, video_id: str) -> str | None:
        state = self.states.get(video_id)
        return state.status if state else None

    def maybe_finished(self, uri: str, size: int | None) -> bool:
        """Whether a done or rejected video had this URI and size (or an unknown size): only then is hashing worth it."""
        return source_key(uri, size) in self.finished_keys or source_key(uri, None) in self.finished_keys

    def finished_ids(self) -> set[str]:
        return {vid for vid, s in self.states.items() if s.status in (DONE, REJECTED)}

    def latest_parts(self, loc: Location) -> Iterator[pa.Table]:
        """The latest row of every video (what ``videos.parquet`` holds), one ledger part in memory at a time.

        Rows come in the order :func:`latest` gives: by the commit of each video's latest row.
        """
        schema = to_table([], "videos").schema
        for part in self.parts:
            rows = read_table(loc, f"{LEDGER_DIR}/{part}.parquet").select(schema.names).cast(schema)
            keep = pa.array([self.states[v].part == part for v in rows["video_id"].to_pylist()], pa.bool_())
            yield latest(rows.filter(keep))

    def timings_summary(self) -> dict[str, dict[str, float]]:
        return {
            stage: {"total_s": round(total, 3), "videos": int(n), "mean_s": round(total / n, 4) if n else 0.0}
            for stage, (total, n) in sorted(self.stage_time.items())
        }
