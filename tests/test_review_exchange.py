"""Decisions exported and imported as JSONL and CSV; the queue as Label Studio tasks and its annotations back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.review.apply import verdicts
from curate.review.db import open_db
from curate.review.exchange import export, import_
from curate.review.queue import Queue
from tests.test_review_apply import decide_all


def _verdicts(url: str) -> dict:
    return {c: (v.decision, v.caption) for c, v in verdicts(Queue(open_db(url)).effective_rows()).items()}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_round_trip(review_out: Path, tmp_path: Path, suffix: str) -> None:
    url, _ = decide_all(review_out, lambda cid, t: ("approve", "Ein Hund, ünïcødé") if cid < "8" else ("reject", None))
    q = Queue(open_db(url))
    lease = q.lease("bob", 1)
    if lease:
        q.decide("bob", lease[0].clip_id, lease[0].token, "approve")
    q.undo("ann")  # an undone decision is not carried over
    f = tmp_path / f"d{suffix}"
    r = CliRunner().invoke(app, ["review", "export", str(review_out), "-o", str(f)])
    assert r.exit_code == 0, r.output
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert import_(str(review_out), other, f, suffix[1:])[0] == len(_verdicts(url))
    assert _verdicts(other) == _verdicts(url)
    assert import_(str(review_out), other, f, suffix[1:]) == (0, len(_verdicts(url)))  # twice adds nothing


def test_bad_import_rows_are_refused(review_out: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"clip_id": "0" * 24, "annotator": "a", "decided_at": 1, "decision": "approve"}) + "\n")
    with pytest.raises(ValueError, match="not in"):
        import_(str(review_out), url, f, "jsonl")
    r = CliRunner().invoke(app, ["review", "import", str(review_out), str(f), "--db", url])
    assert r.exit_code == 2 and "not in" in r.output


def test_label_studio_tasks_and_annotations(review_out: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ls.sqlite'}"
    from curate.review import sampling
    from curate.review.clips import ClipSource
    from curate.review.settings import ReviewConfig

    sampling.sync(open_db(url), ClipSource(str(review_out)), ReviewConfig(qa_accepted_rate=1, qa_rejected_rate=1))
    tasks_file = tmp_path / "tasks.json"
    assert export(str(review_out), url, tasks_file, "labelstudio", "http://host:1/") == 8
    tasks = json.loads(tasks_file.read_text())
    assert tasks[0]["data"]["video"] == f"http://host:1/api/clips/{tasks[0]['data']['clip_id']}/video.mp4"
    # what Label Studio exports once two tasks are annotated (one cancelled annotation ignored)
    tasks[0]["annotations"] = [{"completed_by": {"email": "eve@example.org"}, "created_at": "2026-11-26T08:00:00Z", "result": [
        {"from_name": "decision", "to_name": "video", "type": "choices", "value": {"choices": ["Reject"]}},
        {"from_name": "reason", "to_name": "video", "type": "textarea", "value": {"text": ["watermark"]}}]}]
    tasks[1]["annotations"] = [
        {"completed_by": 7, "created_at": "2026-11-26T08:01:00Z", "result": [
            {"from_name": "decision", "to_name": "video", "type": "choices", "value": {"choices": ["approve"]}},
            {"from_name": "caption", "to_name": "video", "type": "textarea", "value": {"text": ["A cat sleeps."]}}]},
        {"completed_by": 8, "was_cancelled": True, "result": []}]
    export_file = tmp_path / "ls-export.json"
    export_file.write_text(json.dumps(tasks))
    r = CliRunner().invoke(app, ["review", "import", str(review_out), str(export_file), "--db", url])
    assert r.exit_code == 0 and "imported 2" in r.output, r.output
    v = _verdicts(url)
    assert v == {tasks[0]["data"]["clip_id"]: ("reject", None), tasks[1]["data"]["clip_id"]: ("approve", "A cat sleeps.")}
    rows = Queue(open_db(url)).effective_rows()
    assert {r["annotator"] for r in rows} == {"labelstudio:eve@example.org", "labelstudio:7"}
    assert export(str(review_out), url, tasks_file, "labelstudio") == 6  # decided clips leave the task list
