"""Change decisions about committed clips after the fact, as one crash-safe commit.

Dedup and refilter decide per clip anew (reject reasons, flags, the clip it
duplicates) from stored columns. Applying such *changes* is copy-on-write:
every committed file holding a changed clip is rewritten whole under a new
part id (unchanged rows as they are, changed rows to the table their new
decision routes them to), clips that become accepted or flagged are encoded
from their source, clips that become rejected lose their bytes, and
:meth:`OutputStore.commit_rewrite` commits the new files, the ledger rows
with the new per-video counts and a sidecar naming the superseded files at
one ledger rename. A crash before it leaves orphans that the next open
deletes; re-deciding then gives the same changes, so passes are idempotent.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from curate.config import EncodeConfig
from curate.media.encode import encode_spans, reference_spans
from curate.media.geometry import display_size
from curate.output import manifest as mf
from curate.output.funnel import ACCEPTED_TABLE, FLAGGED_TABLE, LEDGER_COUNT, REJECTED_TABLE
from curate.output.shards import TABLES, chunks, read_table, stage_file, unstage
from curate.output.store import OutputStore, table_of
from curate.records import FAILED
from curate.schema import load_schema, to_table

log = logging.getLogger(__name__)
Changes = dict[str, dict[str, Any]]  # clip_id -> new column values


class RewriteError(RuntimeError):
    """The changes cannot be applied (e.g. a source to encode is gone); nothing was committed."""


def read_columns(store: OutputStore, columns: list[str]) -> pa.Table:
    """``columns`` of every committed clip row plus ``_table`` and ``_file``, in commit order.

    Columns a table does not have (``reject_reasons`` of accepted clips) are null.
    """
    parts = []
    for table, entries in store.shards.items():
        schema = load_schema(TABLES[table], params=store.schema_params)
        for e in entries:
            t = read_table(store.location, e["path"], [c for c in columns if c in schema.names])
            cols = {c: t.column(c) if c in t.column_names else pa.nulls(t.num_rows, _type(c)) for c in columns}
            cols.update(_table=pa.array([table] * t.num_rows, pa.string()), _file=pa.array([e["path"]] * t.num_rows, pa.string()))
            parts.append(pa.table(cols))
    if not parts:
        return pa.table({c: pa.array([], _type(c)) for c in columns} | {"_table": pa.array([], pa.string()), "_file": pa.array([], pa.string())})
    return pa.concat_tables(parts, promote_options="permissive")


def _type(column: str) -> pa.DataType:
    for name in ("rejected", "clip"):
        s = load_schema(name)
        if column in s.names:
            return s.field(column).type
    raise KeyError(column)


@dataclass
class _Sink:
    """Rows bound for one table, staged as files of about the shard target size."""

    store: OutputStore
    table: str
    part: str
    pending: list[pa.Table] = field(default_factory=list)
    nbytes: int = 0
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def schema(self) -> pa.Schema:
        return load_schema(TABLES[self.table], params=self.store.schema_params)

    def add(self, data: pa.Table | list[dict[str, Any]]) -> None:
        t = to_table(data, TABLES[self.table], self.store.schema_params) if isinstance(data, list) else data.select(self.schema.names).cast(self.schema)
        if t.num_rows:
            self.pending.append(t)
            self.nbytes += sum(t.column(f.name).nbytes for f in self.schema if pa.types.is_binary(f.type))
            if self.nbytes >= self.store.target_bytes:
                self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        merged = pa.concat_tables(self.pending)
        sizes = [0] * merged.num_rows
        for f in self.schema:
            if pa.types.is_binary(f.type):
                lengths = pc.fill_null(pc.binary_length(merged.column(f.name)), 0).to_pylist()
                sizes = [a + b for a, b in zip(sizes, lengths)]
        for offset, n in chunks(sizes, self.store.target_bytes):
            rel = f"{self.table}/{self.part}-{len(self.entries):03d}.parquet"
            data = merged.slice(offset, n)
            size = stage_file(self.store.location, rel, data, self.store.row_group_rows)
            self.entries.append(mf.shard_entry(rel, size, data))
        self.pending, self.nbytes = [], 0


def unencoded(row: dict[str, Any]) -> dict[str, Any]:
    """A clip row as the analysis left it (no bytes; size and rate of the source), for ``rejected/``."""
    rot = int(row.get("source_rotation") or 0)
    w, h = display_size(row["source_width"], row["source_height"], rot)
    if row.get("video") is not None and row.get("width") and row.get("height"):
        # the stored clip had the display aspect (SAR applied): keep that aspect at the source's height
        w = max(1, round(h * row["width"] / row["height"]))
    row.pop("video", None)
    row.pop("video_format", None)
    row.update(width=w, height=h, fps=row["source_fps"])
    return row


@dataclass
class _EncodeJob:
    """What the guard's child process runs for a rewrite: the encode stage's span encoding, no stage.

    A rewrite has no analysis record, so the timeline is unknown and clips are
    cut by decode index (:func:`curate.media.encode.encode_spans`).
    """

    encode: EncodeConfig
    name: ClassVar[str] = "encode"

    def setup(self) -> None:
        """Nothing to load (the guard's protocol)."""

    def teardown(self) -> None:
        """Nothing to release (the guard's protocol)."""

    def stream_captured(self, video: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """What the guard's child runs: one record, the clips with bytes, or ``failed``."""
        rotation = int(video["clips"][0]["source_rotation"] or 0)
        try:
            if self.encode.mode == "reference":
                reference_spans(video["clips"], rotation)
            else:
                encode_spans(video["uri"], video["clips"], self.encode, rotation, "timeline unknown (no analysis record)")
        except Exception as e:  # noqa: BLE001 - reported by encode_rows, nothing is committed
            yield dict(video, status=FAILED, reason=f"encode: {type(e).__name__}: {e}")
            return
        yield video


def encode_rows(config: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with bytes (or references) from their sources, as the encode stage stores them.

    Each source is encoded in a supervised child process (:mod:`curate.guard`),
    so a hang or a native crash ends in :class:`RewriteError` under
    ``limits.video_timeout_s``, as in a run.

    Raises:
        RewriteError: a source cannot be read (moved, deleted, changed).
    """
    from curate.guard import Guard, GuardError

    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_source[r["source_uri"]].append(r)
    guard = Guard(_EncodeJob(config.encode))
    out = []
    try:
        for uri, clips in sorted(by_source.items()):
            video = {"uri": uri, "video_id": clips[0]["video_id"], "clips": clips}
            try:
                done = guard.call(video, float(config.limits.video_timeout_s))
            except GuardError as e:
                done = dict(video, status=FAILED, reason=f"encode: {e}")
            if done.get("status") == FAILED:
                raise RewriteError(f"cannot encode {len(clips)} newly kept clip(s) of {uri} ({done.get('reason')}); "
                                   "nothing was changed: restore the source or re-run the pipeline")
            out.extend(done["clips"])
    finally:
        guard.close()
    return out


def apply_changes(store: OutputStore, changes: Changes, info: dict[str, Any]) -> dict[str, Any] | None:
    """Commit ``changes`` (clip_id -> new column values) as one rewrite; ``None`` when there are none.

    Returns the sidecar (``info`` plus part, files, what it superseded, ``moves``:
    ``"table->table"`` -> clips that changed table, ``updated``: clips whose
    decision changed without a move, e.g. a dropped clip with new reasons).
    """
    if not changes:
        return None
    t0 = time.perf_counter()
    part = store.next_part()
    sinks = {t: _Sink(store, t, part) for t in TABLES}
    try:
        supersedes, moves, delta, encoded = _stage(store, changes, sinks)
    except BaseException:
        for sink in sinks.values():  # nothing was committed: leave no staged file behind
            for e in sink.entries:
                unstage(store.location, e["path"])
        raise
    ledger_rows = []
    for row in store.latest_rows({v for v, d in delta.items() if any(d.values())}):
        d = delta[row["video_id"]]
        ledger_rows.append(dict(row, **{col: int(row[col]) + d[t] for t, col in LEDGER_COUNT.items()}))
    updated = moves.pop("updated", 0)
    record = dict(info, moves=dict(sorted(moves.items())), updated=updated, encoded=encoded,
                  seconds=round(time.perf_counter() - t0, 3))
    record = store.commit_rewrite(part, {t: s.entries for t, s in sinks.items() if s.entries}, supersedes, ledger_rows, record)
    log.info("%s: rewrote %d file(s) as part %s: %s, %d updated in place, %d clip(s) encoded", info.get("kind"),
             len(supersedes), part, describe_moves(record["moves"]) or "no moves", updated, encoded)
    return record


OUTCOME = {ACCEPTED_TABLE: "kept", FLAGGED_TABLE: "flagged", REJECTED_TABLE: "dropped"}


def describe_moves(moves: dict[str, int]) -> str:
    """``{"clips->rejected": 5}`` as ``kept → dropped 5``; several joined with ``, ``."""
    parts = []
    for key, n in moves.items():
        src, _, dst = key.partition("->")
        parts.append(f"{OUTCOME.get(src, src)} → {OUTCOME.get(dst, dst)} {n:,}")
    return ", ".join(parts)


def _stage(store: OutputStore, changes: Changes, sinks: dict[str, _Sink]) -> tuple[list[str], Counter[str], dict[str, Counter[str]], int]:
    """Stage the new files: ``(superseded files, moves, per-video count deltas, clips encoded)``."""
    moves: Counter[str] = Counter()
    delta: dict[str, Counter[str]] = defaultdict(Counter)
    to_encode, supersedes, found = [], [], 0
    for table, entries in store.shards.items():
        for rel in [e["path"] for e in entries]:
            ids = read_table(store.location, rel, ["clip_id"]).column("clip_id").to_pylist()
            hit = pa.array([cid in changes for cid in ids], pa.bool_())
            if not pc.any(hit).as_py():
                continue
            data = read_table(store.location, rel)  # a file with a change is rewritten whole
            supersedes.append(rel)
            sinks[table].add(data.filter(pc.invert(hit)))
            for row in data.filter(hit).to_pylist():
                found += 1
                row.update(changes[row["clip_id"]])
                target = table_of(row)
                # A move is a clip changing table; one that stays (new reasons only) is updated in place.
                moves[f"{table}->{target}" if target != table else "updated"] += 1
                delta[row["video_id"]][table] -= 1
                delta[row["video_id"]][target] += 1
                if target != REJECTED_TABLE and table == REJECTED_TABLE:
                    to_encode.append(row)
                else:
                    sinks[target].add([unencoded(row) if target == REJECTED_TABLE else row])
    if found != len(changes):
        raise RewriteError(f"{len(changes) - found} changed clip id(s) are not in the committed shards")
    for row in encode_rows(store.config, to_encode) if to_encode else []:
        sinks[table_of(row)].add([row])
    for sink in sinks.values():
        sink.flush()
    return supersedes, moves, delta, len(to_encode)
