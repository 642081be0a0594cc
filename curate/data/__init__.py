"""Trainer-facing loading of curated clip shards (see docs/loader.md).

Names are imported lazily so planning and indexing stay usable without
importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ClipDataset": "dataset",
    "ClipLoader": "dataset",
    "Bucket": "buckets",
    "BucketConfig": "buckets",
    "DecodeOptions": "decode",
    "DecodeError": "decode",
    "ReadFilter": "index",
    "RowIndex": "index",
    "build_index": "index",
    "EpochPlan": "plan",
    "plan_epoch": "plan",
    "World": "world",
    "stack_samples": "collate",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'curate.data' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
