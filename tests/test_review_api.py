"""The review app's HTTP API: leases, decisions, undo, ranges, validation and access control (SQLite)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from curate.review.clips import parse_range
from curate.review.db import default_url
from tests.review_helpers import FLAG_DETAIL, app_for


@pytest.fixture
def client(review_out: Path) -> TestClient:
    return TestClient(app_for(review_out, default_url(str(review_out))), raise_server_exceptions=False)


def lease(c: TestClient, who: str, n: int = 1, **kw) -> list[dict]:
    r = c.post("/api/lease", json={"annotator": who, "n": n, **kw})
    assert r.status_code == 200, r.text
    return r.json()["clips"]


def decide(c: TestClient, who: str, clip: dict, decision: str = "approve", **kw):
    return c.post("/api/decide", json={"annotator": who, "clip_id": clip["clip_id"], "token": clip["token"], "decision": decision, **kw})


def test_queue_holds_flagged_and_qa_samples_and_counts_add_up(client: TestClient, review_out: Path) -> None:
    assert client.get("/api/counts").json() == {"total": 8, "done": 0, "left": 8, "leased": 0, "mine": 0}
    clips = lease(client, "ann", 8)
    assert len({c["clip_id"] for c in clips}) == 8
    assert "kind" not in clips[0] and "table" not in clips[0]["info"]  # a QA sample looks like any other clip
    flagged = [c for c in clips if FLAG_DETAIL in c["info"]["reasons"]]
    assert len(flagged) == 3
    for k, c in enumerate(clips):
        assert decide(client, "ann", c, "approve" if k % 2 else "reject", reason="bad quality").status_code == 200
    assert client.get("/api/counts?annotator=ann").json() == {"total": 8, "done": 8, "left": 0, "leased": 0, "mine": 8}
    assert lease(client, "ann") == [] and lease(client, "bob") == []


def test_a_leased_clip_goes_to_nobody_else_until_it_expires(review_out: Path) -> None:
    c = TestClient(app_for(review_out, default_url(str(review_out)), lease_s=1.0))
    mine = lease(c, "ann", 8)
    assert len(mine) == 8 and lease(c, "bob") == []
    time.sleep(1.2)
    theirs = lease(c, "bob", 1)
    assert len(theirs) == 1
    stolen = next(x for x in mine if x["clip_id"] == theirs[0]["clip_id"])
    r = decide(c, "ann", stolen)
    assert r.status_code == 409 and "not leased to you" in r.json()["detail"]
    assert decide(c, "bob", theirs[0]).status_code == 200
    assert decide(c, "bob", theirs[0]).status_code == 409  # decided: the lease is gone


def test_skip_undo_and_caption_edit(client: TestClient) -> None:
    first = lease(client, "ann")[0]
    assert decide(client, "ann", first, "skip").status_code == 200
    second = lease(client, "ann")[0]
    assert second["clip_id"] != first["clip_id"]  # skipped clips come last
    assert decide(client, "ann", second, "approve", caption="  A dog runs on a beach.  ").status_code == 200
    r = client.post("/api/undo", json={"annotator": "ann"})
    assert r.status_code == 200 and r.json()["clip"]["clip_id"] == second["clip_id"]
    again = r.json()["clip"]
    assert decide(client, "ann", again, "reject", reason="caption wrong").status_code == 200
    from curate.review.queue import Queue

    q: Queue = client.app.state.queue
    eff = q.effective_rows()
    assert [(e["clip_id"], e["decision"], e["reason"]) for e in eff] == [(second["clip_id"], "reject", "caption wrong")]
    hist = q.history()
    assert [h["decision"] for h in hist] == ["skip", "approve", "undo", "reject"]
    assert hist[1]["new_caption"] == "A dog runs on a beach." and hist[2]["undoes"] == hist[1]["id"]
    assert client.post("/api/undo", json={"annotator": "nobody"}).status_code == 409


@pytest.mark.parametrize("body, fragment", [
    ({"annotator": "", "n": 1}, "annotator"),
    ({"annotator": "a\x00b", "n": 1}, "control"),
    ({"annotator": "x" * 65, "n": 1}, "annotator"),
    ({"annotator": "ann", "n": 0}, "n"),
    ({"annotator": "ann", "n": 1, "extra": 1}, "extra"),
])
def test_malformed_lease_requests_get_422(client: TestClient, body: dict, fragment: str) -> None:
    r = client.post("/api/lease", json=body)
    assert r.status_code == 422 and fragment in r.json()["detail"]


def test_bad_decisions_get_4xx_never_500(client: TestClient) -> None:
    c = lease(client, "ann")[0]
    bad = [
        ({"caption": "line\x07bell"}, 422), ({"caption": "x" * 2001}, 422), ({"decision": "maybe"}, 422),
        ({"clip_id": "../../etc/passwd"}, 422), ({"clip_id": "deadbeefdeadbeef"}, 404), ({"token": "0" * 16}, 409),
    ]
    for change, code in bad:
        body = {"annotator": "ann", "clip_id": c["clip_id"], "token": c["token"], "decision": "approve", **change}
        r = client.post("/api/decide", json=body)
        assert r.status_code == code, (change, r.text)
        assert "Traceback" not in r.text and r.json()["detail"]
    assert client.post("/api/decide", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/api/decide", content=b"\xff\xfe", headers={"content-type": "application/json"}).status_code == 422
    assert client.get("/api/clips/deadbeefdeadbeef/video.mp4").status_code == 404
    assert client.get("/api/clips/..%2F..%2Fmanifest.json/thumb.jpg").status_code == 404
    assert client.get("/static/../manifest.json").status_code == 404
    assert decide(client, "ann", c).status_code == 200  # the lease survived the bad requests


def test_clip_bytes_with_range_requests_and_thumbnails(client: TestClient) -> None:
    c = lease(client, "ann")[0]
    whole = client.get(f"/api/clips/{c['clip_id']}/video.mp4")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes" and whole.content[4:8] == b"ftyp"
    n = len(whole.content)
    part = client.get(f"/api/clips/{c['clip_id']}/video.mp4", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{n}"
    tail = client.get(f"/api/clips/{c['clip_id']}/video.mp4", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    assert client.get(f"/api/clips/{c['clip_id']}/video.mp4", headers={"Range": f"bytes={n}-"}).status_code == 416
    thumb = client.get(f"/api/clips/{c['clip_id']}/thumb.jpg")
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    info = client.get(f"/api/clips/{c['clip_id']}").json()
    assert any(n["current"] for n in info["neighbours"]) and info["scores"]


def test_rejected_qa_clip_is_encoded_from_its_source(client: TestClient) -> None:
    clips = lease(client, "ann", 8)
    rows = client.app.state.source.rows
    rejected = [c for c in clips if rows[c["clip_id"]]["_table"] == "rejected"]
    assert rejected and all(c["info"]["reasons"] == [] for c in rejected)  # the pipeline's verdict is not shown
    r = client.get(f"/api/clips/{rejected[0]['clip_id']}/video.mp4")
    assert r.status_code == 200 and r.content[4:8] == b"ftyp"


def test_parse_range() -> None:
    assert parse_range(None, 10) is None and parse_range("bytes=0-1,3-4", 10) is None
    assert parse_range("bytes=2-", 10) == (2, 9) and parse_range("bytes=5-100", 10) == (5, 9)
    for bad in ("bytes=10-", "bytes=5-2", "bytes=-0"):
        with pytest.raises(ValueError):
            parse_range(bad, 10)


def test_access_token(review_out: Path) -> None:
    c = TestClient(app_for(review_out, default_url(str(review_out)), token="s3cret-token-123"))
    assert c.get("/api/counts").status_code == 401
    assert c.get("/api/counts", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/counts", headers={"Authorization": "Bearer s3cret-token-123"}).status_code == 200
    assert c.get("/?token=s3cret-token-123").status_code == 200  # sets the cookie the page then uses
    assert c.get("/api/counts").status_code == 200


def test_double_review_needs_two_people_and_reports_agreement(review_out: Path) -> None:
    c = TestClient(app_for(review_out, default_url(str(review_out)), double_review_rate=1.0))
    assert c.get("/api/counts").json()["total"] == 16
    for who in ("ann", "bob"):
        clips = lease(c, who, 8)
        assert len(clips) == 8
        for clip in clips:
            assert decide(c, who, clip, "approve" if who == "ann" or clip["clip_id"] < "8" else "reject", reason="bad quality").status_code == 200
    assert lease(c, "cid") == [] and c.get("/api/counts").json()["left"] == 0
    from curate.review.apply import statistics

    q = c.app.state.queue
    stats = statistics(q.effective_rows(), q.items())
    agree = stats["agreement"]
    assert agree["double_reviewed"] == 8 and 0 <= agree["agreed"] <= 8


def test_serve_refuses_a_public_bind_without_token(review_out: Path) -> None:
    from typer.testing import CliRunner

    from curate.cli import app

    r = CliRunner().invoke(app, ["review", "serve", str(review_out), "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "access token" in r.output


def test_queue_filters_by_reason_video_and_score(client: TestClient, review_out: Path) -> None:
    cfg = client.get("/api/config").json()
    assert cfg["filter_reasons"] == ["pass_min"] and "v0.mp4" in cfg["videos"]

    def only(who: str, **filters) -> list[dict]:
        got = lease(client, who, 8, **filters)
        for c in got:  # give them back, so the next filter sees every clip
            assert decide(client, who, c, "skip").status_code == 200
        return got

    flagged = only("ann", reason="pass_min")
    assert len(flagged) == 3 and all(FLAG_DETAIL in c["info"]["reasons"] for c in flagged)
    in_v1 = only("bob", video="v1.mp4")
    assert in_v1 and len(in_v1) < 8 and all(c["info"]["source"] == "v1.mp4" for c in in_v1)
    sharp = only("cid", scores={"sharpness": [1000, None]})
    assert 0 < len(sharp) < 8 and all(next(s for s in c["info"]["scores"] if s["name"] == "sharpness")["value"] >= 1000 for c in sharp)
    assert client.post("/api/lease", json={"annotator": "x", "scores": {"sharpness": [1]}}).status_code == 422


def test_renew_keeps_a_lease(review_out: Path) -> None:
    c = TestClient(app_for(review_out, default_url(str(review_out)), lease_s=1.0))
    mine = lease(c, "ann")[0]
    for _ in range(3):
        time.sleep(0.5)
        r = c.post("/api/renew", json={"annotator": "ann", "clip_id": mine["clip_id"], "token": mine["token"]})
        assert r.status_code == 200
    assert mine["clip_id"] not in [x["clip_id"] for x in lease(c, "bob", 8)]
    assert c.post("/api/renew", json={"annotator": "bob", "clip_id": mine["clip_id"], "token": mine["token"]}).status_code == 409


def test_review_settings_from_the_yaml_and_the_command_line(tmp_path: Path) -> None:
    from curate.config import PipelineConfig, load_pipeline
    from curate.config_diff import differences
    from curate.review.cli import _review_config

    p = tmp_path / "p.yaml"
    p.write_text("review:\n  qa_accepted_rate: 0.5\n  reject_reasons: [blurry, wrong caption]\n")
    assert load_pipeline(p).review.reject_reasons == ["blurry", "wrong caption"]
    cfg = _review_config({"config": {}}, p, {"qa_accepted_rate": None, "lease_s": 30.0})
    assert cfg.qa_accepted_rate == 0.5 and cfg.lease_s == 30.0
    cfg = _review_config({"config": {}}, p, {"qa_accepted_rate": 0.1})
    assert cfg.qa_accepted_rate == 0.1
    diffs = differences(PipelineConfig().model_dump(mode="json"), load_pipeline(p).model_dump(mode="json"))
    assert diffs and {d.kind for d in diffs} == {"operational"}  # never forces a re-run or a refilter
