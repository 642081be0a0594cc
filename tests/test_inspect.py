"""inspect: the summary's numbers come from the committed data; render shows them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from curate.inspect import render, summarize
from curate.output import OutputStore
from tests.test_output_store import small_config, write


def text(summary: dict) -> str:
    console = Console(record=True, width=160)
    console.print(render(summary))
    return console.export_text()


def test_summary_matches_the_data(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(str(out))
    s = summarize(str(out))
    json.dumps(s)  # plain data, for --json
    clips = pd.read_parquet(out / "clips")
    assert s["status"] == "completed" and s["shards"]["clips"]["rows"] == len(clips)
    assert s["funnel"]["videos"]["failed"] == 4 and s["funnel"]["clips_rejected"] == {"min_motion": s["shards"]["rejected"]["rows"]}
    motion = s["scores"]["clips"]["motion_score"]
    assert motion["unit"] == "px/frame at analysis.motion_width" and motion["count"] == len(clips)
    values = clips["motion_score"].astype("float64")
    assert motion["min"] == pytest.approx(values.min()) and motion["max"] == pytest.approx(values.max())
    assert [motion[k] for k in ("p10", "median", "p90")] == pytest.approx(np.percentile(values, [10, 50, 90]))
    assert "start_s" not in s["scores"]["clips"] and "sharpness" in s["scores"]["rejected"]


def test_render_shows_counts_reasons_and_scores(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(str(out))
    shown = text(summarize(str(out)))
    for needle in ("committed shards", "funnel", "min_motion", "analyse: VideoOpenFailure", "min_duration_s",
                   "motion_score", "px/frame at analysis.motion_width", "stage timings", "ok"):
        assert needle in shown


def test_empty_output(tmp_path: Path) -> None:
    OutputStore.open(str(tmp_path / "out"), small_config()).close()
    s = summarize(str(tmp_path / "out"))
    assert s["shards"]["clips"] == {"files": 0, "rows": 0, "bytes": 0}
    assert s["scores"]["clips"]["sharpness"]["count"] == 0 and s["scores"]["clips"]["sharpness"]["median"] is None
    assert "sharpness" in text(s)


def test_not_an_output(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        summarize(str(tmp_path))
