"""Caption embeddings as stored by ``curate latents`` (``text_embeddings:``): the loader's index and tensors.

An embedding is raw little-endian fp16/bf16 bytes ``(max_length, hidden)`` in C
order and the mask ``max_length`` uint8 bytes; shape and dtype are recorded once
per encoder in the manifest (``text_embeddings.sets``). A row serves a clip only
while its ``caption_sha256`` is that of the clip's caption: after a review edit
the old embedding belongs to a caption the clip no longer has.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .derived import derived_index
from .index import RowIndex
from .latents import from_bytes


def caption_hash(caption: str) -> str:
    """What a row records of the caption it encodes (``caption_sha256``)."""
    return hashlib.sha256(caption.encode("utf-8")).hexdigest()


def text_index(source: Any, encoder: str) -> tuple[RowIndex, dict[str, Any], dict[str, tuple[int, str]]]:
    """``(index of embedding rows, the encoder's set record, clip_id -> (row id, caption_sha256))`` of ``encoder``.

    Raises when the OUTPUT has no embeddings of ``encoder`` (naming those it has).
    """
    index, section, cols = derived_index(source, "text_embeddings", ["encoder", "caption_sha256"])
    sets = section.get("sets") or {}
    if encoder not in sets:
        raise ValueError(f"{source} holds no caption embeddings of encoder {encoder!r} (it has {sorted(sets) or 'none'}); "
                         f"compute them with `curate latents {source} PIPELINE.yaml` and a text_embeddings section")
    where = {cid: (i, sha) for i, (cid, e, sha) in enumerate(zip(index.clip_id.tolist(), cols["encoder"], cols["caption_sha256"]))
             if e == encoder}
    return index, sets[encoder], where


def to_tensors(rows: list[dict[str, Any]], info: dict[str, Any]) -> tuple[Any, Any]:
    """``(embeddings (B, L, D), mask (B, L) bool)`` of stored rows (``embedding``, ``mask``)."""
    import torch

    emb = torch.stack([from_bytes(r["embedding"], info["shape"], info["dtype"]) for r in rows])
    mask = torch.stack([torch.frombuffer(bytearray(r["mask"]), dtype=torch.uint8) for r in rows]).bool()
    return emb, mask
