"""Latents as stored by ``curate latents``: bytes <-> tensors, which buckets a clip fits, and the loader's index.

A latent is raw little-endian fp16/bf16 bytes in C order; its shape and dtype
are recorded once per VAE and bucket in the manifest (``latents.sets``), not
per row. The column is plain ``binary`` rather than a fixed-size type because
one table holds every VAE and bucket: fixed sizes would give its files
different schemas, which pandas, DuckDB and HF ``datasets`` cannot read as one
table.

:func:`latent_index` finds each clip's latent row (:func:`curate.data.derived.derived_index`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .buckets import Bucket, BucketConfig
from .derived import derived_index
from .index import RowIndex

DTYPES = ("float16", "bfloat16")


def bucket_key(shape: tuple[int, int, int]) -> str:
    """``(T, H, W)`` as the ``bucket`` column names it: ``TxHxW``."""
    return "x".join(str(int(v)) for v in shape)


def to_bytes(t: Any, dtype: str) -> bytes:
    """A float tensor stored as ``dtype`` (``float16`` or ``bfloat16``) bytes, C order."""
    import torch

    x = t.detach().to("cpu", getattr(torch, dtype)).contiguous()
    return (x.view(torch.int16) if dtype == "bfloat16" else x).numpy().tobytes()


def from_bytes(data: bytes, shape: list[int] | tuple[int, ...], dtype: str) -> Any:
    """The tensor :func:`to_bytes` stored (``dtype``, ``shape``); a copy, writable."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"latent dtype {dtype!r} is not one of {DTYPES}")
    x = torch.frombuffer(bytearray(data), dtype=getattr(torch, dtype))
    if x.numel() != int(np.prod(shape)):
        raise ValueError(f"latent of {x.numel()} values does not have the recorded shape {list(shape)}")
    return x.view(*shape)


def fits(buckets: list[tuple[int, int, int]], fps: float | None, stride: int | None, allow_upscale: bool,
         width: np.ndarray, height: np.ndarray, num_frames: np.ndarray, clip_fps: np.ndarray) -> np.ndarray:
    """``(clips, buckets)`` bool: whether each clip fits each ``(T, H, W)`` bucket, by the loader's own rule."""
    out = np.zeros((len(width), len(buckets)), bool)
    for j, (t, h, w) in enumerate(buckets):
        one = BucketConfig((Bucket(h, w, t, 1),), fps=fps, allow_upscale=allow_upscale, stride=stride)
        out[:, j] = one.assign(width, height, num_frames, clip_fps) >= 0
    return out


def latent_index(source: Any, vae: str) -> tuple[RowIndex, dict[str, dict[str, Any]], dict[tuple[str, str], int]]:
    """``(index of latent rows, bucket key -> set record, (clip_id, bucket) -> row id)`` of VAE ``vae``.

    Raises when the OUTPUT has no latents of ``vae`` (naming those it has).
    """
    index, section, cols = derived_index(source, "latents", ["vae", "bucket"])
    sets = {k.partition("/")[2]: v for k, v in (section.get("sets") or {}).items() if k.partition("/")[0] == vae}
    if not sets:
        have = sorted({k.partition("/")[0] for k in section.get("sets") or {}})
        raise ValueError(f"{source} holds no latents of VAE {vae!r} (it has {have or 'none'}); compute them with "
                         f"`curate latents {source} PIPELINE.yaml`")
    where = {(cid, b): i for i, (cid, v, b) in enumerate(zip(index.clip_id.tolist(), cols["vae"], cols["bucket"])) if v == vae}
    return index, sets, where
