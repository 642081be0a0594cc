"""The default pipeline with tiny models built on disk: what the model-side end-to-end tests run.

The tiny CLIP (``tests/models_fixtures.py``) is loaded through ``local-dir:``
like a downloaded checkpoint, and a tiny linear aesthetic head is saved the
way LAION publishes theirs, so the run goes through the real loaders with
no ``random_init`` anywhere. Its embeddings are much alike (random weights),
so near-duplicate tests set their own ``cosine_threshold``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from curate.config import PipelineConfig, load_pipeline

DEFAULT = Path(__file__).resolve().parents[1] / "pipelines" / "default.yaml"


def tiny_head(path: Path, dim: int = 32) -> Path:
    """A ``Linear(dim, 1)`` state dict (keys ``weight``, ``bias``), as the LAION heads are stored."""
    import torch

    if not path.exists():
        g = torch.Generator().manual_seed(1)
        torch.save({"weight": torch.randn(1, dim, generator=g) * 3, "bias": torch.tensor([5.0])}, path)
    return path


def tiny_default(tmp: Path, tiny_clip: dict[str, Any], **over: Any) -> PipelineConfig:
    """``pipelines/default.yaml`` with the tiny models and test-sized clips; ``over`` replaces sections.

    The model-free parts (shot detector aside: adaptive, for speed) stay as
    shipped; caption-check bands suit the tiny CLIP's similarities so that
    some clips pass and some are flagged.
    """
    data = yaml.safe_load(DEFAULT.read_text())
    data.update(
        detector={"kind": "adaptive", "params": {}, "fades": True},
        clips={"min_s": 1.0, "max_s": 4.0, "trim_frames": 2},
        output={"shard_size_mb": 0.05, "row_group_rows": 16},
        limits={"video_timeout_s": 60},
        clip={"model": f"local-dir:{tiny_clip['local_dir']}", "pretrained": None, "batch_size": 16},
        aesthetic={"head": str(tiny_head(Path(tiny_clip["local_dir"]).parent / "tiny_head.pth"))},
        caption={"kind": "clip-retrieval", "max_same_caption_videos": 1000},
        caption_check={"pass_min": 0.1, "reject_below": 0.0},
        dedup={"enabled": True, "phash_max_distance": 4, "cosine_threshold": 0.999, "score": "aesthetic_score"},
    )
    data["filter"] = dict(data["filter"], min_aesthetic=0.0)
    for key, value in over.items():
        data[key] = dict(data.get(key) or {}, **value) if isinstance(value, dict) else value
    path = tmp / "tiny-default.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_pipeline(path)


def write_yaml(config: PipelineConfig, path: Path) -> Path:
    """``config`` as a pipeline file (for the CLI)."""
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path
