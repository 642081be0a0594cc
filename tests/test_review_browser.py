"""End to end in a real headless browser (Debian's chromium via Playwright): play a clip, decide by keyboard
in the review view and in grid mode, then ``curate review apply`` and ``curate validate``.

Screenshots of both views go to ``$CURATE_SCREENSHOTS_DIR`` when set (``docs/`` holds the reviewed ones).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.review.clips import ClipSource
from curate.review.db import default_url
from tests.review_helpers import LiveServer, app_for

CHROMIUM = os.environ.get("CURATE_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


def _current(page) -> str:  # noqa: ANN001 - a Playwright page
    return page.evaluate("S.current && S.current.clip_id")


def _next_clip(page, old: str) -> str:  # noqa: ANN001
    page.wait_for_function("old => S.current && S.current.clip_id !== old && !S.busy", arg=old, timeout=15000)
    return _current(page)


def _playing(page) -> None:  # noqa: ANN001
    page.wait_for_function("() => { const v = document.getElementById('video');"
                           " return v.readyState >= 2 && v.currentTime > 0.05 && v.videoWidth > 0; }", timeout=20000)


@pytest.mark.slow
def test_review_in_the_browser_then_apply(review_out: Path, browser, tmp_path: Path) -> None:  # noqa: ANN001
    shots = Path(os.environ.get("CURATE_SCREENSHOTS_DIR") or tmp_path)
    errors: list[str] = []
    decided: dict[str, str] = {}
    with LiveServer(app_for(review_out, default_url(str(review_out)))) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/")
        page.fill("#name", "alice")
        page.press("#name", "Enter")
        _playing(page)  # the clip plays (H.264 decoded by the browser, bytes through range requests)

        a = _current(page)
        page.keyboard.press("a")  # approve
        b = _next_clip(page, a)
        decided[a] = "approve"
        _playing(page)
        page.keyboard.press("e")  # edit the caption, then approve
        page.keyboard.type("A hand-written caption.")
        page.keyboard.press("Escape")
        page.keyboard.press("a")
        c = _next_clip(page, b)
        decided[b] = "approve"
        page.keyboard.press("r")  # reject with the second listed reason
        page.wait_for_selector("#reasons-box:not([hidden])")
        page.keyboard.press("2")
        d = _next_clip(page, c)
        decided[c] = "reject"
        page.keyboard.press("s")  # skip: it comes back last
        e = _next_clip(page, d)
        page.keyboard.press("a")
        _next_clip(page, e)
        page.keyboard.press("u")  # undo: e is back
        page.wait_for_function("e => S.current && S.current.clip_id === e", arg=e, timeout=10000)
        page.keyboard.press("r")
        page.wait_for_selector("#reasons-box:not([hidden])")
        page.keyboard.type("blurry")
        page.keyboard.press("Enter")
        f = _next_clip(page, e)
        decided[e] = "reject"
        _playing(page)
        page.keyboard.press("]")  # faster
        assert page.evaluate("document.getElementById('video').playbackRate") == 1.5
        page.keyboard.press(".")  # frame step pauses and moves one frame
        assert page.evaluate("document.getElementById('video').paused")
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / "review-view.png"))

        page.keyboard.press("g")  # grid mode: the clip on screen and the rest of the queue
        page.wait_for_selector("#grid .tile")
        page.wait_for_function("() => [...document.querySelectorAll('#grid video')].every(v => v.readyState >= 2)", timeout=20000)
        tiles = page.evaluate("S.grid.map(c => c.clip_id)")
        assert f in tiles and d not in tiles
        page.keyboard.press("x")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("x")
        page.screenshot(path=str(shots / "review-grid.png"))
        chosen = page.evaluate("S.grid.filter(c => c.sel).map(c => c.clip_id)")
        assert len(chosen) == 2
        page.keyboard.press("a")
        page.wait_for_function("chosen => S.grid.length && S.grid.every(c => !chosen.includes(c.clip_id))", arg=chosen, timeout=10000)
        decided.update(dict.fromkeys(chosen, "approve"))
        rest = [t for t in tiles if t not in chosen]
        page.keyboard.press("*")  # select all, reject with the first listed reason
        page.keyboard.press("r")
        page.wait_for_selector("#reasons-box:not([hidden])")
        page.keyboard.press("1")
        page.wait_for_function("rest => S.grid.every(c => !rest.includes(c.clip_id))", arg=rest, timeout=10000)
        decided.update(dict.fromkeys(rest, "reject"))
        assert page.evaluate("S.grid.map(c => c.clip_id)") == [d]  # the skipped clip, last
        page.keyboard.press("*")
        page.keyboard.press("a")
        page.wait_for_function("() => S.grid.length === 0", timeout=10000)
        decided[d] = "approve"
        assert "left 0" in page.inner_text("#counts")
    assert errors == []
    assert len(decided) == 8

    r = CliRunner().invoke(app, ["review", "apply", str(review_out)])
    assert r.exit_code == 0, r.output
    rows = ClipSource(str(review_out)).rows
    assert {c: ("approve" if r["_table"] == "clips" else "reject") for c, r in rows.items()} == decided
    assert rows[b]["caption"] == "A hand-written caption." and rows[b]["caption_source"] == "human"
    assert [x["detail"] for x in rows[c]["reject_reasons"] if x["key"] == "human_review"] == ["bad quality (by alice)"]
    assert {"key": "human_review", "detail": "blurry (by alice)"} in list(rows[e]["reject_reasons"])
    r = CliRunner().invoke(app, ["validate", str(review_out)])
    assert r.exit_code == 0 and "is valid" in r.output, r.output
