"""The caption encoder's GPU path: bf16/fp16 embeddings against CPU fp32, and captions per second.

``curate latents`` with a ``text_embeddings:`` section runs the encoder through
:func:`curate.models.text_encoder.load_text_encoder` with ``device``/``precision``;
CI and the dev machines have no GPU, so this is the check that the half-precision
CUDA path gives the CPU fp32 embeddings (relative max error over the caption
tokens, mask equal) and how fast a T5-base-sized encoder (random weights saved
with ``save_pretrained``, the real FLOPs) encodes captions there. Exits 0 with a
note where CUDA is absent (``--device cpu --captions 64`` runs the same code on the
CPU as a smoke test). Output: ``bench/out/text_encoder_gpu.json``.

    python bench/bench_text_encoder_gpu.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

T5_BASE = {"d_model": 768, "d_ff": 3072, "d_kv": 64, "num_layers": 12, "num_heads": 12}
MAX_LENGTH = 128
BATCH = 64


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--captions", type=int, default=256)
    args = ap.parse_args()
    n = args.captions
    import numpy as np
    import torch
    import transformers as tf

    from curate.models.settings import TextEncoderConfig
    from curate.models.text_encoder import load_text_encoder
    from tests.models_fixtures import CAPTION_WORDS, caption_tokenizer

    out = HERE / "out" / "text_encoder_gpu.json"
    out.parent.mkdir(exist_ok=True)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 0
    rng = np.random.default_rng(0)
    captions = [" ".join(rng.choice(CAPTION_WORDS[6:], size=int(rng.integers(3, 100)))) for _ in range(n)]
    gpu = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    result: dict = {"device": torch.cuda.get_device_name() if gpu else "cpu", "torch": torch.__version__, "transformers": tf.__version__,
                    "encoder": dict(T5_BASE, kind="T5EncoderModel", weights="random"), "max_length": MAX_LENGTH,
                    "captions": n, "batch": BATCH}
    with tempfile.TemporaryDirectory() as d:
        tok = caption_tokenizer(Path(d))
        torch.manual_seed(0)
        tf.T5EncoderModel(tf.T5Config(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **T5_BASE)).save_pretrained(d)
        tok.save_pretrained(d)
        cfg = TextEncoderConfig(id="t5", model=d)
        ref = load_text_encoder(cfg, device="cpu", precision="fp32")
        ref_emb, ref_mask = zip(*(ref.encode(captions[i:i + BATCH], MAX_LENGTH) for i in range(0, n, BATCH)))
        ref_emb, ref_mask = torch.cat(ref_emb), torch.cat(ref_mask)
        for precision in ("bf16", "fp16", "fp32"):
            enc = load_text_encoder(cfg, device=args.device, precision=precision)
            enc.encode(captions[:BATCH], MAX_LENGTH)  # warm-up
            sync()
            if gpu:
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            embs, masks = zip(*(enc.encode(captions[i:i + BATCH], MAX_LENGTH) for i in range(0, n, BATCH)))
            sync()
            s = time.perf_counter() - t0
            emb, mask = torch.cat(embs), torch.cat(masks)
            on = ref_mask.bool()
            err = ((emb - ref_emb).abs()[on].max() / ref_emb.abs()[on].max()).item()
            result[precision] = {"captions_per_s": round(n / s, 1), "rel_max_err": float(f"{err:.3g}"),
                                 "mask_equal": bool(torch.equal(mask, ref_mask)), "finite": bool(torch.isfinite(emb).all()),
                                 "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if gpu else None}
            del enc
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
