"""Tiny randomly initialised models, saved to disk and loaded through the real loaders.

No pretrained CLIP or captioner weights exist on development machines, so the
tests build small models, save them the way real checkpoints are published,
and load them with the project's code. Import the fixtures into a test module
(``from tests.models_fixtures import tiny_clip  # noqa: F401``).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TINY_CLIP_NAME = "curate-tiny-clip"
TINY_CLIP_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
CAPTION_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "picture", "of", "cat", "dog", "runs", "on", "the", "grass", "red", "blue", "video", "shows"]


def register_tiny_clip(directory: Path) -> str:
    """Register the tiny architecture with open_clip (as a user adds a custom config)."""
    import open_clip

    if TINY_CLIP_NAME not in open_clip.list_models():
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{TINY_CLIP_NAME}.json").write_text(json.dumps(TINY_CLIP_CFG))
        open_clip.add_model_config(directory / f"{TINY_CLIP_NAME}.json")
    return TINY_CLIP_NAME


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """A tiny CLIP saved two ways: a ``.pt`` state dict for the registered architecture,
    and an open_clip ``local-dir`` folder (config + ``open_clip_pytorch_model.bin``), the hub layout."""
    import open_clip
    import torch

    root = tmp_path_factory.mktemp("tiny_clip")
    name = register_tiny_clip(root / "configs")
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None)
    torch.save(model.state_dict(), root / "tiny_clip.pt")
    local = root / "hub_layout"
    local.mkdir()
    (local / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP_CFG, "preprocess_cfg": {}}))
    torch.save(model.state_dict(), local / "open_clip_pytorch_model.bin")
    return {"name": name, "checkpoint": root / "tiny_clip.pt", "local_dir": local}


def caption_tokenizer(workdir: Path) -> Any:
    """A word-level BERT tokenizer over ``CAPTION_WORDS`` (``workdir`` holds its vocab file where transformers needs one)."""
    from transformers import BertTokenizerFast

    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:  # transformers >= 5
        return BertTokenizerFast(vocab={w: i for i, w in enumerate(CAPTION_WORDS)}, do_lower_case=True)
    vocab_file = workdir / "vocab.txt"
    vocab_file.write_text("\n".join(CAPTION_WORDS) + "\n")
    return BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)


def tiny_text_encoder(out: Path, kind: str) -> Path:
    """A tiny random ``T5EncoderModel`` or ``CLIPTextModel`` and its tokenizer, written with ``save_pretrained`` to ``out``."""
    import torch
    import transformers as tf

    out.mkdir(parents=True, exist_ok=True)
    tok = caption_tokenizer(out)
    ids = {"pad_token_id": tok.pad_token_id, "bos_token_id": tok.cls_token_id, "eos_token_id": tok.sep_token_id}
    if kind == "T5EncoderModel":
        config = tf.T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, **ids)
    else:
        config = tf.CLIPTextConfig(vocab_size=len(tok), hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=2, max_position_embeddings=64, **ids)
    torch.manual_seed(0)
    getattr(tf, kind)(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BLIP captioner + processor written with ``save_pretrained``."""
    import torch
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tok = caption_tokenizer(tmp_path_factory.mktemp("blip_vocab"))
    tok.add_special_tokens({"bos_token": "[DEC]"})
    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    text = {**small, "vocab_size": len(tok), "max_position_embeddings": 64, "bos_token_id": tok.bos_token_id,
            "pad_token_id": tok.pad_token_id, "sep_token_id": tok.sep_token_id, "eos_token_id": tok.sep_token_id}
    vision = {**small, "image_size": 32, "patch_size": 16}
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=32))
    out = tmp_path_factory.mktemp("tiny_blip")
    model.save_pretrained(out)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(out)
    return out


_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_qwen2_vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2-VL (a video-capable chat VLM) with a byte-level tokenizer, via ``save_pretrained``."""
    import torch
    import transformers as tf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    if not hasattr(tf, "Qwen2VLVideoProcessor"):
        pytest.skip("this transformers has no separate Qwen2-VL video processor")
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    vocab = {w: i for i, w in enumerate(special + [chr(c) for c in range(32, 127)] + ["Ġ", "Ċ"])}
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok = tf.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                     additional_special_tokens=special[1:])
    pixels = {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16}
    processor = tf.Qwen2VLProcessor(image_processor=tf.Qwen2VLImageProcessor(**pixels), video_processor=tf.Qwen2VLVideoProcessor(**pixels),
                                    tokenizer=tok, chat_template=_CHAT_TEMPLATE)
    ids = {k: vocab[f"<|{k}|>"] for k in ("image_pad", "video_pad", "vision_start", "vision_end", "im_end", "endoftext")}
    text = {"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 1, "max_position_embeddings": 512, "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["endoftext"], "eos_token_id": ids["im_end"], "pad_token_id": ids["endoftext"]}
    vision = {"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2, "patch_size": 14,
              "spatial_merge_size": 2, "temporal_patch_size": 2}
    config = tf.Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["image_pad"], video_token_id=ids["video_pad"],
                              vision_start_token_id=ids["vision_start"], vision_end_token_id=ids["vision_end"],
                              bos_token_id=ids["endoftext"], eos_token_id=ids["im_end"], pad_token_id=ids["endoftext"])
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny_qwen2_vl")
    tf.Qwen2VLForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def fake_video(video_id: str, n_clips: int = 2, k: int = 3, seed: int = 0, size: tuple[int, int] = (72, 128), **video: Any) -> dict[str, Any]:
    """A pending video record whose clips carry ``k`` random uint8 frames each (no decoding)."""
    rng = np.random.default_rng(seed)
    clips = [
        {"clip_id": f"{video_id}-{i}", "start_s": 2.0 * i, "end_s": 2.0 * (i + 1), "camera_motion": "pan_left",
         "_frames": [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(k)]}
        for i in range(n_clips)
    ]
    return {"uri": f"/nonexistent/{video_id}.mp4", "video_id": video_id, "status": "pending", "clips": clips, **video}
