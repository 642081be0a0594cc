"""``curate shots``: the stored shot lists read back, and the clips re-planned from them without decoding (issue 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from curate.config import PipelineConfig
from curate.run import run_pipeline
from curate.shot_list import summarize
from tests.pipeline_helpers import make_inputs
from tests.test_cli_terminal import run_in_pty


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """A local run over three videos of 60-frame shots joined by hard cuts (clips of 1-4 s)."""
    root = tmp_path_factory.mktemp("shots")
    make_inputs(root / "in", 3)
    config = PipelineConfig.model_validate({"clips": {"min_s": 1.0, "max_s": 4.0}})
    run_pipeline(config, [str(root / "in")], str(root / "out"), runner="local")
    return root / "out"


def _clip_spans(output: Path) -> dict[str, list[tuple[int, int]]]:
    """Each video's clips as the run cut them (kept and rejected), ``[start_frame, end_frame)``."""
    rows = pd.concat([pd.read_parquet(output / t, columns=["source_uri", "start_frame", "end_frame"]) for t in ("clips", "rejected")])
    return {uri: sorted(zip(g.start_frame, g.end_frame)) for uri, g in rows.groupby("source_uri")}


def test_the_runs_own_settings_give_the_runs_clips(output: Path):
    """Re-planned from the stored transitions with the run's clips settings, the windows are the clips the run cut."""
    made = _clip_spans(output)
    for uri in made:
        (v,) = summarize(str(output), video=Path(uri).name)["videos"]
        assert [(p["start_frame"], p["end_frame"]) for p in v["planned"]] == made[uri], uri
        assert v["clips_planned"] == v["clips_run"] == len(made[uri]) and v["cut"] >= 1


def test_other_clip_lengths_give_shorter_windows_that_cross_no_cut(output: Path):
    usual = summarize(str(output))
    short = summarize(str(output), min_s=0.5, max_s=1.0)
    assert short["clips"] == {"min_s": 0.5, "max_s": 1.0, "trim_frames": 2}
    assert sum(v["clips_planned"] for v in short["videos"]) >= 2 * sum(v["clips_planned"] for v in usual["videos"])
    for v in short["videos"]:
        detail = summarize(str(output), video=v["video_id"], min_s=0.5, max_s=1.0)["videos"][0]
        cuts = [t["start_frame"] for t in detail["transitions"] if t["kind"] == "cut"]
        for p in detail["planned"]:
            assert 0.5 - 1e-6 <= p["end_s"] - p["start_s"] <= 1.0 + 1e-6, p
            assert not [c for c in cuts if p["start_frame"] < c < p["end_frame"]], (p, cuts)


def test_shots_from_a_terminal(output: Path):
    status, text = run_in_pty(["shots", str(output)], timeout_s=60)
    assert status == 0, text
    assert all(f"v{i}.mp4" in text for i in range(3)) and "total" in text, text
    status, text = run_in_pty(["shots", str(output), "--video", "v1.mp4", "--min-s", "0.5", "--max-s", "1"], timeout_s=60)
    assert status == 0 and "transitions" in text and "planned clips (frames):" in text, text


def test_json_and_clear_errors(output: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from curate.cli import app

    cli = CliRunner()
    r = cli.invoke(app, ["shots", str(output), "--video", "v2", "--json"])
    assert r.exit_code == 0, r.output
    (v,) = json.loads(r.output)["videos"]
    assert v["uri"].endswith("v2.mp4") and v["planned"] and v["transitions"]
    for args, message in ((["--min-s", "2", "--max-s", "1"], "clips.max_s (1.0) must be >= clips.min_s (2.0)"),
                          (["--min-s", "0"], "clips.min_s: Input should be greater than 0"),
                          (["--video", "nothing-like-it"], "no analysed video")):
        r = cli.invoke(app, ["shots", str(output), *args])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, (args, r.output)
    r = cli.invoke(app, ["shots", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no such directory" in r.output, r.output


def test_an_output_without_shot_lists_says_so(tmp_path: Path):
    """Videos that were never analysed (not a video at all) leave no shot list: one sentence, exit 0."""
    from typer.testing import CliRunner

    from curate.cli import app

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.mp4").write_text("not a video\n" * 50)
    run_pipeline(PipelineConfig(), [str(tmp_path / "in")], str(tmp_path / "out"), runner="local")
    assert summarize(str(tmp_path / "out"))["videos"] == []
    r = CliRunner().invoke(app, ["shots", str(tmp_path / "out")])
    assert r.exit_code == 0 and "has a shot list: none was analysed" in r.output, r.output
