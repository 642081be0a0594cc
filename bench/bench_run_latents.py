"""In-run latents vs the separate ``curate latents`` pass, on the same clips.

What the run saves is the decode: ``curate latents`` decodes every stored clip
again to make the bucket pixels, the run takes them from the frames encode
already decodes (a frame tap). The VAE work is the same in both. So, on the
same records, in this process, best of ``--rounds`` (CPU seconds, robust to
a busy machine; wall too):

  encode          the encode stage without a latents section
  encode+tap      the encode stage with it (its bucket pixels as a by-product)
  tap             of which the tap itself (CPU time of the thread in TargetFill:
                  frame choice, resize, crop); encode+tap - encode is within
                  x264's own run-to-run noise
  decode stored   what ``curate latents`` does per clip before the VAE:
                  ``decode_targets`` of the stored clip bytes, every bucket
  vae             the latents stage on those pixels (identical in both paths)

Then one end-to-end check on real footage (../shared/media/videos; synthetic
without it): a local ``curate run`` with the section, and ``curate latents``
on its OUTPUT under another VAE id with the same weights, which must compute
every clip again from the stored bytes; prints how far apart the two sets of
latents lie (the separate pass sees x264's output, the run the frames before it).

    python bench/bench_run_latents.py [--videos 3] [--vae tiny|sd] [--frames 8] [--size 128] [--rounds 3]

``--vae sd`` is Stable Diffusion's VAE config on random weights (the real FLOPs;
slow on CPU), ``tiny`` a few-kilobyte VAE.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "run_latents"
MEDIA = Path(os.environ.get("CURATE_SHARED", HERE.parents[1] / "shared")) / "media" / "videos"
SOURCES = ("cockatoo.mp4", "big_buck_bunny_5s.mp4", "bikes.mp4", "chaplin.mp4", "cup.mp4", "box.mp4")


def _vae(kind: str) -> dict:
    """The latents section's ``vae``: SD's config on random weights, or a tiny saved VAE."""
    from bench.bench_latents import SD_VAE

    path = OUT / f"vae-{kind}"
    path.mkdir(parents=True, exist_ok=True)
    if kind == "sd":
        (path / "config.json").write_text(json.dumps(SD_VAE))
        return {"id": "sd", "kind": "AutoencoderKL", "model": str(path), "random_init": True}
    if not (path / "config.json").is_file():
        import diffusers
        import torch

        torch.manual_seed(0)
        diffusers.AutoencoderKL(block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                                up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=4,
                                layers_per_block=1).save_pretrained(path)
    return {"id": "tiny", "kind": "AutoencoderKL", "model": str(path)}


def _run(inputs: Path, out: Path, data: dict) -> dict:
    import yaml

    from curate.config import load_pipeline
    from curate.run import run_pipeline

    shutil.rmtree(out, ignore_errors=True)
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(data))
    run_pipeline(load_pipeline(path), [str(inputs)], str(out), runner="local")
    return json.loads((out / "manifest.json").read_text())


def _best(fn, rounds: int) -> tuple[float, float]:
    """(CPU s, wall s) of ``fn()``, the best of ``rounds``."""
    best = (float("inf"), float("inf"))
    for _ in range(rounds):
        c, w = time.process_time(), time.perf_counter()
        fn()
        best = min(best, (time.process_time() - c, time.perf_counter() - w))
    return best


def _components(inputs: Path, data: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """CPU and wall seconds of encode, encode+tap, decoding the stored clips and the VAE, over every input."""
    import dataclasses

    from curate.config import PipelineConfig
    from curate.data import decode
    from curate.discover import discover
    from curate.latents import fitting, targets
    from curate.pipeline import build_stages

    config = PipelineConfig.model_validate(data)
    stages = {s.name: dataclasses.replace(s, timeout_s=None) for s in build_stages(config)}
    for s in stages.values():
        s.start()
    records = list(discover([str(inputs)]))
    for name in ("probe", "analyse", "text", "filter"):
        if name in stages:
            records = stages[name].process(records)
    plain = dataclasses.replace(stages["encode"], latents=None)
    tapped: list = []
    gaps: list = []  # in-run minus loader pixels of the stored clip, per clip and bucket
    spent: list[float] = []
    push, close = decode.TargetFill.push, decode.TargetFill.close

    def timed(fn):  # noqa: ANN001, ANN202 - the tap's own CPU time (it runs in the calling thread)
        def wrapper(*a):  # noqa: ANN002, ANN202
            c = time.thread_time()
            try:
                return fn(*a)
            finally:
                spent[-1] += time.thread_time() - c
        return wrapper

    def encode_tap() -> None:
        spent.append(0.0)
        decode.TargetFill.push, decode.TargetFill.close = timed(push), timed(close)
        try:
            tapped[:] = stages["encode"].process([dict(r, clips=[dict(c) for c in r["clips"]]) for r in records])
        finally:
            decode.TargetFill.push, decode.TargetFill.close = push, close

    def decode_stored() -> None:
        gaps.clear()
        for r in tapped:
            for c in r["clips"]:
                if "_latent_pixels" in c:
                    buckets = fitting(config.latents, c)
                    tgs = targets(config.latents, buckets)
                    decode.decode_targets(c, tgs)
                    gaps.extend(c["_latent_pixels"][b.key].astype(float) - tg.out.numpy() for b, tg in zip(buckets, tgs))

    out = {"encode": _best(lambda: plain.process([dict(r, clips=[dict(c) for c in r["clips"]]) for r in records]), rounds),
           "encode+tap": _best(encode_tap, rounds)}
    out.update({"tap": (min(spent), float("nan")), "decode stored": _best(decode_stored, rounds),
                "vae": _best(lambda: stages["latents"].process(tapped), rounds)})
    for s in stages.values():
        s.stop()
    mse = max(float((g**2).mean()) for g in gaps)
    print(f"bucket pixels, in-run vs the loader's of the stored (x264) clip: mean abs difference "
          f"{max(float(abs(g).mean()) for g in gaps):.2f} levels at most, PSNR {10 * math.log10(255**2 / mse):.1f} dB at least")
    return out


def _gap(out: Path, a: str, b: str) -> tuple[int, float, float]:
    """(pairs, max abs difference, max relative L2) of the latents of VAE ids ``a`` and ``b`` per clip and bucket."""
    import pandas as pd

    from curate.data.latents import from_bytes

    doc = json.loads((out / "manifest.json").read_text())
    rows = pd.concat([pd.read_parquet(out / e["path"]) for e in doc["latents"]["shards"]])
    x, y = (rows[rows.vae == v].set_index(["clip_id", "bucket"]) for v in (a, b))
    worst = rel = 0.0
    for k in x.index:
        shape = doc["latents"]["sets"][f"{a}/{k[1]}"]["shape"]
        p, q = (from_bytes(t.loc[k, "latent"], shape, "float16").float() for t in (x, y))
        worst, rel = max(worst, (p - q).abs().max().item()), max(rel, ((p - q).norm() / q.norm()).item())
    return len(x), worst, rel


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--vae", choices=("tiny", "sd"), default="tiny")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import yaml

    from curate.config import PipelineConfig
    from curate.latents import add_latents

    inputs = OUT / f"inputs-{args.videos}"
    if not inputs.is_dir():
        inputs.mkdir(parents=True)
        found = [MEDIA / s for s in SOURCES if (MEDIA / s).is_file()][: args.videos]
        for p in found:
            (inputs / p.name).symlink_to(p)
        if not found:
            from curate.synth import make_video

            for i in range(args.videos):
                make_video(inputs / f"v{i}.mp4", [(72, k) for k in ("pan_left", "zoom_in", "moving")], size=(480, 270), seed=i)
    data = yaml.safe_load((HERE.parent / "pipelines" / "model-free.yaml").read_text())
    data.update(clips={"min_s": 1.0, "max_s": 3.0, "trim_frames": 2}, limits={"video_timeout_s": 600})
    data["encode"] = dict(data.get("encode") or {}, max_height=360)
    data["latents"] = {"vae": _vae(args.vae), "buckets": [{"num_frames": args.frames, "height": args.size, "width": args.size}],
                       "batch_size": 2, "device": args.device}
    t = _components(inputs, data, args.rounds)
    out = OUT / "inrun"
    doc = _run(inputs, out, data)
    clips = doc["funnel"]["clips"]["accepted"]
    print(f"{args.videos} videos ({'real footage' if any(MEDIA.glob('*.mp4')) else 'synthetic'}), {clips} accepted clips, "
          f"bucket {args.frames}x{args.size}x{args.size}, VAE {args.vae} on {args.device}, best of {args.rounds}; "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'step':<15}{'CPU s':>8}{'wall s':>8}")
    for name, (cpu, wall) in t.items():
        print(f"{name:<15}{cpu:>8.2f}{wall:>8.2f}")
    tap = t["tap"][0]
    print(f"bucket pixels: in-run tap {tap:.2f} CPU s vs decoding the stored clips {t['decode stored'][0]:.2f} CPU s "
          f"({t['decode stored'][0] / max(tap, 1e-9):.1f}x); with the VAE: in-run {tap + t['vae'][0]:.2f} vs separate "
          f"{t['decode stored'][0] + t['vae'][0]:.2f} CPU s (ratio {(tap + t['vae'][0]) / (t['decode stored'][0] + t['vae'][0]):.2f})")
    data["latents"]["vae"] = dict(data["latents"]["vae"], id="separate")
    sep = add_latents(str(out), PipelineConfig.model_validate(data))
    pairs, worst, rel = _gap(out, args.vae, "separate")
    print(f"curate latents after the run, same weights under another id: {sep.computed} computed in {sep.seconds:.1f} s; "
          f"in-run vs separate latents ({pairs} pairs): max abs difference {worst:.4f}, max relative L2 {rel:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
