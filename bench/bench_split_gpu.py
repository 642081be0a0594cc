"""TransNetV2 on a GPU (``detector.device``): the same probabilities and boundaries as on the CPU, and its cost.

``pipelines/default.yaml``'s combined detector asks TransNetV2 about the
blocks where a cheap cue is active; on a CPU that is most of the analysis
pass (``bench/bench_split.py``). This is the check that the CUDA path gives
the CPU's per-frame probabilities (max absolute difference over the windows of
the speed inputs) and the same boundaries (``transnetv2`` and ``combined``),
and what one 100-frame window costs on each device. The pass's throughput on
the GPU is ``bench_split.py --skip-quality --device cuda``. Exits 0 with a note
where CUDA is absent. Output: ``bench/out/split_gpu.json``.

    python bench/bench_split_gpu.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def boundaries(kind: str, frames: list[np.ndarray], fps: float, device: str) -> list[tuple[int, int]]:
    from bench_split import detect

    return [(b.start, b.end) for b in detect(kind, frames, fps, None, device)[0]]


def process_mib() -> int | None:
    """This process's GPU memory as nvidia-smi reports it (what one analysis actor holds), or None without nvidia-smi."""
    import os
    import subprocess

    try:
        rows = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return None
    mine = [int(r.split(",")[1]) for r in rows if r.split(",")[0].strip() == str(os.getpid())]
    return mine[0] if mine else None


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (TransNetV2 on the CPU is bench_split.py)")
        return 0
    from bench_split import decode
    from inputs import looped

    from curate.analysis.detector import TINY_SIZE
    from curate.analysis.transnet import WINDOW, load_model, predict

    import cv2

    out: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "videos": {}}
    cpu, gpu = load_model("cpu"), load_model("cuda")
    worst = 0.0
    for inp in (looped("cockatoo.mp4", 2), looped("big_buck_bunny_5s.mp4", 4)):
        frames = decode(inp.path)
        tiny = np.stack([cv2.cvtColor(cv2.resize(f, TINY_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB) for f in frames])
        diffs = []
        for s in range(0, len(tiny) - WINDOW + 1, WINDOW // 2):
            a, b = predict(cpu, tiny[s : s + WINDOW], 2), predict(gpu, tiny[s : s + WINDOW], 2)
            diffs.append(max(np.abs(np.subtract(a[k], b[k])).max() for k in (0, 1)))
        row = {"frames": len(frames), "max_prob_diff": float(max(diffs))}
        for kind in ("transnetv2", "combined"):
            c, g = boundaries(kind, frames, inp.fps, "cpu"), boundaries(kind, frames, inp.fps, "cuda")
            row[kind] = {"cpu": c, "cuda": g, "same": c == g}
        out["videos"][inp.name] = row
        worst = max(worst, row["max_prob_diff"])
        print(f"  {inp.name}: max |p_cpu - p_cuda| {row['max_prob_diff']:.2e}; boundaries the same: "
              f"transnetv2 {row['transnetv2']['same']}, combined {row['combined']['same']} "
              f"({len(row['combined']['cuda'])} from combined)")
    window = tiny[:WINDOW]
    for name, model in (("cpu", cpu), ("cuda", gpu)):
        for _ in range(3):
            predict(model, window, 2)
        t, n = time.perf_counter(), 20 if name == "cpu" else 200
        for _ in range(n):
            predict(model, window, 2)
        ms = (time.perf_counter() - t) / n * 1e3
        out[f"window_ms_{name}"] = ms
        print(f"  one 100-frame window on {name}: {ms:.2f} ms ({ms / 50:.3f} ms a predicted frame)")
    out["gpu_mib"] = {"allocated_peak": torch.cuda.max_memory_allocated() / 2**20, "reserved": torch.cuda.memory_reserved() / 2**20,
                      "process": process_mib()}
    print(f"  GPU memory: {out['gpu_mib']['allocated_peak']:.0f} MiB allocated at peak, {out['gpu_mib']['reserved']:.0f} MiB "
          f"reserved by torch, {out['gpu_mib']['process']} MiB for the whole process (CUDA context included; nvidia-smi)")
    path = HERE / "out" / "split_gpu.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return 0 if worst < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
