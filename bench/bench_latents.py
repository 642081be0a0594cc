"""Latent-cache benchmark: loader samples/s from stored latents vs from pixels vs pixels + the same VAE encode.

Builds (once, cached in bench/out/latents/) a curate OUTPUT of real clips
(../shared/media/videos through the model-free pipeline; synthetic videos
without it), then runs ``curate latents`` on it with a full-size image VAE:
``AutoencoderKL`` with Stable Diffusion's VAE config (4 down blocks of
128/256/512/512 channels, 2 layers each, 4 latent channels: the same FLOPs as
the real one) on random weights (``random_init: true``, marked so). Then, each
in its own process so peak memory is its own, one epoch of:

  latents         ClipDataset(OUTPUT, buckets, latents="sd"): stored fp16 latents, no decode
  pixels          ClipDataset(OUTPUT, buckets) float batches: decode + resize + crop only
  pixels+vae      the same pixel batches through the VAE encoder (what a trainer
                  without a cache does every epoch), fp32 on CPU

Reports samples/s, CPU seconds per sample, peak RSS, and the one-off cost of
the ``curate latents`` pass. Target: latents >= 10x pixels+vae samples/s.

    python bench/bench_latents.py [--frames 8] [--size 128] [--videos 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "latents"
MEDIA = Path(os.environ.get("CURATE_SHARED", HERE.parents[1] / "shared")) / "media" / "videos"
SOURCES = ("cockatoo.mp4", "big_buck_bunny_5s.mp4", "bikes.mp4", "chaplin.mp4", "cup.mp4", "box.mp4")
# diffusers' AutoencoderKL as Stable Diffusion 1.x/2.x ships it (stabilityai/sd-vae-ft-mse config.json).
SD_VAE = {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
          "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
          "up_block_types": ["UpDecoderBlock2D"] * 4, "act_fn": "silu", "norm_num_groups": 32, "sample_size": 512,
          "scaling_factor": 0.18215}
BATCH = 2
MIN_S = 3.0  # latents and pixels repeat whole epochs for at least this long (one epoch of latents takes milliseconds)


def build(args: argparse.Namespace) -> tuple[Path, Path]:
    """The OUTPUT (kept clips) and the pipeline with its latents section; cached per size."""
    import yaml

    from curate.config import load_pipeline
    from curate.run import run_pipeline

    root = OUT / f"{args.videos}v"
    out, inputs = root / "output", root / "inputs"
    if not (out / "manifest.json").is_file():
        shutil.rmtree(root, ignore_errors=True)
        inputs.mkdir(parents=True)
        found = [MEDIA / s for s in SOURCES if (MEDIA / s).is_file()][: args.videos]
        if found:
            for p in found:
                (inputs / p.name).symlink_to(p)
        else:
            from curate.synth import make_video

            for i in range(args.videos):
                make_video(inputs / f"v{i}.mp4", [(72, k) for k in ("pan_left", "zoom_in", "moving")], size=(480, 270), seed=i)
        data = yaml.safe_load((HERE.parent / "pipelines" / "model-free.yaml").read_text())
        data.update(clips={"min_s": 1.0, "max_s": 3.0, "trim_frames": 2}, limits={"video_timeout_s": 600})
        data["encode"] = dict(data.get("encode") or {}, max_height=360)
        (root / "run.yaml").write_text(yaml.safe_dump(data))
        run_pipeline(load_pipeline(root / "run.yaml"), [str(inputs)], str(out), runner="local")
    vae_dir = OUT / "sd-vae-config"
    vae_dir.mkdir(parents=True, exist_ok=True)
    (vae_dir / "config.json").write_text(json.dumps(SD_VAE))
    data = json.loads((out / "manifest.json").read_text())["config"]
    data["latents"] = {"vae": {"id": "sd", "kind": "AutoencoderKL", "model": str(vae_dir), "random_init": True},
                       "buckets": [{"num_frames": args.frames, "height": args.size, "width": args.size}],
                       "batch_size": BATCH, "device": args.device}
    pipeline = root / f"latents-{args.frames}x{args.size}.yaml"
    pipeline.write_text(yaml.safe_dump(data))
    return out, pipeline


def measure(mode: str, out: Path, pipeline: Path, frames: int, size: int, device: str) -> dict[str, float]:
    """One epoch of ``mode`` in this process: samples, wall and CPU seconds, peak RSS."""
    import torch

    from curate.config import load_pipeline
    from curate.data import BucketConfig, ClipDataset, DecodeOptions

    buckets = BucketConfig.single(size, size, frames, BATCH)
    vae = None
    if mode == "pixels+vae":
        from curate.models.vae import load_vae

        from curate.models.device import pick_precision

        vae = load_vae(load_pipeline(pipeline).latents.vae, device=device, precision=pick_precision(device))
    if mode == "latents":
        ds = ClipDataset(out, buckets, latents="sd", shuffle=False)
    else:
        ds = ClipDataset(out, buckets, shuffle=False, decode=DecodeOptions(temporal="center", output="float"))
    t0, c0, n, epochs = time.perf_counter(), time.process_time(), 0, 0
    while epochs == 0 or (vae is None and time.perf_counter() - t0 < MIN_S):  # fast modes: whole epochs for MIN_S
        for batch in ds:
            x = batch["latents"] if mode == "latents" else batch["video"]
            if vae is not None:
                x = vae.encode(x)[0]  # returns on the CPU: the GPU work is waited for
            n += int((~batch["repeated"]).sum())
            torch.as_tensor(x).float().sum()  # what a trainer does first with it: touch every value
        epochs += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"samples": n, "epochs": epochs, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": _peak_rss_mib()}


def _peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss would include the parent's, inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(mode: str, out: Path, pipeline: Path, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--measure", mode, "--output", str(out), "--pipeline", str(pipeline),
           "--frames", str(args.frames), "--size", str(args.size), "--device", args.device]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--device", default="cpu", help="where the VAE runs (the latents pass and pixels+vae): cpu or cuda")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of latents and pixels (pixels+vae runs once: it is slow)")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--pipeline", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.output, args.pipeline, args.frames, args.size, args.device)))
        return 0
    import torch

    from curate.config import load_pipeline
    from curate.latents import add_latents

    torch.set_num_threads(os.cpu_count() or 1)
    out, pipeline = build(args)
    where = "fp32 on CPU" if args.device == "cpu" else f"{args.device} ({torch.cuda.get_device_name()}), bf16/fp16"
    print(f"OUTPUT {out} ({'real footage' if any(MEDIA.glob('*.mp4')) else 'synthetic'}), bucket {args.frames}x{args.size}x{args.size}, "
          f"batch {BATCH}, VAE AutoencoderKL SD config, random weights, {where}; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    t = time.perf_counter()
    r = add_latents(str(out), load_pipeline(pipeline))
    doc = json.loads((out / "manifest.json").read_text())
    lat_bytes = sum(e["bytes"] for e in doc["latents"]["shards"])
    clip_bytes = sum(e["bytes"] for e in doc["shards"]["clips"])
    print(f"curate latents: {r.computed} computed, {r.skipped} already there, {time.perf_counter() - t:.1f} s "
          f"(one-off); latents/ {lat_bytes / 2**20:.2f} MiB vs clips/ {clip_bytes / 2**20:.1f} MiB")
    results: dict[str, list[dict[str, float]]] = {"latents": [], "pixels": [], "pixels+vae": []}
    for i in range(args.rounds):
        order = ["latents", "pixels"] if i % 2 == 0 else ["pixels", "latents"]  # load hits both alike
        for mode in order + (["pixels+vae"] if i == 0 else []):
            results[mode].append(_child(mode, out, pipeline, args))
    best = {m: max(rs, key=lambda x: x["samples"] / x["wall_s"]) for m, rs in results.items()}
    print(f"{'mode':<12}{'samples':>8}{'epochs':>7}{'samples/s':>12}{'cpu s/sample':>14}{'peak RSS MiB':>14}")
    for m, x in best.items():
        print(f"{m:<12}{x['samples']:>8}{x['epochs']:>7}{x['samples'] / x['wall_s']:>12.2f}{x['cpu_s'] / x['samples']:>14.5f}"
              f"{x['peak_rss_mib']:>14.0f}")
    rate = {m: x["samples"] / x["wall_s"] for m, x in best.items()}
    speedup = rate["latents"] / rate["pixels+vae"]
    cpu = (best["pixels+vae"]["cpu_s"] / best["pixels+vae"]["samples"]) / (best["latents"]["cpu_s"] / best["latents"]["samples"])
    print(f"latents / pixels+vae: {speedup:.0f}x samples/s ({cpu:.0f}x CPU per sample); latents / pixels (decode only): "
          f"{rate['latents'] / rate['pixels']:.1f}x  -> target >= 10x: {'PASS' if speedup >= 10 else 'FAIL'}")
    (OUT / "results.json").write_text(json.dumps({"args": vars(args) | {"output": str(out), "pipeline": str(pipeline)},
                                                  "results": results, "speedup": speedup}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
