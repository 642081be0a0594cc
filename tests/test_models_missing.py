"""Weights that cannot be had stop the run up front with a message saying how to provide them."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from curate.models.captioners import TransformersCaptioner
from curate.models.clip import check_available, load_clip
from curate.models.download import check_models, download_models, required
from curate.models.hub import ModelUnavailable
from curate.models.settings import (
    AestheticConfig,
    CaptionConfig,
    ClipModelConfig,
    ModelsConfig,
)
from curate.stages.clip_embed import ClipEmbedStage
from tests.models_fixtures import tiny_clip  # noqa: F401

HOW = ("curate models download PIPELINE.yaml --output DIR", "models.dir", "--models-dir")


@pytest.fixture
def offline(monkeypatch, tmp_path) -> ModelsConfig:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return ModelsConfig(dir=tmp_path / "empty_models")


def _says_how(e: pytest.ExceptionInfo, name: str) -> None:
    msg = str(e.value)
    assert name in msg and all(h in msg for h in HOW), msg


@pytest.mark.parametrize(
    "cfg, name",
    [
        (ClipModelConfig(), "ViT-B-32 (openai)"),
        (ClipModelConfig(model="ViT-B-32", pretrained="laion2b_s34b_b79k"), "laion2b_s34b_b79k"),
        (ClipModelConfig(model="hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", pretrained=None), "hf-hub:laion/CLIP-ViT-B-32"),
        (ClipModelConfig(model="ViT-B-32", pretrained="hf-hub:org/repo/weights.bin"), "ViT-B-32"),
    ],
)
def test_clip_offline_without_cache(cfg, name, offline):
    with pytest.raises(ModelUnavailable) as e:
        check_available(cfg, offline)
    _says_how(e, name)
    assert "offline" in str(e.value)


def test_stage_setup_fails_before_processing(offline):
    stage = ClipEmbedStage(clip=ClipModelConfig(), models=offline)
    with pytest.raises(ModelUnavailable):
        stage.setup()


def test_missing_local_files(tmp_path, tiny_clip):  # noqa: F811
    with pytest.raises(ModelUnavailable) as e:
        check_available(ClipModelConfig(model=tiny_clip["name"], pretrained=str(tmp_path / "gone.pt")))
    _says_how(e, "gone.pt")
    no_weights = tmp_path / "config_only"
    no_weights.mkdir()
    shutil.copy(tiny_clip["local_dir"] / "open_clip_config.json", no_weights)
    cfg = ClipModelConfig(model=f"local-dir:{no_weights}", pretrained=None)
    with pytest.raises(ModelUnavailable, match="no weights"):  # open_clip itself would warn and go random
        load_clip(cfg)
    assert load_clip(cfg.model_copy(update={"random_init": True})).info["random_init"] is True
    with pytest.raises(ValueError, match="neither a tag"):
        check_available(ClipModelConfig(model="ViT-B-32", pretrained="no_such_tag"))


def test_captioner_unavailable(offline, tmp_path):
    with pytest.raises(ModelUnavailable) as e:
        TransformersCaptioner(CaptionConfig(kind="transformers", model="Salesforce/blip-image-captioning-base"), offline)
    _says_how(e, "Salesforce/blip-image-captioning-base")
    with pytest.raises(ModelUnavailable, match="not found"):
        TransformersCaptioner(CaptionConfig(kind="transformers", model=str(tmp_path / "nope")))


def test_check_models_names_every_missing_model(offline, tmp_path):
    config = SimpleNamespace(
        models=offline, clip=ClipModelConfig(), aesthetic=AestheticConfig(head=str(tmp_path / "head.pth")),
        caption=CaptionConfig(kind="transformers", model="microsoft/git-base"),
    )
    assert len(required(config)) == 3
    with pytest.raises(ModelUnavailable) as e:
        check_models(config)
    for name in ("ViT-B-32", "head.pth", "microsoft/git-base"):
        assert name in str(e.value)
    assert required(SimpleNamespace(clip=ClipModelConfig(random_init=True), caption=CaptionConfig())) == []
    with pytest.raises(ModelUnavailable, match="needs network"):
        download_models(config, tmp_path / "dl", log=lambda _: None)


def test_offline_load_from_models_dir_hub_layout(offline, tiny_clip):  # noqa: F811
    """What `curate models download` leaves (a hub cache) loads with models.dir and no network."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = offline.dir / "models--curate--tiny-clip"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in ("open_clip_config.json", "open_clip_pytorch_model.bin"):
        shutil.copy(tiny_clip["local_dir"] / f, snap / f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    cfg = ClipModelConfig(model="hf-hub:curate/tiny-clip", pretrained=None)
    check_available(cfg, offline)
    model = load_clip(cfg, offline)
    assert model.info["revision"] == commit and model.info["random_init"] is False
    ref = load_clip(ClipModelConfig(model=f"local-dir:{tiny_clip['local_dir']}", pretrained=None))
    frame = [np.full((40, 40, 3), 128, np.uint8)]
    np.testing.assert_allclose(model.encode_images(frame), ref.encode_images(frame), atol=1e-6)


def test_models_cli_mounts():
    from typer.testing import CliRunner

    from curate.cli import models_app

    result = CliRunner().invoke(models_app, ["download", "--help"])
    assert result.exit_code == 0 and "--to" in result.output
