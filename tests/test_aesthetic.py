"""LAION aesthetic heads: real ViT-B/32 weights, the improved-predictor layout, the stage."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from curate.models.aesthetic import aggregate, head_from_state_dict, load_head
from curate.models.hub import ModelUnavailable
from curate.models.settings import AestheticConfig, ClipModelConfig, ModelsConfig
from curate.stages.aesthetic import AestheticStage
from tests.models_fixtures import fake_video, tiny_clip  # noqa: F401


@pytest.mark.shared
def test_real_vit_b_32_head_orders_the_ten_ratings(shared_dir):
    base = shared_dir / "weights" / "laion-aesthetic"
    head = load_head(str(base / "sa_0_4_vit_b_32_linear.pth"))
    emb = np.stack([np.load(base / "vit_b_32_embeddings" / f"rating{i}.npy").reshape(-1) for i in range(10)])
    scores = head.score(emb)
    assert head.layout == "linear" and head.input_dim == 512
    assert np.all(np.diff(scores) > 0), scores
    assert scores[0] < 0 and scores[9] > 10
    assert load_head(str(base / "sa_0_4_vit_l_14_linear.pth")).input_dim == 768


def _improved_predictor():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(  # LAION improved-aesthetic-predictor MLP layout
        torch.nn.Linear(768, 1024), torch.nn.Dropout(0.2), torch.nn.Linear(1024, 128), torch.nn.Dropout(0.2),
        torch.nn.Linear(128, 64), torch.nn.Dropout(0.1), torch.nn.Linear(64, 16), torch.nn.Linear(16, 1),
    ).eval()


def test_improved_predictor_layout_matches_torch(tmp_path):
    import torch

    mlp = _improved_predictor()
    path = tmp_path / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save({f"layers.{k}": v for k, v in mlp.state_dict().items()}, path)
    head = load_head(str(path))
    x = np.random.default_rng(0).normal(size=(4, 768)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with torch.no_grad():
        want = mlp(torch.from_numpy(x))[:, 0].numpy()
    assert head.layout == "mlp" and len(head.layers) == 5
    np.testing.assert_allclose(head.score(x), want, rtol=1e-4, atol=1e-5)


def test_layout_detection_and_errors():
    w = {"module.weight": np.ones((1, 4)), "module.bias": np.zeros(1)}  # DataParallel prefix
    assert head_from_state_dict(w).score(np.eye(4)).tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="unexpected key"):
        head_from_state_dict({"fc.weight": np.ones((1, 4))})
    with pytest.raises(ValueError, match="do not chain"):
        head_from_state_dict({"layers.0.weight": np.ones((8, 4)), "layers.0.bias": np.zeros(8),
                              "layers.2.weight": np.ones((1, 5)), "layers.2.bias": np.zeros(1)})
    with pytest.raises(ValueError, match=r"takes \(N, 4\)"):
        head_from_state_dict(w).score(np.ones((2, 3)))
    assert aggregate(np.array([1.0, 3.0]), "mean") == 2.0 and aggregate(np.array([1.0, 3.0]), "min") == 1.0


def test_missing_head_is_model_unavailable(tmp_path, monkeypatch):
    with pytest.raises(ModelUnavailable, match="curate models download"):
        load_head(str(tmp_path / "nope.pth"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="offline"):
        load_head(AestheticConfig(), ModelsConfig(dir=tmp_path))  # default: the LAION URL, not cached


def test_stage_scores_frames_and_checks_dims(tmp_path, tiny_clip):  # noqa: F811
    import torch

    lin = torch.nn.Linear(32, 1)
    torch.save(lin.state_dict(), tmp_path / "head32.pth")
    clip = ClipModelConfig(model=tiny_clip["name"], pretrained=str(tiny_clip["checkpoint"]))
    stage = AestheticStage(aesthetic=AestheticConfig(head=str(tmp_path / "head32.pth"), aggregate="min"), clip=clip)
    stage.setup()
    video = fake_video("v", 2, 3)
    fe = np.random.default_rng(0).normal(size=(3, 32)).astype(np.float32)
    video["clips"][0]["_frame_embeddings"] = fe
    out = stage.process([video])[0]["clips"]
    with torch.no_grad():
        want = lin(torch.from_numpy(fe))[:, 0].min().item()
    assert out[0]["aesthetic_score"] == pytest.approx(want, rel=1e-5) and out[1]["aesthetic_score"] is None
    torch.save(torch.nn.Linear(512, 1).state_dict(), tmp_path / "head512.pth")
    with pytest.raises(ValueError, match="512-d embeddings but clip model"):
        AestheticStage(aesthetic=AestheticConfig(head=str(tmp_path / "head512.pth")), clip=clip).setup()


@pytest.fixture
def served(tmp_path):
    """``tmp_path/www`` over HTTP on localhost, standing in for the head's download URL."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_head_downloads_once_then_works_offline(served, tmp_path, monkeypatch):
    import torch

    from curate.models.aesthetic import resolve_head
    from curate.models.download import download_models

    www, base = served
    torch.save(torch.nn.Linear(8, 1).state_dict(), www / "head.pth")
    cfg = AestheticConfig(head=f"{base}/head.pth")
    models = ModelsConfig(dir=tmp_path / "models")
    assert resolve_head(cfg, models, download=False) is None  # reachable, not fetched by a check
    fetched = download_models(SimpleNamespace(aesthetic=cfg), models.dir, log=lambda _: None)
    assert fetched == [f"aesthetic head {cfg.head}: {models.dir / 'aesthetic' / 'head.pth'}"]
    (www / "head.pth").unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_head(cfg, models).input_dim == 8
    with pytest.raises(ModelUnavailable, match="offline"):
        load_head(AestheticConfig(head=f"{base}/other.pth"), models)
