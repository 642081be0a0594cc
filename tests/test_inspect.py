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
    for needle in ("files", "funnel", "min_motion", "analyse: VideoOpenFailure", "min_duration_s",
                   "motion_score", "px/frame at analysis.motion_width", "stage timings", "counts consistent"):
        assert needle in shown


def test_empty_output(tmp_path: Path) -> None:
    OutputStore.open(str(tmp_path / "out"), small_config()).close()
    s = summarize(str(tmp_path / "out"))
    assert s["shards"]["clips"] == {"files": 0, "rows": 0, "bytes": 0}
    assert s["scores"]["clips"]["sharpness"]["count"] == 0 and s["scores"]["clips"]["sharpness"]["median"] is None
    assert not any(line.startswith("sharpness") for line in text(s).splitlines())  # no values, no row


def test_not_an_output(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        summarize(str(tmp_path))


@pytest.fixture(scope="module")
def run_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model-free run (local runner) over two small synthetic videos."""
    from curate.run import run_pipeline
    from tests.pipeline_helpers import make_inputs
    from tests.test_refilter import model_free

    root = tmp_path_factory.mktemp("inspect")
    make_inputs(root / "in", 2)
    run_pipeline(model_free(), [str(root / "in")], str(root / "out"), runner="local")
    return root / "out"


def at_80(summary: dict) -> list[str]:
    console = Console(record=True, width=80)
    console.print(render(summary))
    return console.export_text().splitlines()


def test_fits_80_columns_and_shows_only_what_has_data(run_out: Path) -> None:
    s = summarize(str(run_out))
    lines = at_80(s)
    shown = "\n".join(lines)
    assert max(len(line) for line in lines) <= 80 and "…" not in shown
    assert len(lines) < 60, len(lines)
    rows = {line.split()[0] for line in lines if line.strip()}
    for table in ("clips", "rejected"):
        for col, st in s["scores"][table].items():
            if st["count"] and col not in ("fps", "source_fps"):
                assert col in rows, f"{col} is not shown whole"
    assert s["scores"]["clips"]["aesthetic_score"]["count"] == 0 and "aesthetic_score" not in shown
    assert s["shards"]["review"]["rows"] == 0 and "review" not in shown  # nothing flagged: no flagged rows or table
    assert "videos rejected" not in shown and "failed" not in shown
    assert "shard version 0 (run," in shown and "min_motion 0.15" in shown and "phash ≤ 4" in shown
    stages = [line.split()[0] for line in shown.split("stage timings", 1)[1].splitlines()[3:] if line.strip()]
    assert stages == ["probe", "analyse", "filter", "encode"]


def test_shows_the_current_version_and_thresholds(run_out: Path, tmp_path: Path) -> None:
    import shutil

    from curate.refilter import refilter
    from tests.test_refilter import model_free

    out = tmp_path / "out"
    shutil.copytree(run_out, out)
    refilter(str(out), model_free(min_sharpness=1e9))
    shown = "\n".join(at_80(summarize(str(out))))
    assert "shard version 1 (refilter," in shown and "min_sharpness 1e+09" in shown


def test_cli_at_80_columns(run_out: Path) -> None:
    from typer.testing import CliRunner

    from curate.cli import app

    result = CliRunner().invoke(app, ["inspect", str(run_out)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in result.output and len(lines) < 60


@pytest.mark.parametrize("what", ["missing", "empty"])
def test_cli_not_an_output_is_one_line(tmp_path: Path, what: str) -> None:
    from typer.testing import CliRunner

    from curate.cli import app

    target = tmp_path / what
    if what == "empty":
        target.mkdir()
    result = CliRunner().invoke(app, ["inspect", str(target)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"error: {target}: " + ("no such directory" if what == "missing" else "no manifest.json; not a curate output")]
