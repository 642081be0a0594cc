"""The Ray runner on a machine with a real GPU: the model stages' actors get it, and the output is the CPU's.

Skipped without CUDA (CI has none); run on a GPU machine with
``pytest -m gpu -s tests/test_ray_gpu.py``. The default pipeline with the
tiny models (``tests/tiny_pipeline.py``) and the combined detector with
TransNetV2 runs through embedded Ray with ``device: auto``; the same pipeline
pinned to the CPU runs through the local runner. nvidia-smi is sampled during
the Ray run to see which processes held GPU memory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from curate.run import run_pipeline
from tests.models_fixtures import tiny_clip  # noqa: F401
from tests.pipeline_helpers import make_inputs, read_table
from tests.test_ray_logging import MAP_OPERATOR, messages
from tests.tiny_pipeline import tiny_default

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# Real shared videos with cuts, dissolves and motion, where ../shared is present.
REAL = ("scene_cuts.mp4", "composite_cuts_dissolve_fade.mp4", "cockatoo.mp4", "carphone_pristine.mp4", "big_buck_bunny_5s.mp4")
MODEL_STAGES = ("analyse", "clip_embed", "caption", "caption_check")  # the stages that declare a GPU share


class GpuProcesses:
    """Polls nvidia-smi in a thread: the most GPU memory (MiB) each process other than this one held."""

    def __init__(self, every_s: float = 0.3) -> None:
        self.seen: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(every_s,), daemon=True)

    def __enter__(self) -> "GpuProcesses":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            rows = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True).stdout.splitlines()
            for row in rows:
                try:
                    pid, mib = (int(x) for x in row.split(","))
                except ValueError:  # "[N/A]" where the driver cannot tell
                    continue
                if pid != os.getpid():
                    self.seen[pid] = max(self.seen.get(pid, 0), mib)


def _inputs(root: Path) -> Path:
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "videos"
    root.mkdir(parents=True)
    if all((shared / name).is_file() for name in REAL):
        for name in REAL:
            shutil.copy(shared / name, root / name)
    else:
        make_inputs(root, 3)
    return root


def _pipeline(tmp: Path, tiny: dict, device: str):
    tmp.mkdir()
    return tiny_default(
        tmp, tiny,
        detector={"kind": "combined", "params": {}, "fades": True, "device": device},
        clip={"device": device, "precision": "fp32"},  # fp32 on both, so the scores compare
        text=None, filter={"max_text_area": None},  # the text stage is CPU-only (PP-OCR through onnxruntime)
        caption_check={"pass_min": -1.0, "reject_below": -1.0},  # open bands: no decision hangs on a last digit
        dedup={"enabled": False},  # run-wide and CPU-only; thresholds on the tiny CLIP sit on last digits
    )


# Where the caption (an argmax over the tiny CLIP's near-equal similarities) differs, so do these.
CAPTION_BOUND = ("caption", "caption_source", "caption_model", "clip_sim_mean", "clip_sim_min", "caption_check",
                 "caption_check_reason", "flag_reasons")


def same_output(a, b, table: str) -> None:
    """The CPU's rows ``a`` and the GPU's ``b``: same clips, spans, pixels; scores within fp32 noise; embeddings cosine > 0.999."""
    assert list(a["clip_id"]) == list(b["clip_id"]), table
    if not len(a) or "caption" not in a:
        return
    same_caption = (a["caption"] == b["caption"]).to_numpy()
    for col in a.columns:
        x, y = (a[col], b[col]) if col not in CAPTION_BOUND else (a[col][same_caption], b[col][same_caption])
        if col == "video":
            continue  # the clip bytes come from the same CPU decode and encode on both
        if col == "embedding":
            e, f = (np.stack(v.to_numpy()).astype(np.float32) for v in (x, y))
            cos = (e * f).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(f, axis=1)
            assert cos.min() > 0.999, (table, cos.min())
        elif x.dtype.kind == "f":
            assert np.allclose(x, y, rtol=1e-3, atol=1e-3, equal_nan=True), (table, col, (x - y).abs().max())
        else:
            assert [str(v) for v in x] == [str(v) for v in y], (table, col)
    print(f"{table}: {len(a)} rows; captions the same on the GPU and the CPU: {int(same_caption.sum())}/{len(a)}")


def test_ray_on_a_gpu_gives_the_cpu_output(tmp_path: Path, tiny_clip):  # noqa: F811
    import ray

    from curate.pipeline import build_stages
    from curate.runners.pools import plan_pools
    from curate.runners.ray import group_stages, init_ray

    inputs = _inputs(tmp_path / "in")
    gpu_cfg = _pipeline(tmp_path / "gpu_cfg", tiny_clip, "auto")

    init_ray(None)
    try:
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        assert sum(n.get("GPU", 0) for n in nodes) >= 1, f"Ray sees no GPU: {nodes}"
        groups = group_stages(build_stages(gpu_cfg))
        pools = {g.name: p for g, p in zip(groups, plan_pools(groups, nodes))}
        print(f"\nRay nodes {nodes}\npools {pools}")
        for stage in MODEL_STAGES:
            name = next(n for n in pools if stage in n.split("+"))
            assert pools[name].gpus > 0, f"{name} got no GPU share: {pools[name]}"
        t0 = time.perf_counter()
        with GpuProcesses() as gpu, messages(MAP_OPERATOR) as notices:
            ray_summary = run_pipeline(gpu_cfg, [str(inputs)], str(tmp_path / "ray"), runner="ray")
        ray_s = time.perf_counter() - t0
    finally:
        ray.shutdown()
    print(f"Ray on the GPU: {ray_s:.1f} s; processes holding GPU memory (MiB): {gpu.seen}")
    assert gpu.seen, "no Ray worker held GPU memory during the run"
    assert not notices, notices  # Ray Data's "num_cpus and num_gpus is experimental", once per GPU pool

    cpu_cfg = _pipeline(tmp_path / "cpu_cfg", tiny_clip, "cpu")
    t0 = time.perf_counter()
    run_pipeline(cpu_cfg, [str(inputs)], str(tmp_path / "local"), runner="local")
    print(f"local runner on the CPU: {time.perf_counter() - t0:.1f} s; {ray_summary}")

    for table in ("clips", "review", "rejected"):
        same_output(read_table(tmp_path / "local", table), read_table(tmp_path / "ray", table), table)
    assert len(read_table(tmp_path / "ray", "clips")) > 0
