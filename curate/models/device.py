"""Device and dtype per model actor: CUDA when the actor sees one, half precision there.

Chosen inside the worker (in ``setup()``), not on the driver, because a Ray
actor only sees the GPU fraction it was scheduled with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def pick_device(preference: str = "auto") -> str:
    """``auto`` gives ``cuda`` when a GPU is visible, else ``cpu``; an explicit CUDA request must be met."""
    import torch

    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} requested but no CUDA device is visible; use device: auto or cpu")
    if preference != "cpu" and not preference.startswith("cuda"):
        raise ValueError(f"unknown device {preference!r}; use auto, cpu, cuda or cuda:N")
    return preference


def pick_precision(device: str, precision: str = "auto") -> str:
    """``auto``: bf16 on GPUs that support it, else fp16 on GPU; fp32 on CPU (half is slow there)."""
    import torch

    if precision != "auto":
        if precision != "fp32" and device == "cpu":
            raise ValueError(f"precision {precision} on CPU is not supported; use fp32 or auto")
        return precision
    if device == "cpu":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def torch_dtype(precision: str) -> torch.dtype:
    import torch

    return getattr(torch, _DTYPES[precision])
