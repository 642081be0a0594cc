"""Latents as stored by ``curate latents``: bytes <-> tensors, which buckets a clip fits, and the loader's index.

A latent is raw little-endian fp16/bf16 bytes in C order; its shape and dtype
are recorded once per VAE and bucket in the manifest (``latents.sets``), not
per row. The column is plain ``binary`` rather than a fixed-size type because
one table holds every VAE and bucket: fixed sizes would give its files
different schemas, which pandas, DuckDB and HF ``datasets`` cannot read as one
table.

:func:`latent_index` finds each clip's latent row (file, row group, position)
in the same shape :class:`curate.data.index.RowIndex` has, so the loader's
:class:`curate.data.rows.RowCache` fetches latent rows exactly as it fetches
clip rows: one read per row group, rows dropped after their last use.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow.dataset as ds

from .buckets import Bucket, BucketConfig
from .index import RowIndex, resolve_shards

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


def latents_of(source: Any) -> tuple[Any, str, dict[str, Any]]:
    """``(filesystem, root, manifest latents section)`` of an OUTPUT dir or its manifest.json."""
    import fsspec

    if not isinstance(source, (str,)) and not hasattr(source, "__fspath__"):
        raise ValueError("latents= needs the OUTPUT directory (or its manifest.json) as source: latents are found through the manifest")
    fs, path = fsspec.core.url_to_fs(str(source))
    manifest = path if path.endswith(".json") else f"{path.rstrip('/')}/manifest.json"
    if not fs.exists(manifest):
        raise ValueError(f"{source} has no manifest.json; latents= needs an OUTPUT directory")
    root = manifest.rsplit("/", 1)[0] if "/" in manifest else ""
    section = json.loads(fs.cat_file(manifest)).get("latents") or {}
    return fs, root, section


def latent_index(source: Any, vae: str) -> tuple[RowIndex, dict[str, dict[str, Any]], dict[tuple[str, str], int]]:
    """``(index of latent rows, bucket key -> set record, (clip_id, bucket) -> row id)`` of VAE ``vae``.

    Raises when the OUTPUT has no latents of ``vae`` (naming those it has).
    """
    _, root, section = latents_of(source)
    sets = {k.partition("/")[2]: v for k, v in (section.get("sets") or {}).items() if k.partition("/")[0] == vae}
    if not sets:
        have = sorted({k.partition("/")[0] for k in section.get("sets") or {}})
        raise ValueError(f"{source} holds no latents of VAE {vae!r} (it has {have or 'none'}); compute them with "
                         f"`curate latents {source} PIPELINE.yaml`")
    paths = [f"{root}/{e['path']}" if root else e["path"] for e in section["shards"]]
    fs, paths = resolve_shards(paths)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("shard", "row_group", "pos", "clip_id")}
    where: dict[tuple[str, str], int] = {}
    n = 0
    for shard, path in enumerate(paths):
        frag = ds.ParquetFileFormat().make_fragment(path, filesystem=fs)
        for rg in frag.split_by_row_group():
            t = rg.to_table(columns=["clip_id", "vae", "bucket"])
            ids = t.column("clip_id").to_numpy(zero_copy_only=False)
            for i, (cid, v, b) in enumerate(zip(ids, t.column("vae").to_pylist(), t.column("bucket").to_pylist())):
                if v == vae:
                    where[(cid, b)] = n + i
            cols["shard"].append(np.full(len(ids), shard, np.int32))
            cols["row_group"].append(np.full(len(ids), rg.row_groups[0].id, np.int32))
            cols["pos"].append(np.arange(len(ids), dtype=np.int32))
            cols["clip_id"].append(ids)
            n += len(ids)
    arrays = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    zeros = np.zeros(n)
    index = RowIndex(fs, paths, None, **arrays, width=zeros, height=zeros, num_frames=zeros, fps=zeros)
    return index, sets, where
