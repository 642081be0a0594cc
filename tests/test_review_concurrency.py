"""Several annotators at once, on SQLite and on a real PostgreSQL server: no clip is held by two people,
no acknowledged decision is lost, and the counts add up."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import insert

from curate.review.db import items, open_db
from curate.review.queue import Queue, StaleLease
from tests.review_helpers import LiveServer, app_for


class Holders:
    """Who holds which clip, as the clients see it; a second holder at once is a collision."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[str, str] = {}
        self.collisions: list[tuple[str, str, str]] = []

    def take(self, clip: str, who: str) -> None:
        with self.lock:
            if self.now.get(clip, who) != who:
                self.collisions.append((clip, self.now[clip], who))
            self.now[clip] = who

    def give(self, clip: str, who: str) -> None:  # before the decision is sent: the server still holds the lease
        with self.lock:
            if self.now.get(clip) == who:
                del self.now[clip]


def _items(n: int, double_every: int) -> list[dict]:
    return [{"clip_id": f"{k:024x}", "kind": "flagged", "video_id": f"v{k % 7}", "source_uri": f"/v{k % 7}.mp4",
             "needed": 2 if k % double_every == 0 else 1, "rate": 1.0, "order_key": f"{(k * 7919) % 1000:016d}",
             "flag_reasons": "pass_min", "added_at": 0.0} for k in range(n)]


def test_annotators_hammering_the_queue(db_url: str) -> None:
    """8 annotators, each with its own engine (as separate servers would), on 150 clips, a third double-reviewed."""
    engine = open_db(db_url)
    with engine.begin() as conn:
        conn.execute(insert(items), _items(150, 3))
    holders, acks, stale = Holders(), [], []
    ack_lock = threading.Lock()
    deadline = time.monotonic() + 120

    def annotator(name: str, seed: int) -> None:
        rnd = random.Random(seed)
        q = Queue(open_db(db_url), lease_s=60)
        while time.monotonic() < deadline and q.counts()["left"] > 0:
            got = q.lease(name, rnd.choice([1, 1, 3]))
            if not got:
                time.sleep(0.005)
                continue
            for lease in got:
                holders.take(lease.clip_id, name)
            for lease in got:
                d = rnd.choices(["approve", "reject", "skip"], [6, 3, 1])[0]
                holders.give(lease.clip_id, name)
                try:
                    did = q.decide(name, lease.clip_id, lease.token, d, reason="bad quality" if d == "reject" else None)
                except StaleLease:
                    stale.append(lease.clip_id)
                    continue
                with ack_lock:
                    acks.append((did, lease.clip_id, name, d))
        q.engine.dispose()

    threads = [threading.Thread(target=annotator, args=(f"a{k}", k)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q = Queue(engine)
    assert holders.collisions == []
    assert stale == []  # leases never expired here, so no decision was refused
    counts = q.counts()
    assert counts["left"] == 0 and counts["done"] == counts["total"] == 200
    hist = {h["id"]: h for h in q.history()}
    assert len(hist) == len(acks) and all(hist[i]["clip_id"] == c and hist[i]["decision"] == d for i, c, _, d in acks)
    eff = q.effective_rows()
    per_clip: dict[str, list[str]] = {}
    for e in eff:
        per_clip.setdefault(e["clip_id"], []).append(e["annotator"])
    needed = {r["clip_id"]: r["needed"] for r in _items(150, 3)}
    assert {c: len(a) for c, a in per_clip.items()} == needed  # exactly as many reviews as wanted
    assert all(len(set(a)) == len(a) for a in per_clip.values())  # by different people
    engine.dispose()


def test_annotators_through_the_http_server(review_out: Path, db_url: str) -> None:
    """6 browsers' worth of requests against a live server: review view and grid batches mixed."""
    app = app_for(review_out, db_url, double_review_rate=0.5)
    holders, acks = Holders(), []
    lock = threading.Lock()
    with LiveServer(app) as base:
        total = httpx.get(f"{base}/api/counts").json()["total"]

        def annotator(name: str, seed: int) -> None:
            rnd = random.Random(seed)
            with httpx.Client(base_url=base, timeout=60) as c:
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline and c.get("/api/counts").json()["left"] > 0:
                    got = c.post("/api/lease", json={"annotator": name, "n": rnd.choice([1, 3])}).json()["clips"]
                    if not got:
                        time.sleep(0.01)
                        continue
                    for g in got:
                        holders.take(g["clip_id"], name)
                    for g in got:
                        holders.give(g["clip_id"], name)
                    decision = rnd.choice(["approve", "reject"])
                    if len(got) > 1:
                        r = c.post("/api/decide_many", json={"annotator": name, "decision": decision, "reason": "unsafe",
                                                             "clips": [{"clip_id": g["clip_id"], "token": g["token"]} for g in got]})
                        assert r.status_code == 200 and r.json()["stale"] == []
                        with lock:
                            acks.extend((g["clip_id"], name) for g in got)
                    else:
                        r = c.post("/api/decide", json={"annotator": name, "clip_id": got[0]["clip_id"], "token": got[0]["token"],
                                                        "decision": decision, "reason": "unsafe"})
                        assert r.status_code == 200, r.text
                        with lock:
                            acks.append((got[0]["clip_id"], name))

        threads = [threading.Thread(target=annotator, args=(f"ann{k}", k)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        counts = httpx.get(f"{base}/api/counts").json()
    assert holders.collisions == []
    assert counts["left"] == 0 and counts["done"] == total == len(acks)
    eff = app.state.queue.effective_rows()
    assert sorted((e["clip_id"], e["annotator"]) for e in eff) == sorted(acks)
