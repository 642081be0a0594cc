"""Missing weights stop a run before any video is opened; random weights only when asked, and marked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.config import load_pipeline
from curate.models.hub import ModelUnavailable
from curate.report import render
from curate.run import run_pipeline
from tests.models_fixtures import tiny_clip  # noqa: F401
from tests.pipeline_helpers import make_inputs
from tests.tiny_pipeline import DEFAULT, tiny_default

HOW = ("curate models download PIPELINE.yaml --output DIR", "--models-dir")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network and an empty models directory: the default pipeline's weights cannot be had."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    empty = tmp_path / "models"
    empty.mkdir()
    return empty


def test_default_pipeline_without_weights_stops_before_any_video(offline: Path, tmp_path: Path, monkeypatch) -> None:
    def no_discovery(*_a, **_k):
        raise AssertionError("inputs were discovered although the models are missing")

    monkeypatch.setattr("curate.run.discover", no_discovery)
    config = load_pipeline(DEFAULT)
    config = config.model_copy(update={"models": config.models.model_copy(update={"dir": offline})})
    with pytest.raises(ModelUnavailable) as e:
        run_pipeline(config, [str(tmp_path / "in")], str(tmp_path / "out"), runner="local")
    msg = str(e.value)
    assert "ViT-B-32" in msg and "sa_0_4_vit_b_32_linear.pth" in msg and all(h in msg for h in HOW)
    assert not (tmp_path / "out").exists()


def test_cli_exits_2_with_the_message_and_writes_nothing(offline: Path, tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 1)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(DEFAULT), "--input", str(tmp_path / "in"), "--output", str(out),
                                      "--runner", "local", "--models-dir", str(offline)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "needs model weights" in text and "curate models download" in text and f"--models-dir {offline}" in text
    assert not out.exists()


def test_models_download_is_mounted() -> None:
    result = CliRunner().invoke(app, ["models", "download", "--help"])
    assert result.exit_code == 0 and "--to" in result.output


def test_random_init_only_when_asked_and_marked(tmp_path: Path, tiny_clip) -> None:  # noqa: F811
    make_inputs(tmp_path / "in", 1)
    config = tiny_default(tmp_path, tiny_clip, clip={"random_init": True, "pretrained": None})
    assert config.random_init
    run_pipeline(config, [str(tmp_path / "in")], str(tmp_path / "out"), runner="local")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["random_init"] is True and manifest["models"]["clip"]["random_init"] is True
    assert "RANDOM weights" in render(str(tmp_path / "out"))
    loaded = tiny_default(tmp_path, tiny_clip)
    assert not loaded.random_init


@pytest.mark.parametrize("text, says", [
    ("aesthetic: {}\n", "need(s) the clip section"),
    ("caption_check: {}\n", "need(s) the clip section"),
    ("caption:\n  kind: clip-retrieval\n", "need(s) the clip section"),
    ("filter:\n  min_aesthetic: 4.5\n", "min_aesthetic needs the aesthetic section"),
    ("dedup:\n  score: caption\n", "dedup.score"),
    ("clip:\n  model: ViT-B-32\n  pretrained: openai\n  random_init: true\n", "random_init"),
])
def test_model_sections_are_checked_when_loaded(tmp_path: Path, text: str, says: str) -> None:
    from curate.config import ConfigError

    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_pipeline(p)


def test_default_stage_order() -> None:
    from curate.pipeline import build_stages

    names = [s.name for s in build_stages(load_pipeline(DEFAULT))]
    assert names == ["probe", "analyse", "text", "clip_embed", "aesthetic", "caption", "filter", "caption_check", "encode"]
