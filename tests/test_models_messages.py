"""Model messages a user meets first: no network is found in a second or two, and the fix names real paths."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.models import hub
from tests.tiny_pipeline import DEFAULT

HEAD_URL = "https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_b_32_linear.pth"
CLIP_FOLDER = "models--timm--vit_base_patch32_clip_224.openai"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> str:
    """The hub endpoint is a closed localhost port (what a machine without network sees, but at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_UNREACHABLE", {})
    import open_clip  # noqa: F401 - imported before the clocks start: they time the network check, not imports

    return endpoint


def test_unreachable_answers_fast(no_network: str) -> None:
    t0 = time.monotonic()
    assert "Connection refused" in hub.unreachable(no_network)
    assert time.monotonic() - t0 < 2


def test_models_download_without_network_says_what_to_copy(no_network: str, tmp_path: Path) -> None:
    to = tmp_path / "models"
    t0 = time.monotonic()
    result = CliRunner().invoke(app, ["models", "download", str(DEFAULT), "--to", str(to)], env={"COLUMNS": "80"})
    took = time.monotonic() - t0
    assert result.exit_code == 2, result.output
    assert took < 4, f"{took:.1f}s to notice there is no network"
    out = result.output
    assert "no network" in out and "Retrying" not in out
    assert f"curate models download {DEFAULT} --output {to}" in out  # the real command, no placeholders
    assert f"{to}/{CLIP_FOLDER}/" in out and f"{to}/aesthetic/sa_0_4_vit_b_32_linear.pth" in out
    assert f"--models-dir {to}" in out and "DIR" not in out.replace("--to", "")
    assert not to.exists()


def test_run_without_weights_prints_unwrapped_real_paths(no_network: str, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    t0 = time.monotonic()
    result = CliRunner().invoke(app, ["run", str(DEFAULT), "--input", str(tmp_path), "--output", str(tmp_path / "out"),
                                      "--runner", "local", "--models-dir", str(models)], env={"COLUMNS": "80"})
    assert result.exit_code == 2, result.output
    assert time.monotonic() - t0 < 4
    out = result.output
    assert HEAD_URL in out, "the URL is broken across lines"
    assert max(len(line) for line in out.splitlines()) > 80  # printed without hard wrapping
    assert f"curate models download {DEFAULT} --output {models}" in out and f"--models-dir {models}" in out
    assert f"{models}/{CLIP_FOLDER}/" in out and "no network" in out
    assert "pipelines/model-free.yaml" in out
    assert "PIPELINE.yaml" not in out and " DIR" not in out
    assert not (tmp_path / "out").exists()
