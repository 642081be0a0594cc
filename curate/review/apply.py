"""``curate review apply``: the decisions become a new version of the shards (kind ``review``).

Per clip the latest effective decision (approve/reject, not undone, any
annotator) is the verdict, and the latest edited caption the caption:

* approve: no reject or flag reasons (a flagged clip moves to ``clips/``; a
  sampled rejected clip too, encoded from its source);
* reject: the pipeline's reasons plus ``human_review <reason> (by <annotator>)``,
  so the clip is in ``rejected/``;
* an edited caption replaces the old one with ``caption_source = "human"``; the
  caption model columns and the similarity measured on the old caption are cleared.

Committed through :func:`curate.output.rewrite.apply_changes`, the copy-on-write
commit dedup and refilter use, so it is crash-safe the same way. The version
records the decision counts, the annotators, QA and agreement figures and,
per clip, the verdict (``human``) and who wrote the caption (``captions``): the
shard schema stays as it is. A clip whose shard row already matches its verdict
and whose verdict is recorded is left alone, so applying twice writes nothing.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from curate.config import ConfigError, PipelineConfig
from curate.output import manifest as mf
from curate.output.rewrite import apply_changes, read_columns
from curate.output.shards import Location
from curate.output.store import OutputStore, new_run_id
from curate.review import reasons as rs
from curate.review.db import open_db
from curate.review.outrank import captions as recorded_captions
from curate.review.outrank import recorded
from curate.review.queue import Queue

COLUMNS = ["clip_id", "video_id", "reject_reasons", "flag_reasons", "duplicate_of", "caption", "caption_source"]
CAPTION_CLEARED = ("caption_model", "caption_prompt", "caption_version", "clip_sim_mean", "clip_sim_min",
                   "caption_check", "caption_check_reason")


@dataclass(frozen=True)
class Verdict:
    decision: str  # approve | reject
    annotator: str
    reason: str | None
    caption: str | None  # the latest edited caption, None when nobody edited it
    caption_by: str | None


@dataclass(frozen=True)
class ApplyResult:
    record: dict[str, Any] | None  # the version's sidecar; None when nothing changed
    verdicts: int
    changed: int
    missing: int  # decided clips no longer in the committed shards
    version: int | None


def verdicts(rows: list[dict[str, Any]]) -> dict[str, Verdict]:
    """Effective decisions (in id order) -> one verdict per clip."""
    by_clip: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_clip[r["clip_id"]].append(r)
    out = {}
    for cid, rs_ in by_clip.items():
        last = rs_[-1]
        edits = [r for r in rs_ if r.get("new_caption")]
        out[cid] = Verdict(last["decision"], last["annotator"], last.get("reason"),
                           edits[-1]["new_caption"] if edits else None, edits[-1]["annotator"] if edits else None)
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval of a proportion ``k/n``."""
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)


def statistics(rows: list[dict[str, Any]], items: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Decision counts per reason and annotator, double-review agreement and QA figures (cumulative)."""
    final = verdicts(rows)
    reasons = Counter((v.reason or "rejected") if v.decision == "reject" else "approve" for v in final.values())
    per: dict[str, dict[str, str]] = defaultdict(dict)
    for r in rows:
        per[r["clip_id"]][r["annotator"]] = r["decision"]
    multi = [d for d in per.values() if len(d) >= 2]
    agreed = sum(1 for d in multi if len(set(d.values())) == 1)
    qa: dict[str, Any] = {}
    for kind, good in (("qa_accepted", "approve"), ("qa_rejected", "approve")):
        ds = [v.decision for cid, v in final.items() if (items.get(cid) or {}).get("kind") == kind]
        k = sum(1 for d in ds if d == good)
        qa[kind] = {"reviewed": len(ds), "approved": k, "share": round(k / len(ds), 4) if ds else None, "ci95": wilson(k, len(ds))}
    return {
        "decisions": dict(Counter(v.decision for v in final.values())),
        "reasons": dict(reasons),
        "annotators": dict(Counter(r["annotator"] for r in rows)),
        "caption_edits": sum(1 for v in final.values() if v.caption is not None),
        "agreement": {"double_reviewed": len(multi), "agreed": agreed,
                      "rate": round(agreed / len(multi), 4) if multi else None},
        # QA: the share of sampled accepted clips people approve is the pipeline's precision; of sampled
        # rejected clips, the share of good clips it throws away.
        "qa": qa,
    }


def desired(row: dict[str, Any], v: Verdict) -> dict[str, Any]:
    """The columns a verdict gives a clip row."""
    want: dict[str, Any] = {}
    if v.decision == "approve":
        want.update(reject_reasons=[], flag_reasons=None, duplicate_of=None)
    else:
        keep = [r for r in rs.reasons(row, "reject_reasons") if not rs.is_human(r)]
        want.update(reject_reasons=[*keep, rs.human_reason(v.reason or "rejected", v.annotator)])
    if v.caption is not None:
        want.update(caption=v.caption, caption_source="human")
    return want


def _differs(row: dict[str, Any], want: dict[str, Any]) -> bool:
    for k, w in want.items():
        have = row.get(k)
        if k in ("reject_reasons", "flag_reasons"):
            have, w = list(have or []), list(w or [])
        if have != w:
            return True
    return False


@dataclass(frozen=True)
class _Committed:
    """What :func:`read_columns` needs, from the manifest alone (nothing opened for writing)."""

    location: Location
    shards: dict[str, list[dict[str, Any]]]
    schema_params: dict[str, Any]


def _plan(committed: Any, doc: dict[str, Any], final: dict[str, Verdict]) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, str], set[str]]:
    """``(changes, verdicts to record, caption authors to record, decided clips present)``."""
    human, caption_by = recorded(doc), recorded_captions(doc)
    changes: dict[str, dict[str, Any]] = {}
    delta_human: dict[str, str] = {}
    delta_captions: dict[str, str] = {}
    present = set()
    for row in read_columns(committed, COLUMNS).to_pylist():
        cid = row["clip_id"]
        v = final.get(cid)
        if v is None:
            continue
        present.add(cid)
        want = desired(row, v)
        if v.caption is not None and (row.get("caption") != v.caption or row.get("caption_source") != "human"):
            want.update({c: None for c in CAPTION_CLEARED})  # they describe the machine caption
        differs = _differs(row, want)
        if differs or human.get(cid) != v.decision or (v.caption is not None and caption_by.get(cid) != v.caption_by):
            changes[cid] = want if differs else {}  # {}: only the verdict is recorded
            delta_human[cid] = v.decision
            if v.caption is not None:
                delta_captions[cid] = v.caption_by
    return changes, delta_human, delta_captions, present


def apply_decisions(output: str, db_url: str) -> ApplyResult:
    """Commit the decisions in ``db_url`` to ``output`` as a ``review`` version (nothing when none changes).

    Raises:
        ConfigError: ``output`` is not a curate output.
        LockedError: a run or refilter is writing to ``output``.
        RewriteError: an approved rejected clip's source cannot be read; nothing was changed.
    """
    loc = Location.of(output)
    doc = mf.read(loc)
    if doc is None:
        raise ConfigError(f"{output}: no {mf.MANIFEST}; not a curate output")
    queue = Queue(open_db(db_url))
    rows = queue.effective_rows()
    final = verdicts(rows)
    committed = _Committed(loc, doc.get("shards") or {}, (doc.get("schema_params") or {}).get("clip") or {})
    changes, _, _, present = _plan(committed, doc, final)
    if not changes:  # nothing to write: the OUTPUT is left exactly as it is (no run entry either)
        return ApplyResult(record=None, verdicts=len(final), changed=0, missing=len(set(final) - present), version=None)
    config = PipelineConfig.model_validate(doc["config"])
    with OutputStore.open(output, config, run_id=new_run_id(), command="review") as store:
        # Again under the lock, on what the store holds after any recovery.
        changes, delta_human, delta_captions, present = _plan(store, mf.read(loc) or doc, final)
        info = {"kind": "review", "config_hash": config.config_hash(), **statistics(rows, queue.items()),
                "human": delta_human, "captions": delta_captions}
        record = apply_changes(store, changes, info) if changes else None
    versions = (mf.read(loc) or {}).get("versions") or []
    return ApplyResult(record=record, verdicts=len(final), changed=len(changes), missing=len(set(final) - present),
                       version=versions[-1]["version"] if record and versions else None)
