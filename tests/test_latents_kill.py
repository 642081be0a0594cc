"""kill -9 of ``curate latents`` at random moments, then the same command: exactly one latent row per clip, VAE and bucket."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.validate import validate
from tests.latents_helpers import BUCKETS, copy_output, finished_output, with_latents, write_pipeline
from tests.test_latents import _latent_rows
from tests.vae_fixtures import tiny_vae

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("latents-kill")
    out = finished_output(root, videos=3)
    vae = {"id": "kl", "kind": "AutoencoderKL", "model": str(tiny_vae(root / "vae", "AutoencoderKL"))}
    config = with_latents(out, vae, batch_size=1)
    # a commit per clip and bucket (latents of ~5 KB > 2 KB shards): kills land inside commits too
    config = config.model_copy(update={"output": config.output.model_copy(update={"shard_size_mb": 0.002})})
    return out, write_pipeline(config, root / "latents.yaml")


def _start(out: Path, pipeline: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "curate", "latents", str(out), str(pipeline)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_during_latents_then_rerun(made, tmp_path: Path, seed: int):
    src, pipeline = made
    out = copy_output(src, tmp_path / "out")
    rng = random.Random(seed)
    committed = []
    for _ in range(3):
        before = len(list((out / "latents").glob("*.parquet"))) if (out / "latents").is_dir() else 0
        proc = _start(out, pipeline)
        deadline = time.monotonic() + 300
        # wait for this pass's first commit (imports and the VAE load take seconds), then kill within a few
        # commits: on a quiet machine the rest of the pass takes well under a second
        while proc.poll() is None and time.monotonic() < deadline and len(list((out / "latents").glob("*.parquet"))) <= before:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        committed.append(len(_latent_rows(out)))
    assert _start(out, pipeline).wait(timeout=600) == 0
    rows = _latent_rows(out)
    clips = json.loads((out / "manifest.json").read_text())["funnel"]["clips"]["accepted"]
    assert len(rows) == clips * len(BUCKETS) and not rows.duplicated(["clip_id", "vae", "bucket"]).any()
    assert validate(str(out)) == []
    assert any(0 < n < len(rows) for n in committed), f"no kill landed mid-pass: rows after each kill {committed}"
