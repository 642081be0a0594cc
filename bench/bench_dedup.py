"""Dedup benchmark: clips/s of the distributed pass vs the single-machine greedy pass, same kept set.

Synthetic candidates shaped like a run's: ``n / 5`` source videos of 5 clips
each, grouped under 200 topics (CLIP embeddings of unrelated footage are far
apart, clips of one video close: within-video cosine ~0.95, about a third of
the clips are duplicates at the defaults), 512-dimensional; each video's
pHashes are one base hash with 1-8 bits flipped per clip; 20 % of clips
flagged, scores uniform. Both passes run ``curate.dedup.find_duplicates`` (visiting order,
normalisation and all) with ``dedup.engine`` set, on the embedded Ray the
benchmark starts first (its start-up is printed, not timed). The two results
must be identical (every duplicate, the clip it names and the reason).

A last row runs isotropic embeddings (no topic structure, the exact probing's
worst case: every query probes most cells) at the smallest size.

    python bench/bench_dedup.py [--sizes 10000 100000] [--json bench/out/dedup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.config import DedupConfig
from curate.dedup import find_duplicates
from curate.runners.ray import init_ray

DIM = 512


def synthetic(n: int, seed: int, topics: int | None = 200) -> dict:
    """``n`` candidates: clustered (topics > videos > clips) or, with ``topics=None``, isotropic embeddings."""
    rng = np.random.default_rng(seed)
    videos = max(1, n // 5)
    video = np.repeat(np.arange(videos), 5)[:n]
    if topics is None:
        emb = rng.standard_normal((n, DIM), dtype=np.float32)
    else:
        centres = rng.standard_normal((topics, DIM), dtype=np.float32)[rng.integers(0, topics, videos)]
        centres += 0.7 * rng.standard_normal((videos, DIM), dtype=np.float32)
        scale = 0.235 * np.sqrt((centres**2).sum(1, keepdims=True) / DIM)  # about a third of the clips are duplicates
        emb = centres[video] + scale[video] * rng.standard_normal((n, DIM), dtype=np.float32)
    base = rng.integers(0, 2**63, videos, dtype=np.int64).astype(np.uint64)[video]
    flips = np.zeros(n, np.uint64)
    for k in range(8):
        bit = rng.integers(0, 64, n).astype(np.uint64)
        flips ^= np.where(rng.random(n) < 0.5 if k else np.ones(n, bool), np.uint64(1) << bit, np.uint64(0))
    return {
        "ids": [f"clip{i:07d}" for i in range(n)],
        "phash": [f"{h:016x}" for h in (base ^ flips).tolist()],
        "embedding": emb,
        "has": np.ones(n, bool),
        "score": rng.random(n).round(4).tolist(),
        "rank": (rng.random(n) < 0.2).astype(int).tolist(),
    }


def timed(data: dict, engine: str) -> tuple[float, dict]:
    cfg = DedupConfig(engine=engine)
    t = time.perf_counter()
    found = find_duplicates(data["ids"], data["phash"], data["embedding"], data["has"], data["score"], data["rank"], cfg)
    return time.perf_counter() - t, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--json", default="bench/out/dedup.json")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    t = time.perf_counter()
    init_ray()
    print(f"ray start-up {time.perf_counter() - t:.1f} s (not timed below)", flush=True)
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    rows = []
    runs = [(n, "clustered", 200) for n in args.sizes] + [(min(args.sizes), "isotropic", None)]
    for n, kind, topics in runs:
        data = synthetic(n, seed=n, topics=topics)
        single_s, single = timed(data, "greedy")
        spread_s, spread = timed(data, "distributed")
        same = single == spread
        row = {"candidates": n, "data": kind, "duplicates": len(single), "ray_cpus": cpus,
               "greedy_s": round(single_s, 2), "distributed_s": round(spread_s, 2),
               "greedy_clips_per_s": round(n / single_s), "distributed_clips_per_s": round(n / spread_s),
               "speedup": round(single_s / spread_s, 2), "identical": same}
        rows.append(row)
        print(f"{n:>7} {kind:<9} duplicates {len(single):>6}  greedy {single_s:7.1f} s ({n / single_s:8.0f} clips/s)  "
              f"distributed {spread_s:7.1f} s ({n / spread_s:8.0f} clips/s)  x{single_s / spread_s:.2f}  "
              f"{'identical' if same else 'DIFFERENT'}", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"dim": DIM, "load_average": os.getloadavg()[0], "rows": rows}, indent=2))
    print(f"wrote {args.json}")
    if not all(r["identical"] for r in rows):
        sys.exit("distributed and greedy dedup disagree")


if __name__ == "__main__":
    main()
