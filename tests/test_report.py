"""``curate report``: one self-contained HTML page with funnel, histograms, contact sheets and timings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from curate.config import PipelineConfig
from curate.dedup import dedup_output
from curate.output import OutputStore
from curate.records import reason
from curate.report import SHEET_CAP, render, thresholds, write_report
from tests.test_output_store import fake_video


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 fake videos: ~1/3 of clips rejected by motion, every 4th kept one flagged, two exact duplicates."""
    path = tmp_path_factory.mktemp("report") / "out"
    config = PipelineConfig.model_validate({"dedup": {"score": "sharpness"}})
    with OutputStore.open(str(path), config) as store:
        for i in range(40):
            video = fake_video(i)
            for k, clip in enumerate(video["clips"]):
                if not clip["reject_reasons"] and (i + k) % 4 == 0:
                    clip["flag_reasons"] = [reason("pass_min", "clip_sim_mean 0.180 < pass_min 0.22")]
            if i == 1:  # a kept clip of video 1 becomes an exact copy of a kept clip of video 0
                twin = next(c for c in fake_video(0)["clips"] if not c["reject_reasons"])
                next(c for c in video["clips"] if not c["reject_reasons"])["phash"] = twin["phash"]
            store.add(video)
        store.commit()
        dedup_output(store)
    return path


def sections(page: str) -> dict[str, str]:
    """Contact-sheet title -> its HTML."""
    parts = re.split(r"<h3>", page.split("<h2>Contact sheets</h2>", 1)[1].split("<h2>", 1)[0])
    return {p.split(" <span", 1)[0]: p for p in parts[1:]}


def test_page_is_self_contained_and_complete(out: Path) -> None:
    page = render(str(out))
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page) and "<script" not in page and "<link" not in page
    assert "clips in:" in page and "Stage timings" in page and "analyse" in page
    sheets = sections(page)
    assert {"kept", "flagged", "dropped: min_motion"} <= set(sheets)
    assert all(s.count('class="tile"') <= SHEET_CAP for s in sheets.values())
    assert sheets["kept"].count('class="tile"') == SHEET_CAP and "data:image/jpeg;base64," in sheets["kept"]
    assert any("duplicate" in title for title in sheets), "exact duplicates get a sheet of their own"
    assert "Versions of the shards" in page and "dedup" in page


def test_histograms_draw_every_score_with_its_thresholds(out: Path) -> None:
    page = render(str(out))
    scores = page.split("<h2>Scores</h2>", 1)[1].split("<h2>", 1)[0]
    for column in ("motion_score", "sharpness", "brightness", "frozen_fraction"):  # titled with the schema's unit
        assert re.search(rf"<b>{column} \([^<]+\)</b><svg", scores), column
    assert "min_motion = 0.15" in scores and "max_brightness = 0.97" in scores
    assert "aesthetic_score" not in scores  # no values: no histogram


def test_thresholds_follow_the_config() -> None:
    config = PipelineConfig.model_validate({"clip": {"random_init": True, "pretrained": None}, "aesthetic": {},
                                            "caption_check": {"statistic": "min", "pass_min": 0.3, "reject_below": 0.1},
                                            "filter": {"min_aesthetic": 4.5, "min_motion": None}})
    t = thresholds(config.model_dump(mode="json"))
    assert t["clip_sim_min"] == [("reject_below", 0.1), ("pass_min", 0.3)]
    assert t["aesthetic_score"] == [("min_aesthetic", 4.5)] and "motion_score" not in t


def test_write_report_default_location(out: Path, tmp_path: Path) -> None:
    assert Path(write_report(str(out))) == out / "report.html"
    assert write_report(str(out), tmp_path / "x" / "r.html") == str(tmp_path / "x" / "r.html")
    with pytest.raises(FileNotFoundError):
        render(str(tmp_path / "missing"))


def tiles(section: str) -> list[tuple[str, str]]:
    """``(title attribute, score label)`` of each tile of a contact sheet."""
    from html import unescape

    found = re.findall(r'<div class="tile" title="([^"]*)">.*?<div class=score>([^<]*)</div>', section, re.S)
    return [(unescape(t), unescape(label)) for t, label in found]


def test_tiles_show_the_score_that_decided_and_where_they_come_from(out: Path) -> None:
    sheets = sections(render(str(out)))
    motion = tiles(sheets["dropped: min_motion"])
    assert motion and all(label.startswith("motion ") for _, label in motion), motion[:3]
    for title, label in motion:  # the clip's motion_score, as its reject reason states it
        stated = float(re.search(r"motion_score (\S+) < min_motion", title).group(1))
        assert abs(float(label.split()[1]) - stated) <= 0.006, (label, title)
    assert all(label.startswith("sharpness ") for _, label in tiles(sheets["kept"]))  # dedup.score ranks kept clips
    assert all(label.startswith("clip_sim_mean ") for _, label in tiles(sheets["flagged"]))
    dup = next(s for t, s in sheets.items() if "duplicate" in t)
    assert all(label.startswith("phash distance ") for _, label in tiles(dup))
    for title, _ in motion:  # hover: source file and time span
        assert re.match(r"v\d+\.mp4  \d+\.\d\d–\d+\.\d\d s\n/data/v\d+\.mp4\nclip ", title), title


def test_tiles_have_equal_heights() -> None:
    from curate.report import _CSS

    tile = re.search(r"\.tile\{([^}]*)\}", _CSS).group(1)
    img = re.search(r"\.tile img,\.tile \.noimg\{([^}]*)\}", _CSS).group(1)
    assert "height:146px" in tile and "overflow:hidden" in tile
    assert "height:90px" in img and "object-fit:contain" in img  # any aspect ratio fits the same box


def test_stage_timings_in_pipeline_order(out: Path) -> None:
    from curate.config import load_pipeline
    from curate.pipeline import STAGE_ORDER, build_stages
    from tests.tiny_pipeline import DEFAULT

    # every stage but latents, which needs a VAE the default pipeline does not name
    assert [s.name for s in build_stages(load_pipeline(DEFAULT))] == [n for n in STAGE_ORDER if n != "latents"]
    timings = render(str(out)).split("<h2>Stage timings</h2>", 1)[1].split("<h2>", 1)[0]
    assert re.findall(r"<tr><td>(\w+)</td>", timings) == ["probe", "analyse"]


def test_versions_table_is_readable(out: Path) -> None:
    page = render(str(out))
    versions = page.split("<h2>Versions of the shards</h2>", 1)[1].split("<h2>", 1)[0]
    assert "{" not in versions and "clips-&gt;" not in versions
    assert "<th>thresholds changed (before → after)</th>" in versions
    assert "dedup pass: phash ≤ 4" in versions and "kept → dropped" in versions


def test_an_older_report_is_marked_stale(out: Path, tmp_path: Path) -> None:
    import shutil

    from curate.report import report_freshness

    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (copy / "report.html").unlink(missing_ok=True)
    assert report_freshness(str(copy)) is None
    write_report(str(copy))
    assert report_freshness(str(copy)) == (False, f"{copy}/report.html is up to date")
    with OutputStore.open(str(copy), PipelineConfig.model_validate({"dedup": {"score": "sharpness"}})) as store:
        store.add(fake_video(100))  # OUTPUT changes after the report was built
    stale, message = report_freshness(str(copy))
    assert stale and f"curate report {copy}" in message and "stale" in message
