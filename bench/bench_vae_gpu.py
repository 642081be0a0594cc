"""The latent cache's VAE path on a GPU: bf16/fp16 latents against CPU fp32, and encode throughput.

``curate latents`` runs the VAE through :func:`curate.models.vae.load_vae`
with ``latents.device``/``latents.precision``; CI and the dev machines have no
GPU, so this is the check that the half-precision CUDA path gives the same
latents as the CPU fp32 one (relative max error) and how fast a full-size
Stable Diffusion VAE and a CogVideoX-sized video VAE (random weights, the
real FLOPs) encode a loader bucket there. Exits 0 with a note where CUDA is
absent. Output: ``bench/out/vae_gpu.json``.

    python bench/bench_vae_gpu.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

# Video VAE sized like CogVideoX-2b's (4 stages of 128/256/256/512 channels, 16 latent channels, 4x temporal).
COG_VAE = {"_class_name": "AutoencoderKLCogVideoX", "block_out_channels": [128, 256, 256, 512],
           "down_block_types": ["CogVideoXDownBlock3D"] * 4, "up_block_types": ["CogVideoXUpBlock3D"] * 4,
           "latent_channels": 16, "layers_per_block": 3, "norm_num_groups": 32, "temporal_compression_ratio": 4}


def _vae(root: Path, name: str, config: dict, precision: str, device: str):
    from curate.models.settings import VaeConfig
    from curate.models.vae import load_vae

    d = root / name
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(config))
    cfg = VaeConfig(id=name, kind=config["_class_name"], model=str(d), random_init=True)
    return load_vae(cfg, device=device, precision=precision)


def main() -> int:
    import torch

    from bench_latents import SD_VAE

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (the CPU path is bench_latents.py)")
        return 0
    out: dict[str, dict] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    root = Path(tempfile.mkdtemp())
    gen = torch.Generator().manual_seed(0)
    for name, config, frames, size, batch in (("sd", SD_VAE, 17, 256, 4), ("cogvideox", COG_VAE, 17, 256, 1)):
        pixels = torch.rand((batch, frames, 3, size, size), generator=gen) * 2 - 1
        ref = _vae(root, name, config, "fp32", "cpu").encode(pixels[:1])[0] if name == "sd" else None
        gpu32 = _vae(root, name, config, "fp32", "cuda")
        ref = gpu32.encode(pixels[:1])[0] if ref is None else ref  # the video VAE on CPU fp32 takes minutes
        row: dict[str, dict] = {}
        for precision in ("fp32", "bf16", "fp16"):
            vae = gpu32 if precision == "fp32" else _vae(root, name, config, precision, "cuda")
            mean = vae.encode(pixels[:1])[0]
            err = float((mean - ref).abs().max() / ref.abs().max())
            vae.encode(pixels)  # warm-up (cuDNN autotune, allocator)
            torch.cuda.synchronize()
            t, n = time.perf_counter(), 0
            while time.perf_counter() - t < 3.0:
                vae.encode(pixels)
                n += batch
            torch.cuda.synchronize()
            row[precision] = {"max_rel_err_vs_cpu_fp32" if name == "sd" else "max_rel_err_vs_gpu_fp32": round(err, 5),
                              "clips_per_s": round(n / (time.perf_counter() - t), 2),
                              "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20)}
            torch.cuda.reset_peak_memory_stats()
            del vae
        out[f"{name} {frames}x{size}x{size} batch {batch}"] = row
        print(name, json.dumps(row), flush=True)
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "vae_gpu.json").write_text(json.dumps(out, indent=1))
    bad = [k for k, r in out.items() if isinstance(r, dict) and any(
        v.get("max_rel_err_vs_cpu_fp32", v.get("max_rel_err_vs_gpu_fp32", 0)) > (0.05 if p == "bf16" else 0.01)
        for p, v in r.items() if isinstance(v, dict))]
    print(json.dumps(out, indent=1))
    print("FAIL: half precision differs from fp32" if bad else "OK: half-precision latents match fp32", bad)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
