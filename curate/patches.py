"""Video / latent patches as token sequences, and NaViT-style packing.

Diffusion transformers see a clip as a sequence of spatio-temporal patches.
``patchify`` cuts a ``(T, C, H, W)`` tensor (pixels or VAE latents, with
optional leading batch dims; ``layout="CTHW"`` for the ``(C, T, H, W)``
latents diffusers VAEs and ``ClipDataset(latents=...)`` give) into ``pt x ph x pw`` patches, padding T, H and
W up to multiples of the patch and recording that padding, so ``unpatchify``
restores the exact input.  Token order is time, then rows, then columns;
each token's features are laid out ``(pt, ph, pw, C)``.

``pack`` puts clips of different sizes into rows of a fixed token budget
(first-fit decreasing), with position ids and a block-diagonal attention
mask, so one batch can mix resolutions and durations (NaViT, Dehghani et
al. 2023) instead of bucketing.

PyTorch has two mask conventions and mixing them up silently attends to
the wrong tokens, so ``Packed`` names both: :meth:`Packed.sdpa_mask` for
``F.scaled_dot_product_attention`` (True = may attend, ``(B, 1, L, L)``,
broadcast over heads) and :meth:`Packed.transformer_mask` for
``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` (True = blocked,
one mask per head, ``(B * heads, L, L)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F


Layout = Literal["TCHW", "CTHW"]


@dataclass(frozen=True)
class Patches:
    """Tokens of one clip (or a batch of same-shape clips).

    Attributes:
        tokens: ``(*lead, N, pt*ph*pw*C)`` with ``N = t*h*w``.
        pos: ``(N, 3)`` long position ids ``(t, h, w)`` on the patch grid.
        grid: ``(t, h, w)`` patches along each axis.
        patch: ``(pt, ph, pw)``.
        shape: the input's ``(T, C, H, W)``.
        pad: frames, rows and columns appended (zeros) to reach the grid.
        layout: the input's axis order, ``"TCHW"`` or ``"CTHW"``; :func:`unpatchify` returns the same.
    """

    tokens: torch.Tensor
    pos: torch.Tensor
    grid: tuple[int, int, int]
    patch: tuple[int, int, int]
    shape: tuple[int, int, int, int]
    pad: tuple[int, int, int]
    layout: Layout = "TCHW"


def patchify(x: torch.Tensor, patch: tuple[int, int, int] = (1, 2, 2), layout: Layout = "TCHW") -> Patches:
    """Cut ``x`` (``(*lead, T, C, H, W)``, or ``(*lead, C, T, H, W)`` with ``layout="CTHW"``) into tokens,
    zero-padding what the patch does not divide. Tokens are the same for both layouts."""
    if layout not in ("TCHW", "CTHW"):
        raise ValueError(f"layout must be 'TCHW' or 'CTHW', not {layout!r}")
    if layout == "CTHW":
        x = x.movedim(-4, -3)
    *lead, T, C, H, W = x.shape
    pt, ph, pw = patch
    pad = (-T % pt, -H % ph, -W % pw)
    if any(pad):
        x = F.pad(x, (0, pad[2], 0, pad[1], 0, 0, 0, pad[0]))
    t, h, w = (T + pad[0]) // pt, (H + pad[1]) // ph, (W + pad[2]) // pw
    n = len(lead)
    x = x.reshape(*lead, t, pt, C, h, ph, w, pw)
    x = x.permute(*range(n), n, n + 3, n + 5, n + 1, n + 4, n + 6, n + 2)  # (*lead, t, h, w, pt, ph, pw, C)
    tokens = x.reshape(*lead, t * h * w, pt * ph * pw * C)
    ar = [torch.arange(n, device=x.device) for n in (t, h, w)]
    pos = torch.stack(torch.meshgrid(*ar, indexing="ij"), dim=-1).reshape(-1, 3)
    return Patches(tokens, pos, (t, h, w), (pt, ph, pw), (T, C, H, W), pad, layout)


def unpatchify(p: Patches, tokens: torch.Tensor | None = None) -> torch.Tensor:
    """Invert :func:`patchify`; ``tokens`` (e.g. a model's output) replace ``p.tokens``.

    The channel count is taken from the token width, so outputs with another
    number of channels than the input (a predicted noise, say) also work.
    """
    tokens = p.tokens if tokens is None else tokens
    *lead, N, D = tokens.shape
    (t, h, w), (pt, ph, pw) = p.grid, p.patch
    if N != t * h * w or D % (pt * ph * pw):
        raise ValueError(f"tokens {tuple(tokens.shape)} do not match grid {p.grid} and patch {p.patch}")
    C, n = D // (pt * ph * pw), len(lead)
    x = tokens.reshape(*lead, t, h, w, pt, ph, pw, C)
    x = x.permute(*range(n), n, n + 3, n + 6, n + 1, n + 4, n + 2, n + 5)  # (*lead, t, pt, C, h, ph, w, pw)
    x = x.reshape(*lead, t * pt, C, h * ph, w * pw)
    T, _, H, W = p.shape
    x = x[..., :T, :, :H, :W]
    return x.movedim(-3, -4) if p.layout == "CTHW" else x


@dataclass(frozen=True)
class Packed:
    """Clips packed into ``B`` rows of ``L`` tokens.

    Attributes:
        tokens: ``(B, L, D)``, zeros where a row is not full.
        pos: ``(B, L, 3)`` position ids of each token within its own clip (zeros on padding).
        seq_id: ``(B, L)`` index of the clip (in the input order) owning each token, -1 on padding.
        spans: per input clip, ``(row, start, length)``.
    """

    tokens: torch.Tensor
    pos: torch.Tensor
    seq_id: torch.Tensor
    spans: list[tuple[int, int, int]]

    def attention_mask(self) -> torch.Tensor:
        """``(B, L, L)`` bool, True where query and key belong to the same clip (one mask per row).

        Padding tokens attend only to themselves, so no softmax row is empty
        (an all-masked row gives NaN).  To hand to PyTorch use the named forms:
        :meth:`sdpa_mask` or :meth:`transformer_mask`.
        """
        same = self.seq_id[:, :, None] == self.seq_id[:, None, :]
        real = (self.seq_id >= 0)[:, :, None]
        eye = torch.eye(self.seq_id.shape[1], dtype=torch.bool, device=self.seq_id.device)
        return (same & real) | eye

    def sdpa_mask(self) -> torch.Tensor:
        """``(B, 1, L, L)`` bool for ``F.scaled_dot_product_attention``: True = may attend.

        The head axis is 1 so it broadcasts over ``(B, heads, L, L)``; a
        ``(B, L, L)`` mask would be broadcast against the heads axis instead.
        """
        return self.attention_mask()[:, None]

    def transformer_mask(self, num_heads: int) -> torch.Tensor:
        """``(B * num_heads, L, L)`` bool for ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer``.

        Their boolean ``attn_mask`` / ``src_mask`` has the opposite polarity
        (True = may *not* attend) and, for batches, one mask per head,
        batch-major as they expect.  Pass it alone: adding a
        ``src_key_padding_mask`` would mask the padding rows entirely (NaN).
        """
        return (~self.attention_mask()).repeat_interleave(num_heads, dim=0)

    def unpack(self, tokens: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Each clip's ``(N_i, D)`` tokens back out of ``tokens`` (default: the packed input)."""
        tokens = self.tokens if tokens is None else tokens
        return [tokens[row, start : start + n] for row, start, n in self.spans]


def pack(items: Sequence[Patches], max_tokens: int) -> Packed:
    """Pack clips' tokens into as few rows of ``max_tokens`` as first-fit decreasing finds."""
    if not items:
        raise ValueError("nothing to pack")
    dims = {p.tokens.shape[-1] for p in items}
    if len(dims) != 1 or any(p.tokens.dim() != 2 for p in items):
        raise ValueError(f"pack needs single clips ((N, D) tokens) of one width, got widths {sorted(dims)}")
    lengths = [p.tokens.shape[0] for p in items]
    if max(lengths) > max_tokens:
        raise ValueError(f"a clip has {max(lengths)} tokens, over the budget of {max_tokens}; use a bigger budget or patch")
    fill: list[int] = []
    spans: list[tuple[int, int, int]] = [(0, 0, 0)] * len(items)
    for i in sorted(range(len(items)), key=lambda i: -lengths[i]):
        row = next((r for r, used in enumerate(fill) if used + lengths[i] <= max_tokens), len(fill))
        if row == len(fill):
            fill.append(0)
        spans[i] = (row, fill[row], lengths[i])
        fill[row] += lengths[i]
    first = items[0].tokens
    tokens = first.new_zeros(len(fill), max_tokens, first.shape[-1])
    pos = torch.zeros(len(fill), max_tokens, 3, dtype=torch.long, device=first.device)
    seq_id = torch.full((len(fill), max_tokens), -1, dtype=torch.long, device=first.device)
    for i, (p, (row, start, n)) in enumerate(zip(items, spans)):
        tokens[row, start : start + n] = p.tokens
        pos[row, start : start + n] = p.pos
        seq_id[row, start : start + n] = i
    return Packed(tokens, pos, seq_id, spans)
