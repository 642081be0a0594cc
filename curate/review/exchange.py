"""Decisions in and out: JSONL and CSV (the full history), Label Studio tasks and annotations.

* ``export``: every decision row (JSONL, CSV), or the clips still to review as
  Label Studio tasks (``{"data": {"video": URL, "caption": …, "clip_id": …}}``;
  the video URL points at the review server, which then serves the bytes).
* ``import``: the effective decisions of a JSONL/CSV export (undone ones and
  undo rows are left out, since row ids differ between databases), or the
  annotations of a Label Studio JSON export made with :data:`LABEL_CONFIG`.
  Rows the database already has (same clip, annotator, time, decision) are
  skipped, so importing twice adds nothing. Clip ids the OUTPUT lacks, unknown
  decisions and invalid captions are refused with the row named.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from curate.review import reasons as rs
from curate.review.clips import CLIP_ID, ClipSource
from curate.review.db import open_db
from curate.review.queue import Queue

FIELDS = ["id", "clip_id", "annotator", "decided_at", "decision", "reason", "old_caption", "new_caption",
          "shard_version", "undoes", "origin"]
# The labeling interface the Label Studio export is meant for (paste into the project's settings).
LABEL_CONFIG = """<View>
  <Video name="video" value="$video"/>
  <Text name="shown_caption" value="$caption"/>
  <Choices name="decision" toName="video" choice="single" required="true">
    <Choice value="approve"/><Choice value="reject"/>
  </Choices>
  <TextArea name="reason" toName="video" placeholder="why rejected" maxSubmissions="1"/>
  <TextArea name="caption" toName="video" placeholder="corrected caption" maxSubmissions="1" editable="true"/>
</View>"""


def format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".jsonl": "jsonl", ".csv": "csv", ".json": "labelstudio"}.get(suffix, "jsonl")


def export(output: str, db_url: str, path: Path, fmt: str, base_url: str = "http://127.0.0.1:8765") -> int:
    queue = Queue(open_db(db_url))
    if fmt == "labelstudio":
        source = ClipSource(output)
        done = {r["clip_id"] for r in queue.effective_rows()}
        tasks = []
        for cid, item in sorted(queue.items().items(), key=lambda kv: kv[1]["order_key"]):
            row = source.rows.get(cid)
            if row is None or cid in done:
                continue
            tasks.append({"id": len(tasks) + 1, "data": {
                "video": f"{base_url.rstrip('/')}/api/clips/{cid}/video.mp4", "caption": row.get("caption") or "",
                "clip_id": cid, "reasons": "; ".join(rs.texts(row, "flag_reasons") + rs.texts(row, "reject_reasons"))}})
        path.write_text(json.dumps(tasks, indent=1, ensure_ascii=False), encoding="utf-8")
        return len(tasks)
    rows = queue.history()
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({k: r.get(k) for k in FIELDS}, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k) for k in FIELDS})
    else:
        raise ValueError(f"unknown format {fmt!r}: jsonl, csv or labelstudio")
    return len(rows)


def _read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "jsonl":
        out = []
        for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    raise ValueError(f"{path}:{k}: not JSON ({e})") from None
        return out
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("id", "undoes", "shard_version"):
            r[k] = int(r[k]) if r.get(k) not in (None, "") else None
        r["decided_at"] = float(r["decided_at"]) if r.get("decided_at") else None
        for k in ("reason", "old_caption", "new_caption"):
            r[k] = r.get(k) or None
    return rows


def _effective(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    undone = {r.get("undoes") for r in rows if r.get("decision") == "undo"}
    return [r for r in rows if r.get("decision") in ("approve", "reject") and r.get("id") not in undone]


def _labelstudio(path: Path) -> list[dict[str, Any]]:
    tasks = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(tasks, list):
        raise ValueError(f"{path}: a Label Studio export is a JSON list of tasks")
    out = []
    for task in tasks:
        cid = (task.get("data") or {}).get("clip_id")
        for ann in task.get("annotations") or []:
            if ann.get("was_cancelled"):
                continue
            got: dict[str, Any] = {}
            for res in ann.get("result") or []:
                value = res.get("value") or {}
                if res.get("from_name") == "decision" and value.get("choices"):
                    got["decision"] = str(value["choices"][0]).lower()
                elif res.get("from_name") in ("reason", "caption") and value.get("text"):
                    got[res["from_name"]] = str(value["text"][0]).strip()
            by = ann.get("completed_by")
            if isinstance(by, dict):
                by = by.get("email") or by.get("id")
            when = ann.get("updated_at") or ann.get("created_at")
            try:
                ts = datetime.fromisoformat(str(when).replace("Z", "+00:00")).timestamp() if when else 0.0
            except ValueError:
                ts = 0.0
            out.append({"clip_id": cid, "annotator": f"labelstudio:{by}", "decided_at": ts, "decision": got.get("decision"),
                        "reason": got.get("reason"), "new_caption": got.get("caption"), "origin": "labelstudio"})
    return out


def import_(output: str, db_url: str, path: Path, fmt: str) -> tuple[int, int]:
    """Append the decisions in ``path``; returns ``(added, already present)``.

    Raises:
        ValueError: a row names an unknown clip or decision, or carries an invalid caption (nothing is added).
    """
    from curate.review.app import MAX_CAPTION, _no_control

    rows = _labelstudio(path) if fmt == "labelstudio" else _effective(_read_rows(path, fmt))
    source = ClipSource(output)
    queue = Queue(open_db(db_url))
    have = {(h["clip_id"], h["annotator"], round(float(h["decided_at"]), 6), h["decision"]) for h in queue.history()}
    new, dup = [], 0
    for k, r in enumerate(rows, 1):
        cid, who = r.get("clip_id"), str(r.get("annotator") or "").strip()
        if not isinstance(cid, str) or not CLIP_ID.match(cid) or cid not in source.rows:
            raise ValueError(f"{path}: row {k}: clip id {cid!r} is not in {output}")
        if r.get("decision") not in ("approve", "reject"):
            raise ValueError(f"{path}: row {k}: decision {r.get('decision')!r} is not approve or reject")
        if not who or len(who) > 64:
            raise ValueError(f"{path}: row {k}: annotator name missing or longer than 64 characters")
        caption = r.get("new_caption")
        if caption is not None:
            caption = str(caption).strip()
            if len(caption) > MAX_CAPTION:
                raise ValueError(f"{path}: row {k}: caption longer than {MAX_CAPTION} characters")
            _no_control(caption)
        when = float(r.get("decided_at") or 0.0)
        key = (cid, who, round(when, 6), r["decision"])
        if key in have:
            dup += 1
            continue
        have.add(key)
        new.append({"clip_id": cid, "annotator": who, "decided_at": when, "decision": r["decision"],
                    "reason": r.get("reason") or ("rejected" if r["decision"] == "reject" else None),
                    "old_caption": source.rows[cid].get("caption") or "", "new_caption": caption or None,
                    "shard_version": r.get("shard_version"), "undoes": None, "origin": r.get("origin") or "import"})
    queue.record(new)
    return len(new), dup
