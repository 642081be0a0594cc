"""Per-sample ``transform`` and batch ``collate`` hooks, run where the batch is built.

Tokenising captions or augmenting clips belongs in DataLoader workers, next
to decoding, not in the training loop.  When either hook is given the batch
is split into samples (``video`` ``(T, C, H, W)`` or ``latents`` ``(C, T', H', W')``, ``text_embeddings`` ``(L, D)`` and
``text_mask`` ``(L,)`` when asked for, ``caption``, ``clip_id``,
``meta`` and each tensor column's row), each passes through ``transform``,
and ``collate`` (default :func:`stack_samples`) joins them again.  The
loader's own keys (``repeated``, ``errors``, ``shape``, ``epoch``,
``batch_index``) are added afterwards: resume needs them, whatever collate does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from numbers import Number
from typing import Any

import torch

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]
Collate = Callable[[list[Sample]], Mapping[str, Any]]
LOADER_KEYS = ("repeated", "errors", "shape", "epoch", "batch_index")


def stack_samples(samples: list[Sample]) -> dict[str, Any]:
    """Stack same-shape tensors, turn numbers into a tensor, keep anything else as a list."""
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if all(isinstance(v, torch.Tensor) for v in values) and len({tuple(v.shape) for v in values}) == 1:
            out[key] = torch.stack(values)
        elif all(isinstance(v, Number) and not isinstance(v, bool) for v in values) or all(isinstance(v, bool) for v in values):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out


def apply_hooks(batch: dict[str, Any], tensor_keys: tuple[str, ...], transform: Transform | None, collate: Collate | None) -> dict[str, Any]:
    """``batch`` (without loader keys) through ``transform`` per sample and ``collate``."""
    n = len(batch["clip_id"])
    per_sample = [k for k in ("video", "latents", "logvar", "text_embeddings", "text_mask", "caption", "clip_id", "meta") if k in batch] + list(tensor_keys)
    samples = [{k: batch[k][i] for k in per_sample} for i in range(n)]
    if transform is not None:
        samples = [transform(s) for s in samples]
    out = (collate or stack_samples)(samples)
    if not isinstance(out, Mapping):
        raise TypeError(f"collate must return a dict (the loader adds its resume keys to it), got {type(out).__name__}")
    clash = [k for k in LOADER_KEYS if k in out]
    if clash:
        raise ValueError(f"collate output uses the loader's keys {clash}; rename them")
    return dict(out)
