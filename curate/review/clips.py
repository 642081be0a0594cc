"""Clips as the review app sees them: bytes, thumbnails and metadata by clip id, through ``manifest.json``.

Only shards the manifest lists are read, so an OUTPUT that a run, refilter or
``review apply`` is still writing shows its last committed version. The index
(clip id -> table, file, row) is rebuilt when the manifest changes; a file
superseded between the index and the read is retried on the new manifest. A
client names clips by id only: no request path or parameter reaches the
filesystem. Rows without bytes (rejected clips in a QA sample, reference-mode
outputs) are encoded from their source on demand, like a refilter would.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from curate.output import manifest as mf
from curate.output.shards import TABLES, Location, read_table
from curate.review import reasons as rs
from curate.schema import load_schema

CLIP_ID = re.compile(r"^[0-9a-f]{8,64}$")
# Columns kept in memory for every committed clip (small; no bytes).
META = ["clip_id", "video_id", "source_uri", "shot_index", "window_index", "start_frame", "end_frame", "num_frames",
        "start_s", "end_s", "duration_s", "fps", "width", "height", "caption", "caption_source", "camera_motion",
        "motion_score", "sharpness", "brightness", "contrast", "black_fraction", "frozen_fraction", "aesthetic_score",
        "text_area_max", "text_area_mean", "text_boxes",
        "clip_sim_mean", "clip_sim_min", "flag_reasons", "reject_reasons", "duplicate_of", "video_format"]
SCORES = ["motion_score", "sharpness", "brightness", "contrast", "black_fraction", "frozen_fraction", "aesthetic_score",
          "text_area_max", "clip_sim_mean", "clip_sim_min"]


class UnknownClip(KeyError):
    """No committed clip has this id."""


@dataclass(frozen=True)
class _Where:
    table: str
    path: str
    row: int  # row index within the file


class ClipSource:
    """Read-only view of one OUTPUT's committed clips; safe to share between request threads."""

    def __init__(self, output: str, cache_mb: float = 512) -> None:
        self.output = output
        self.loc = Location.of(output)
        self._lock = threading.RLock()
        self._encode_lock = threading.Lock()
        self._key: Any = None
        self.doc: dict[str, Any] = {}
        self.where: dict[str, _Where] = {}
        self.rows: dict[str, dict[str, Any]] = {}
        self.by_video: dict[str, list[str]] = {}
        self._bytes: OrderedDict[str, bytes] = OrderedDict()
        self._inflight: dict[str, threading.Event] = {}
        self._cache = int(cache_mb * 2**20)
        self._held = 0
        self.refresh()

    # -- index -----------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Re-read the manifest; rebuild the index when it changed. Returns whether it did."""
        doc = mf.read_output(self.loc, self.output)
        key = (tuple((doc.get("ledger") or {}).get("parts") or []), len(doc.get("versions") or []))
        with self._lock:
            if key == self._key:
                return False
            where, rows, by_video = {}, {}, {}
            for table, entries in (doc.get("shards") or {}).items():
                names = load_schema(TABLES.get(table, "clip")).names
                for e in entries:
                    t = read_table(self.loc, e["path"], [c for c in META if c in names])
                    for i, row in enumerate(t.to_pylist()):
                        row["_table"] = table
                        where[row["clip_id"]] = _Where(table, e["path"], i)
                        rows[row["clip_id"]] = row
                        by_video.setdefault(row["video_id"], []).append(row["clip_id"])
            for ids in by_video.values():
                ids.sort(key=lambda c: (rows[c]["start_s"], c))
            self.doc, self.where, self.rows, self.by_video, self._key = doc, where, rows, by_video, key
            self._bytes.clear()
            self._held = 0
            return True

    @property
    def version(self) -> int:
        """The shard version shown: the number of rewrites committed (0 = as the run wrote it)."""
        return len(self.doc.get("versions") or [])

    @property
    def config(self) -> dict[str, Any]:
        return self.doc.get("config") or {}

    def row(self, clip_id: str) -> dict[str, Any]:
        if not isinstance(clip_id, str) or not CLIP_ID.match(clip_id):
            raise UnknownClip(clip_id)
        row = self.rows.get(clip_id)
        if row is None:
            self.refresh()
            row = self.rows.get(clip_id)
        if row is None:
            raise UnknownClip(clip_id)
        return row

    # -- bytes -------------------------------------------------------------------------------

    def _read_cell(self, clip_id: str, column: str, keep: Any = None) -> Any:
        """One cell of a clip's row, reading only its row group; ``keep(clip_id, value)`` sees the group's other cells."""
        for attempt in range(2):
            self.row(clip_id)
            w = self.where[clip_id]
            try:
                with self.loc.fs.open(self.loc.path(w.path), "rb") as f:
                    pf = pq.ParquetFile(f)
                    start = 0
                    for rg in range(pf.num_row_groups):
                        n = pf.metadata.row_group(rg).num_rows
                        if w.row < start + n:
                            t = pf.read_row_group(rg, columns=["clip_id", column], use_threads=False)  # see curate.output.shards
                            assert t.column("clip_id")[w.row - start].as_py() == clip_id
                            if keep is not None:  # a row group holds many clips: one read serves the grid
                                for cid, value in zip(t.column("clip_id").to_pylist(), t.column(column).to_pylist()):
                                    if cid != clip_id and value is not None:
                                        keep(cid, value)
                            return t.column(column)[w.row - start].as_py()
                        start += n
            except (FileNotFoundError, AssertionError):
                if attempt:
                    raise
            self.refresh()  # the file was superseded by a commit since the index was built
        raise UnknownClip(clip_id)

    def thumbnail(self, clip_id: str) -> bytes:
        return self._read_cell(clip_id, "thumbnail")

    def video(self, clip_id: str) -> bytes:
        """The clip's MP4 bytes: stored ones, else encoded from its source (cached)."""
        with self._lock:
            if clip_id in self._bytes:
                self._bytes.move_to_end(clip_id)
                return self._bytes[clip_id]
            busy = self._inflight.get(clip_id)
            if busy is None:
                self._inflight[clip_id] = threading.Event()
        if busy is not None:  # another thread (a warm-up) is loading it: wait for that, then try again
            busy.wait(timeout=120)
            return self.video(clip_id)
        try:
            row = self.row(clip_id)
            data = (self._read_cell(clip_id, "video", keep=self._keep)
                    if "video" in load_schema(TABLES[row["_table"]]).names else None)
            if data is None:
                data = self._encode(clip_id)
            self._keep(clip_id, data)
            return data
        finally:
            with self._lock:
                self._inflight.pop(clip_id).set()

    def _keep(self, clip_id: str, data: bytes) -> None:
        """Cache ``data``; the least recently used clips go once the cache holds ``cache_mb``."""
        with self._lock:
            old = self._bytes.pop(clip_id, None)
            self._held -= len(old) if old is not None else 0
            self._bytes[clip_id] = data
            self._held += len(data)
            while self._held > self._cache and len(self._bytes) > 1:
                _, gone = self._bytes.popitem(last=False)
                self._held -= len(gone)

    def warm(self, clip_ids: list[str]) -> None:
        """Load the bytes of ``clip_ids`` in the background (clips encoded on demand take seconds)."""
        def run() -> None:
            for cid in clip_ids:
                try:
                    self.video(cid)
                except Exception:  # noqa: BLE001 - the request for it will report the problem
                    pass

        threading.Thread(target=run, daemon=True).start()

    def _encode(self, clip_id: str) -> bytes:
        from curate.config import PipelineConfig
        from curate.output.rewrite import encode_rows

        w = self.where[clip_id]
        t = read_table(self.loc, w.path)
        row = t.slice(w.row, 1).to_pylist()[0]
        row.update(reject_reasons=[], flag_reasons=None)  # the encode stage encodes kept clips only
        config = PipelineConfig.model_validate(self.config)
        config = config.model_copy(update={"encode": config.encode.model_copy(update={"mode": "bytes"})})
        with self._encode_lock:
            out = encode_rows(config, [row])
        data = out[0].get("video") if out else None
        if not data:
            raise UnknownClip(clip_id)  # nothing to play (the page shows the thumbnail)
        return data

    # -- what the page shows -------------------------------------------------------------------

    def thresholds(self) -> dict[str, list[tuple[str, float]]]:
        from curate.report import thresholds

        return thresholds(self.config)

    def describe(self, clip_id: str) -> dict[str, Any]:
        """Everything the review view shows about a clip. The table it is in is not said (QA samples stay blind)."""
        from curate.stages.filter import CHECKS

        row = self.row(clip_id)
        ops = {name: sym for name, (_, _, sym) in CHECKS.items()}
        ops.update(pass_min="<", reject_below="<")
        thr = self.thresholds()
        scores = []
        for col in SCORES:
            v = row.get(col)
            if v is None:
                continue
            marks = [{"name": n, "value": t, "ok": not ((ops.get(n) == "<" and v < t) or (ops.get(n) == ">" and v > t))}
                     for n, t in thr.get(col, [])]
            scores.append({"name": col, "value": round(float(v), 4), "thresholds": marks})
        ids = self.by_video.get(row["video_id"], [])
        k = ids.index(clip_id) if clip_id in ids else 0
        near = ids[max(0, k - 6):k + 7]
        return {
            "clip_id": clip_id,
            "caption": row.get("caption") or "",
            # Flag reasons only: a QA-sampled rejected clip is not labelled with the pipeline's verdict.
            "reasons": rs.texts(row, "flag_reasons"),
            "scores": scores,
            "source": row["source_uri"].rsplit("/", 1)[-1],
            "shot_index": row["shot_index"], "window_index": row["window_index"],
            "start_frame": row["start_frame"], "end_frame": row["end_frame"],
            "start_s": row["start_s"], "end_s": row["end_s"], "duration_s": row["duration_s"],
            "fps": row["fps"], "width": row["width"], "height": row["height"], "camera_motion": row.get("camera_motion"),
            "video_start_s": self.rows[ids[0]]["start_s"] if ids else row["start_s"],
            "video_end_s": self.rows[ids[-1]]["end_s"] if ids else row["end_s"],
            "neighbours": [{"clip_id": c, "start_s": self.rows[c]["start_s"], "end_s": self.rows[c]["end_s"],
                            "shot_index": self.rows[c]["shot_index"], "current": c == clip_id} for c in near],
            "shard_version": self.version,
        }


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end inclusive)`` of a single ``bytes=`` range, ``None`` for no/ignored header.

    Raises:
        ValueError: a range that cannot be satisfied (HTTP 416).
    """
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # several ranges or an unknown unit: answer with the whole body (RFC 9110 allows it)
    if not m.group(1):
        n = int(m.group(2))
        if n == 0:
            raise ValueError("empty suffix range")
        return max(0, size - n), size - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        raise ValueError("range not satisfiable")
    return start, min(end, size - 1)


