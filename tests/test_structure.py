"""The structure the code promises: layers, the record contract, the stage lifecycle, no hidden global state.

* Layers: nothing under ``curate/output``, ``media``, ``analysis`` or
  ``models`` imports ``curate/stages`` or ``curate/runners``; no import cycle.
* Record contract: walking the shipped pipelines, every key a stage reads was
  written by discovery or an earlier stage; running the model-free one, every
  key a stage declares it writes is there afterwards.
* Lifecycle: both runners call ``teardown`` (in a guard's child too).
* Global state: TransNetV2 leaves RNGs and thread counts as it found them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from curate.config import load_pipeline
from curate.pipeline import build_stages
from curate.stage import VideoStage

REPO = Path(__file__).resolve().parents[1]
LOWER = ("curate.output", "curate.media", "curate.analysis", "curate.models")
UPPER = ("curate.stages", "curate.runners")
# What discovery puts on every record (curate/discover.py); status/reason keys any stage may set.
DISCOVERED = {"uri", "video_id", "size_bytes", "input_meta", "caption", "caption_source", "status", "reason_key",
              "reason", "timings"}


# --- layers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph():
    grimp = pytest.importorskip("grimp")
    return grimp.build_graph("curate", include_external_packages=False)


def test_lower_layers_import_no_stage_or_runner(graph) -> None:
    bad = []
    for low in LOWER:
        for high in UPPER:
            if graph.chain_exists(importer=low, imported=high, as_packages=True):
                bad.append(graph.find_shortest_chain(importer=low, imported=high, as_packages=True))
    assert not bad, f"imports that reach up a layer: {bad}"


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import cycles."""
    adj = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in adj.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(adj):
        if m not in index:
            visit(m)
    return out


def test_no_import_cycles(graph) -> None:
    assert _cycles(graph) == []


# --- record contract ---------------------------------------------------------


@pytest.mark.parametrize("pipeline", ["default.yaml", "model-free.yaml"])
def test_every_key_a_stage_reads_was_written_before(pipeline: str) -> None:
    have = set(DISCOVERED)
    for stage in build_stages(load_pipeline(REPO / "pipelines" / pipeline)):
        missing = [k for k in stage.inputs() if k not in have]
        assert not missing, f"{pipeline}: stage {stage.name} reads {missing}, which no earlier stage writes"
        have |= set(stage.outputs())
    assert {"clips.video", "clips.reject_reasons", "clips.motion_score"} <= have


def test_model_free_stages_write_what_they_declare(tmp_path: Path) -> None:
    from curate import synth
    from curate.discover import discover

    synth.make_video(tmp_path / "v.mp4", [(60, "pan_left"), (60, "moving")], size=(192, 144))
    (video,) = discover([str(tmp_path / "v.mp4")])
    batch = [video]
    for stage in build_stages(load_pipeline(REPO / "pipelines" / "model-free.yaml")):
        stage.timeout_s = None  # in-process: a child is not needed to check keys
        stage.start()
        try:
            batch = stage.process(batch)
        finally:
            stage.stop()
        (rec,) = batch
        assert rec["status"] == "pending", rec.get("reason")
        clip_keys = set.intersection(*(set(c) for c in rec["clips"])) if rec.get("clips") else set()
        kept = [c for c in rec.get("clips") or [] if not c.get("reject_reasons")]
        for key in stage.outputs():
            if key.startswith("clips.") and stage.name == "encode":
                assert all(key[6:] in c for c in kept), (stage.name, key)
            elif key.startswith("clips."):
                assert key[6:] in clip_keys, (stage.name, key)
            else:
                assert key in rec, (stage.name, key)


# --- lifecycle ---------------------------------------------------------------


@dataclass
class Marks(VideoStage):
    """Writes a file at setup and at teardown (in whichever process they run)."""

    name: ClassVar[str] = "marks"
    where: str = ""
    cpus: float = 0.5

    def setup(self) -> None:
        Path(self.where, f"setup-{time.monotonic_ns()}").touch()

    def teardown(self) -> None:
        Path(self.where, f"teardown-{time.monotonic_ns()}").touch()

    def process_video(self, video: dict) -> dict:
        return dict(video, marked=True)


def _videos(n: int) -> list[dict]:
    return [{"video_id": f"v{i}", "uri": f"/x/{i}", "status": "pending"} for i in range(n)]


def _marks(d: Path, kind: str) -> int:
    return len(list(d.glob(f"{kind}-*")))


@pytest.mark.parametrize("timeout_s", [None, 30.0])
def test_local_runner_tears_down_every_stage(tmp_path: Path, timeout_s: float | None) -> None:
    from curate.runners.local import run_local

    out = list(run_local([Marks(where=str(tmp_path), timeout_s=timeout_s)], _videos(3)))
    assert all(v["marked"] for v in out)
    assert _marks(tmp_path, "setup") == 1 and _marks(tmp_path, "teardown") == 1


def test_ray_actor_tears_down_its_stages(tmp_path: Path, ray_session) -> None:
    from curate.runners.ray import run_ray

    out = list(run_ray([Marks(where=str(tmp_path), cpus=1.0)], _videos(3)))
    assert len(out) == 3 and all(v["marked"] for v in out)
    deadline = time.monotonic() + 30  # the pool's actors exit once the dataset is consumed
    while _marks(tmp_path, "teardown") < _marks(tmp_path, "setup") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _marks(tmp_path, "setup") >= 1 and _marks(tmp_path, "teardown") == _marks(tmp_path, "setup")


# --- global state ------------------------------------------------------------


def test_transnet_leaves_rngs_and_threads_as_it_found_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    import numpy as np
    import torch

    from curate.analysis import transnet

    monkeypatch.setattr(transnet, "_MODELS", {})  # the constructor is what seeds the RNGs
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    before = (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(), torch.get_num_threads())
    det = transnet.TransNetDetector(threads=1 if torch.get_num_threads() != 1 else 2)
    frame = np.zeros((108, 192, 3), np.uint8)
    for i in range(80):
        det.process_frame(i, frame)
    det.post_process(79)
    after = (torch.random.get_rng_state(), np.random.get_state()[1], random.getstate(), torch.get_num_threads())
    assert torch.equal(before[0], after[0]) and (before[1] == after[1]).all() and before[2] == after[2]
    assert before[3] == after[3]
