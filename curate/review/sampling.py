"""Which committed clips enter the review queue, decided by a hash of the clip id (stable, no state).

* every flagged clip (``review/``);
* a QA sample of accepted (``clips/``) and of rejected clips at the ``review:`` rates,
  so decisions measure the pipeline's precision and what it throws away (a
  model-free output flags nothing: there the sample is the queue);
* a share of them (``double_review_rate``) needs two different annotators.

Flagged and sampled clips are interleaved by a hashed order key, so a clip's place
in the queue does not tell the annotator whether it was flagged or sampled.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sqlalchemy import Engine, insert, select

from curate.review import db
from curate.review import reasons as rs
from curate.review.clips import ClipSource
from curate.review.settings import ReviewConfig

KINDS = {"review": "flagged", "clips": "qa_accepted", "rejected": "qa_rejected"}


def draw(seed: int, salt: str, clip_id: str) -> float:
    """A uniform number in [0, 1) fixed by ``(seed, salt, clip_id)``."""
    h = hashlib.sha256(f"{seed}:{salt}:{clip_id}".encode()).hexdigest()
    return int(h[:13], 16) / 16**13


def plan(source: ClipSource, cfg: ReviewConfig) -> list[dict[str, Any]]:
    """The queue items for what ``source`` has committed."""
    rates = {"review": 1.0, "clips": cfg.qa_accepted_rate, "rejected": cfg.qa_rejected_rate}
    now = time.time()
    out = []
    for cid, row in source.rows.items():
        table = row["_table"]
        rate = rates.get(table, 0.0)
        if rate <= 0 or (rate < 1 and draw(cfg.seed, table, cid) >= rate):
            continue
        out.append({
            "clip_id": cid, "kind": KINDS[table], "video_id": row["video_id"], "source_uri": row["source_uri"],
            "needed": 2 if draw(cfg.seed, "double", cid) < cfg.double_review_rate else 1, "rate": rate,
            "order_key": hashlib.sha256(f"{cfg.seed}:order:{cid}".encode()).hexdigest()[:16],
            "flag_reasons": " ".join(sorted({rs.reason_key(r) for r in rs.reasons(row, "flag_reasons")})),
            "added_at": now,
        })
    return out


def sync(engine: Engine, source: ClipSource, cfg: ReviewConfig) -> int:
    """Add the planned items the database lacks (items already there keep their state). Returns how many."""
    want = plan(source, cfg)
    with engine.connect() as conn:
        have = set(conn.execute(select(db.items.c.clip_id)).scalars())
    new = [w for w in want if w["clip_id"] not in have]
    for i in range(0, len(new), 500):
        try:
            with engine.begin() as conn:
                conn.execute(insert(db.items), new[i:i + 500])
        except Exception:  # noqa: BLE001 - another server added some at the same time: one by one
            from sqlalchemy.exc import IntegrityError

            for item in new[i:i + 500]:
                try:
                    with engine.begin() as conn:
                        conn.execute(insert(db.items).values(**item))
                except IntegrityError:
                    pass
    return len(new)
