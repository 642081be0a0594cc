"""CLIP benchmark: frames/s inside ClipEmbedStage vs a bare forward pass of the same model.

A randomly initialised full-size ViT-B-32 (``random_init: true``; no weights
are needed for timing) embeds N clips x k frames of 256x144 uint8 frames (the
decode pass's ``analysis.sample_width``), in one run:
  bare      ``model.encode_image`` on ready (B, 3, 224, 224) tensors, B frames per call
  pipeline  ``ClipEmbedStage.process`` on video records: resize + crop + normalise,
            batching across clips and videos, per-clip mean embeddings
Both see the same number of frames at the same batch size, in short rounds that
alternate which goes first, so other load on the machine hits both alike.
Target: pipeline / bare >= 0.9.

    python bench/bench_clip.py [--clips 48] [--frames 3] [--batch 32] [--repeat 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.models.settings import ClipModelConfig
from curate.stages.clip_embed import ClipEmbedStage

CLIPS_PER_VIDEO = 4


def videos(n_clips: int, k: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    clips = [{"_frames": [rng.integers(0, 256, (144, 256, 3), dtype=np.uint8) for _ in range(k)]} for _ in range(n_clips)]
    return [{"video_id": f"v{i}", "status": "pending", "clips": clips[i : i + CLIPS_PER_VIDEO]}
            for i in range(0, n_clips, CLIPS_PER_VIDEO)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--frames", type=int, default=3, help="sampled frames per clip")
    ap.add_argument("--batch", type=int, default=32, help="frames per forward pass")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    import torch

    stage = ClipEmbedStage(clip=ClipModelConfig(model="ViT-B-32", random_init=True, batch_size=args.batch), batch_size=10**6)
    stage.setup()
    model = stage._model
    assert model is not None
    x = torch.randn(args.batch, 3, 224, 224, device=model.device, dtype=model.dtype)
    # Rounds of ~2 forward passes; each round times both paths on the same frame count, in
    # alternating order, so load from other processes hits both alike.
    per_round = max(1, 2 * args.batch // (CLIPS_PER_VIDEO * args.frames))
    vids = videos(args.clips, args.frames)
    rounds = [vids[i : i + per_round] for i in range(0, len(vids), per_round)]

    def bare(n_frames: int) -> None:
        with torch.inference_mode(), model._autocast():
            for i in range(0, n_frames, args.batch):
                model.model.encode_image(x[: min(args.batch, n_frames - i)]).float().cpu()

    def pipeline(group: list[dict]) -> None:
        out = stage.process(group)
        assert len(out[0]["clips"][0]["embedding"]) == model.dim

    bare(args.batch), pipeline(rounds[0][:1])  # warm-up
    spent = {"bare": 0.0, "pipeline": 0.0}
    cpu = {"bare": 0.0, "pipeline": 0.0}
    ratios = []
    for r in range(args.repeat):
        for j, group in enumerate(rounds):
            n = sum(len(c["_frames"]) for v in group for c in v["clips"])
            took = {}
            order = [("bare", lambda n=n: bare(n)), ("pipeline", lambda g=group: pipeline(g))]
            for name, fn in order if (r + j) % 2 == 0 else order[::-1]:
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                took[name] = time.perf_counter() - t0
                spent[name] += took[name]
                cpu[name] += time.process_time() - c0
            ratios.append(took["bare"] / took["pipeline"])
    total = args.clips * args.frames * args.repeat
    print(f"ViT-B-32 (random init) on {model.device} {model.info['precision']}, torch threads {torch.get_num_threads()}: "
          f"{args.clips} clips x {args.frames} frames x {args.repeat} repeats = {total} frames, batch {args.batch}, "
          f"{len(ratios)} alternating rounds")
    for k, v in spent.items():
        print(f"  {k:9s} {total / v:8.1f} frames/s wall  ({v:.1f} s wall, {cpu[k]:.1f} s CPU)")
    print(f"  ratio     {spent['bare'] / spent['pipeline']:8.3f}  pipeline/bare frames/s, wall clock (target >= 0.9); "
          f"per-round median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"  ratio     {cpu['bare'] / cpu['pipeline']:8.3f}  by process CPU time (robust when other jobs share the CPUs)")


if __name__ == "__main__":
    main()
