"""A small finished OUTPUT and pipelines with a latents section, shared by the latent-cache tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from curate.config import PipelineConfig, load_pipeline
from curate.run import run_pipeline
from tests.pipeline_helpers import make_inputs

MODEL_FREE = Path(__file__).resolve().parents[1] / "pipelines" / "model-free.yaml"
BUCKETS = [{"num_frames": 9, "height": 64, "width": 64}, {"num_frames": 5, "height": 32, "width": 48}]


def finished_output(root: Path, videos: int = 2) -> Path:
    """A model-free run over ``videos`` synthetic videos (2 clips each), small shards so commits are many."""
    out = root / "out"
    if not (out / "manifest.json").is_file():
        make_inputs(root / "in", videos)
        data = yaml.safe_load(MODEL_FREE.read_text())
        data.update(clips={"min_s": 1.0, "max_s": 4.0, "trim_frames": 2}, output={"shard_size_mb": 0.05, "row_group_rows": 4},
                    limits={"video_timeout_s": 60})
        path = root / "run.yaml"
        path.write_text(yaml.safe_dump(data))
        run_pipeline(load_pipeline(path), [str(root / "in")], str(out), runner="local")
    return out


def copy_output(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def with_latents(out: Path, vae: dict[str, Any], **latents: Any) -> PipelineConfig:
    """The pipeline ``out`` was written with plus a latents section (``BUCKETS`` unless given)."""
    data = json.loads((out / "manifest.json").read_text())["config"]
    data["latents"] = {"vae": vae, "buckets": BUCKETS, "batch_size": 2, **latents}
    return PipelineConfig.model_validate(data)


def write_pipeline(config: PipelineConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def assert_cli_refuses_missing_weights(out: Path, config: PipelineConfig, pipeline: Path) -> None:
    """``curate latents OUT PIPELINE`` with missing weights: exit 2 naming them and the download command, OUT untouched."""
    before = (out / "manifest.json").read_bytes()
    write_pipeline(config, pipeline)
    r = subprocess.run([sys.executable, "-m", "curate", "latents", str(out), str(pipeline)], cwd=Path(__file__).resolve().parents[1],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "no weights" in r.stderr and "curate models download" in r.stderr, r.stderr
    assert (out / "manifest.json").read_bytes() == before
