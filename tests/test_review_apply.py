"""``curate review apply``: decisions become a ``review`` version of the shards; idempotent, crash-safe,
and kept by a later refilter or dedup pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.output import shards
from curate.output import manifest as mf
from curate.refilter import refilter
from curate.review.apply import apply_decisions, wilson
from curate.review.clips import ClipSource
from curate.review.db import default_url, open_db
from curate.review.queue import Queue
from curate.review import sampling
from curate.review.settings import ReviewConfig
from curate.validate import validate
from tests.pipeline_helpers import read_table
from tests.review_helpers import config
from tests.test_resume_commit import Crash, crash_on


def tables(out: Path) -> dict[str, set[str]]:
    """Clip ids per table, as the manifest lists them (what readers see)."""
    rows = ClipSource(str(out)).rows
    return {t: {c for c, r in rows.items() if r["_table"] == t} for t in ("clips", "review", "rejected")}


def decide_all(out: Path, plan) -> tuple[str, dict[str, str]]:  # noqa: ANN001 - plan(clip_id, table) -> (decision, caption)
    url = default_url(str(out))
    engine = open_db(url)
    src = ClipSource(str(out))
    sampling.sync(engine, src, ReviewConfig(qa_accepted_rate=1, qa_rejected_rate=1))
    q = Queue(engine)
    before = {cid: row["_table"] for cid, row in src.rows.items()}
    for lease in q.lease("ann", 8):
        decision, caption = plan(lease.clip_id, before[lease.clip_id])
        q.decide("ann", lease.clip_id, lease.token, decision, reason="bad quality" if decision == "reject" else None,
                 new_caption=caption)
    return url, before


def test_apply_moves_clips_records_the_version_and_is_idempotent(review_out: Path) -> None:
    # flagged: approve the first with a new caption, reject the others; QA: reject accepted, approve rejected ones.
    seen: dict[str, int] = {}

    def plan(cid: str, table: str):
        seen[table] = seen.get(table, 0) + 1
        if table == "review":
            return ("approve", "A red square drifts.") if seen[table] == 1 else ("reject", None)
        return ("reject", None) if table == "clips" else ("approve", None)

    url, before = decide_all(review_out, plan)
    r = apply_decisions(str(review_out), url)
    assert r.record is not None and r.changed == 8 and r.missing == 0
    after = tables(review_out)
    assert after["review"] == set()
    kept = read_table(review_out, "clips")
    assert len(kept) == 1 + sum(1 for t in before.values() if t == "rejected")
    human = kept[kept["caption_source"] == "human"]
    assert list(human["caption"]) == ["A red square drifts."] and human["clip_sim_mean"].isna().all()
    rejected = read_table(review_out, "rejected")
    assert len(rejected) == 2 + sum(1 for t in before.values() if t == "clips")
    assert all({"key": "human_review", "detail": "bad quality (by ann)"} in list(rs) for rs in rejected["reject_reasons"])
    assert validate(str(review_out)) == []
    doc = json.loads((review_out / "manifest.json").read_text())
    v = doc["versions"][-1]
    assert v["kind"] == "review" and v["decisions"] == {"approve": 3, "reject": 5} and v["annotators"] == {"ann": 8}
    assert len(v["human"]) == 8 and list(v["captions"].values()) == ["ann"]
    assert v["qa"]["qa_accepted"]["approved"] == 0 and v["qa"]["qa_rejected"]["share"] == 1.0
    state = (review_out / "manifest.json").read_bytes()
    again = apply_decisions(str(review_out), url)
    assert again.record is None and (review_out / "manifest.json").read_bytes() == state  # applying twice changes nothing


def test_human_decisions_outrank_a_later_refilter(review_out: Path) -> None:
    url, before = decide_all(review_out, lambda cid, t: ("approve", None))
    apply_decisions(str(review_out), url)
    kept = tables(review_out)["clips"]
    assert kept == set(before)  # everything approved, the rejected ones encoded again
    strict = config().model_copy(update={"filter": config().filter.model_copy(update={"min_sharpness": 1e9})})
    result = refilter(str(review_out), strict)
    assert result.record is None and tables(review_out)["clips"] == kept  # a threshold does not overrule a person
    assert validate(str(review_out)) == []


def test_killed_apply_is_redone(review_out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = decide_all(review_out, lambda cid, t: ("reject", None))
    before = tables(review_out)
    monkeypatch.setattr("curate.output.store.OutputStore.__exit__", lambda self, *exc: self._lock.release())
    crash_on(monkeypatch, shards, "_rename", lambda src, dst: "/_ledger/" in dst and dst.endswith(".parquet"), skip=0)
    with pytest.raises(Crash):
        apply_decisions(str(review_out), url)
    monkeypatch.undo()
    assert tables(review_out) == before  # nothing committed
    r = apply_decisions(str(review_out), url)
    assert r.record is not None and tables(review_out)["clips"] == set() and validate(str(review_out)) == []


def test_cli_apply(review_out: Path) -> None:
    decide_all(review_out, lambda cid, t: ("approve", None) if t != "clips" else ("reject", None))
    r = CliRunner().invoke(app, ["review", "apply", str(review_out)])
    assert r.exit_code == 0 and "review wrote shard version" in r.output, r.output
    r = CliRunner().invoke(app, ["review", "apply", str(review_out)])
    assert r.exit_code == 0 and "nothing written" in r.output
    assert mf.read(shards.Location.of(str(review_out)))["versions"][-1]["kind"] == "review"


def test_wilson() -> None:
    assert wilson(0, 0) is None
    lo, hi = wilson(9, 10)
    assert 0.55 < lo < 0.6 and 0.98 < hi <= 1.0
