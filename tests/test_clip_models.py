"""CLIP loading and the clip_embed stage, with a tiny model saved to disk and loaded like a real one."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from curate.models.clip import embed_dim, load_clip, preprocess_frames, shared_clip
from curate.models.device import pick_device, pick_precision
from curate.models.settings import ClipModelConfig, EmbeddingConfig
from curate.schema import load_schema
from curate.models.clip import manifest_entry
from curate.stages.clip_embed import ClipEmbedStage
from tests.models_fixtures import fake_video, tiny_clip  # noqa: F401


@pytest.fixture(scope="module")
def clip_cfg(tiny_clip) -> ClipModelConfig:  # noqa: F811
    return ClipModelConfig(model=tiny_clip["name"], pretrained=str(tiny_clip["checkpoint"]), batch_size=4)


def test_checkpoint_weights_are_the_saved_ones(tiny_clip, clip_cfg):  # noqa: F811
    import open_clip
    import torch

    model = load_clip(clip_cfg)
    ref = open_clip.create_model(tiny_clip["name"]).eval()
    ref.load_state_dict(torch.load(tiny_clip["checkpoint"], weights_only=True))
    pixels = preprocess_frames([np.full((40, 60, 3), 90, np.uint8), np.zeros((32, 32, 3), np.uint8)], 32)
    x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        open_clip.OPENAI_DATASET_STD
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        want = torch.nn.functional.normalize(ref.encode_image(x), dim=-1).numpy()
    np.testing.assert_allclose(model.encode_pixels(pixels), want, atol=1e-5)
    assert model.info["random_init"] is False and model.info["embed_dim"] == 32


def test_local_dir_layout_loads_same_model(tiny_clip, clip_cfg):  # noqa: F811
    frames = [np.random.default_rng(1).integers(0, 256, (50, 80, 3), dtype=np.uint8) for _ in range(5)]
    a = load_clip(clip_cfg).encode_images(frames)
    b = load_clip(ClipModelConfig(model=f"local-dir:{tiny_clip['local_dir']}", pretrained=None)).encode_images(frames)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert a.shape == (5, 32) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert embed_dim(ClipModelConfig(model=f"local-dir:{tiny_clip['local_dir']}", pretrained=None)) == 32


def test_random_init_only_when_asked_and_marked(tiny_clip):  # noqa: F811
    model = load_clip(ClipModelConfig(model=tiny_clip["name"], random_init=True))
    assert model.info["random_init"] is True and "random init" in model.name
    texts = model.encode_texts(["a cat", "a dog on the grass", "a cat"])
    assert texts.shape == (3, 32) and np.allclose(texts[0], texts[2])


def test_config_rules():
    with pytest.raises(ValidationError, match="random_init"):
        ClipModelConfig(model="ViT-B-32", pretrained="openai", random_init=True)
    with pytest.raises(ValidationError, match="carries its own weights"):
        ClipModelConfig(model="hf-hub:org/repo", pretrained="openai")
    with pytest.raises(ValidationError, match="set pretrained"):
        ClipModelConfig(model="ViT-B-32", pretrained=None)
    assert ClipModelConfig(random_init=True).weights is None
    assert embed_dim(ClipModelConfig()) == 512


def test_preprocess_modes():
    f = np.zeros((60, 120, 3), np.uint8)
    f[:, 50:70] = 255  # a bright vertical band in the centre survives the centre crop
    crop = preprocess_frames([f], 32)
    assert crop.shape == (1, 32, 32, 3) and crop[0, :, 16].min() > 200 and crop[0, :, 0].max() == 0
    assert preprocess_frames([f], (24, 48), "squash").shape == (1, 24, 48, 3)
    pad = preprocess_frames([np.full((60, 120, 3), 200, np.uint8)], 32, "longest")
    assert pad[0, 0, 16, 0] == 0 and pad[0, 16, 16, 0] == 200  # letterboxed
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        preprocess_frames([np.zeros((10, 10), np.uint8)], 32)


def test_device_choice():
    import torch

    if not torch.cuda.is_available():
        assert pick_device("auto") == "cpu"
        with pytest.raises(ValueError, match="no CUDA"):
            pick_device("cuda")
    assert pick_precision("cpu", "auto") == "fp32"
    with pytest.raises(ValueError, match="CPU"):
        pick_precision("cpu", "fp16")


def test_clip_embed_stage_batches_across_videos(clip_cfg):
    stage = ClipEmbedStage(clip=clip_cfg, embedding=EmbeddingConfig(dtype="float16"))
    stage.setup()
    videos = [fake_video("v0", 2, 3, seed=0), fake_video("v1", 3, 2, seed=1, size=(90, 160)), fake_video("v2", 1, 3, seed=2)]
    videos[2]["clips"][0]["reject_reasons"] = [{"key": "min_motion", "detail": "motion_score 0.01 < min_motion 0.15"}]
    done = {"uri": "x", "status": "failed", "clips": []}
    out = stage.process([*videos, done])
    assert out[3] is done and "clip_embed" in out[0]["timings"]
    model = shared_clip(clip_cfg)
    for v_in, v_out in zip(videos[:2], out[:2]):
        for c_in, c_out in zip(v_in["clips"], v_out["clips"]):
            alone = model.encode_images(c_in["_frames"])
            np.testing.assert_allclose(c_out["_frame_embeddings"], alone, atol=1e-5)
            mean = alone.mean(0) / np.linalg.norm(alone.mean(0))
            np.testing.assert_allclose(c_out["embedding"], mean, atol=2e-3)  # float16 storage
            assert len(c_out["embedding"]) == 32
            assert "embedding" not in c_in  # input untouched
    assert "embedding" not in out[2]["clips"][0]  # rejected clip skipped


def test_embedding_column_round_trips_through_schema(clip_cfg):
    stage = ClipEmbedStage(clip=clip_cfg, embedding=EmbeddingConfig(dtype="float16"))
    stage.setup()
    clips = stage.process([fake_video("v", 2, 2)])[0]["clips"]
    schema = load_schema("clip", 2, params={"EMBED_DIM": 32, "EMBED_DTYPE": "float16"})
    arr = pa.array([c["embedding"] for c in clips], type=schema.field("embedding").type)
    assert arr.type.list_size == 32 and str(arr.type.value_type) == "halffloat"
    entry = manifest_entry(clip_cfg, stage.models, stage.embedding)
    assert entry["dim"] == 32 and entry["random_init"] is False and entry["dtype"] == "float16"


def test_bad_video_fails_alone_and_stage_pickles(clip_cfg):
    stage = ClipEmbedStage(clip=clip_cfg)
    stage.setup()
    bad = fake_video("bad", 1, 2)
    bad["clips"][0]["_frames"][1] = np.zeros((8, 8), np.uint8)
    out = stage.process([fake_video("ok", 1, 2), bad])
    assert out[0]["status"] == "pending" and out[0]["clips"][0]["embedding"]
    assert out[1]["status"] == "failed" and "HxWx3" in out[1]["reason"]
    clone = pickle.loads(pickle.dumps(stage))
    assert clone._model is None and clone.clip == clip_cfg
