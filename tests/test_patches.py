"""patchify / unpatchify round trips and NaViT packing masks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.patches import pack, patchify, unpatchify


@settings(max_examples=60, deadline=None, database=None)
@given(
    shape=st.tuples(st.integers(1, 7), st.integers(1, 4), st.integers(1, 11), st.integers(1, 11)),
    patch=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)),
    batch=st.sampled_from([(), (2,)]),
)
def test_roundtrip_exact(shape, patch, batch):
    x = torch.randint(0, 255, (*batch, *shape), dtype=torch.uint8)
    p = patchify(x, patch)
    T, C, H, W = shape
    t, h, w = p.grid
    assert p.tokens.shape == (*batch, t * h * w, patch[0] * patch[1] * patch[2] * C)
    assert p.pad == (-T % patch[0], -H % patch[1], -W % patch[2])
    assert (t * patch[0], h * patch[1], w * patch[2]) == (T + p.pad[0], H + p.pad[1], W + p.pad[2])
    assert torch.equal(unpatchify(p), x)


def test_token_order_and_position_ids():
    x = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).reshape(2, 1, 4, 6)
    p = patchify(x, (1, 2, 3))
    assert p.grid == (2, 2, 2)
    # time, then rows, then columns
    assert p.pos.tolist() == [[t, h, w] for t in range(2) for h in range(2) for w in range(2)]
    # token 1 is frame 0, rows 0-1, columns 3-5; features in (pt, ph, pw, C) order
    assert p.tokens[1].tolist() == x[0, 0, 0:2, 3:6].reshape(-1).tolist()
    assert p.tokens[4].tolist() == x[1, 0, 0:2, 0:3].reshape(-1).tolist()


def test_padding_is_zero_and_recorded():
    x = torch.ones(3, 2, 5, 5)
    p = patchify(x, (2, 2, 2))
    assert p.pad == (1, 1, 1) and p.grid == (2, 3, 3)
    assert p.tokens.sum().item() == x.numel()  # pads add zeros only


def test_unpatchify_takes_model_output_with_other_channels():
    x = torch.randn(4, 16, 8, 8)  # a latent
    p = patchify(x, (1, 2, 2))
    out = torch.randn(p.tokens.shape[0], 1 * 2 * 2 * 4)
    assert unpatchify(p, out).shape == (4, 4, 8, 8)
    with pytest.raises(ValueError):
        unpatchify(p, out[:-1])


def test_pack_masks_and_unpack():
    clips = [patchify(torch.randn(t, 4, h, w), (1, 2, 2)) for t, h, w in [(2, 8, 8), (1, 4, 8), (3, 4, 4), (1, 2, 2), (2, 8, 4)]]
    lengths = [c.tokens.shape[0] for c in clips]  # 32, 8, 12, 1, 16
    packed = pack(clips, max_tokens=40)
    assert packed.tokens.shape[0] == 2 and packed.tokens.shape[1] == 40  # 69 tokens fit in 2 rows of 40
    mask = packed.attention_mask()
    for i, (row, start, n) in enumerate(packed.spans):
        assert n == lengths[i]
        assert (packed.seq_id[row, start : start + n] == i).all()
        assert torch.equal(packed.pos[row, start : start + n], clips[i].pos)
        assert mask[row, start : start + n, start : start + n].all()
        assert mask[row, start : start + n].sum() == n * n  # nothing outside its own clip
    pad = packed.seq_id < 0
    assert (mask[pad].sum(-1) == 1).all()  # padding sees only itself
    assert (packed.tokens[pad] == 0).all()
    for clip, back in zip(clips, packed.unpack()):
        assert torch.equal(clip.tokens, back)
    with pytest.raises(ValueError, match="budget"):
        pack(clips, max_tokens=16)


def _packed_clips() -> tuple[list, object]:
    torch.manual_seed(0)
    clips = [patchify(torch.randn(t, 2, h, w), (1, 2, 2)) for t, h, w in [(2, 4, 4), (1, 4, 8), (1, 2, 2), (3, 2, 4)]]
    return clips, pack(clips, max_tokens=12)


def test_sdpa_mask_matches_attention_per_clip():
    """Packed SDPA with several heads and rows equals attending within each clip alone."""
    import torch.nn.functional as F

    clips, packed = _packed_clips()
    heads, B, L, D = 2, *packed.tokens.shape
    assert packed.sdpa_mask().shape == (B, 1, L, L) and packed.sdpa_mask().dtype == torch.bool
    x = packed.tokens.view(B, L, heads, D // heads).transpose(1, 2)  # (B, heads, L, d)
    out = F.scaled_dot_product_attention(x, x, x, attn_mask=packed.sdpa_mask()).transpose(1, 2).reshape(B, L, D)
    for clip, got in zip(clips, packed.unpack(out)):
        y = clip.tokens.view(1, -1, heads, D // heads).transpose(1, 2)
        alone = F.scaled_dot_product_attention(y, y, y).transpose(1, 2).reshape(-1, D)
        assert torch.allclose(got, alone, atol=1e-5)
    assert not torch.isnan(out).any()


def test_transformer_mask_matches_encoder_layer_per_clip():
    """nn.TransformerEncoderLayer with the inverted, per-head mask equals running each clip alone."""
    clips, packed = _packed_clips()
    layer = torch.nn.TransformerEncoderLayer(d_model=packed.tokens.shape[-1], nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True).eval()
    mask = packed.transformer_mask(num_heads=2)
    B, L, _ = packed.tokens.shape
    assert mask.shape == (B * 2, L, L) and mask[0].equal(~packed.attention_mask()[0])
    with torch.no_grad():
        out = layer(packed.tokens, src_mask=mask)
        for clip, got in zip(clips, packed.unpack(out)):
            assert torch.allclose(got, layer(clip.tokens[None])[0], atol=1e-5)


def test_positions_follow_the_tokens_device():
    device = "meta"  # any non-CPU device shows where pos and seq_id are created
    p = patchify(torch.empty(2, 3, 4, 4, device=device))
    assert p.pos.device.type == device
    packed = pack([p], max_tokens=p.tokens.shape[0] + 3)
    assert packed.pos.device.type == device and packed.seq_id.device.type == device and packed.tokens.device.type == device
