"""``ClipDataset(latents=VAE_ID)``: stored latents in batches, with every loader guarantee of pixel batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from curate.config import PipelineConfig
from curate.data import Bucket, BucketConfig, ClipDataset, ClipLoader
from curate.latents import add_latents
from curate.patches import patchify, unpatchify
from curate.run import run_pipeline
from curate.synth import make_video
from tests.latents_helpers import copy_output, finished_output, with_latents
from tests.vae_fixtures import tiny_vae

BUCKETS = BucketConfig((Bucket(64, 64, 9, 2), Bucket(32, 48, 5, 1)), allow_upscale=True)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("latents-loader")
    out = finished_output(root, videos=3)
    vae = {"id": "kl", "kind": "AutoencoderKL", "model": str(tiny_vae(root / "vae", "AutoencoderKL"))}
    add_latents(str(out), with_latents(out, vae))
    return out, vae


def _ids(out: Path) -> set[str]:
    import pandas as pd

    return set(pd.read_parquet(out / "clips")["clip_id"])


def key(b: dict) -> tuple:
    return (b["epoch"], b["batch_index"], tuple(b["clip_id"]), tuple(b["repeated"].tolist()), b["latents"].float().sum().item())


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_every_clip_once_per_epoch_and_equal_batches_per_rank(made, ranks: int):
    out, _ = made
    per_rank = [list(ClipDataset(out, BUCKETS, latents="kl", seed=5, rank=r, num_ranks=ranks)) for r in range(ranks)]
    assert len({len(batches) for batches in per_rank}) == 1
    real = [cid for batches in per_rank for b in batches for cid, rep in zip(b["clip_id"], b["repeated"].tolist()) if not rep]
    assert sorted(real) == sorted(_ids(out))
    for batches in per_rank:
        for b in batches:
            assert b["latents"].shape[:3] == (len(b["clip_id"]), 4, b["shape"][0]) and "video" not in b


@pytest.mark.parametrize(("workers_before", "workers_after", "k"), [(2, 1, 1), (0, 2, 2)])
def test_resume_after_k_batches(made, workers_before: int, workers_after: int, k: int):
    out, _ = made
    one = BucketConfig.single(64, 64, 9, 1)  # a batch per clip: enough batches to stop in the middle

    def dataset() -> ClipDataset:
        return ClipDataset(out, one, latents="kl", seed=7, shuffle_buffer=3)

    full = [key(b) for b in ClipLoader(dataset(), num_workers=2)]
    ds, before = dataset(), []
    for b in ClipLoader(ds, num_workers=workers_before):
        before.append(key(b))
        if len(before) == k:
            break
    state = json.loads(json.dumps(ds.state_dict()))
    resumed = dataset()
    resumed.load_state_dict(state)
    assert before + [key(b) for b in ClipLoader(resumed, num_workers=workers_after)] == full
    pixels = ClipDataset(out, one, seed=7, shuffle_buffer=3)
    with pytest.raises(ValueError):  # a pixel loader's position is not a latent loader's
        pixels.load_state_dict(state)


def test_clips_without_latents_are_left_out_until_computed(made, tmp_path: Path):
    out, vae = made
    out = copy_output(out, tmp_path / "out")
    extra = tmp_path / "more"
    extra.mkdir()
    make_video(extra / "new.mp4", [(60, "pan_left"), (60, "zoom_in")], size=(192, 144), seed=9)
    config = PipelineConfig.model_validate(json.loads((out / "manifest.json").read_text())["config"])
    # a run without the latents section (allowed: a derived setting) commits clips without latents
    run_pipeline(config.model_copy(update={"latents": None}), [str(extra)], str(out), runner="local")
    new = _ids(out) - _ids(made[0])
    assert new
    with pytest.warns(UserWarning, match=f"{len(new)} clips have no latents"):
        ds = ClipDataset(out, BUCKETS, latents="kl")
    assert not new & {c for b in ds for c in b["clip_id"]}
    again = add_latents(str(out), with_latents(out, vae))
    assert again.computed == 2 * len(new) and again.skipped == 2 * len(_ids(made[0]))
    assert {c for b in ClipDataset(out, BUCKETS, latents="kl") for c in b["clip_id"]} == _ids(out)


def test_wrong_requests_are_named(made):
    out, _ = made
    with pytest.raises(ValueError, match="no latents of VAE 'nope'.*'kl'"):
        ClipDataset(out, BUCKETS, latents="nope")
    with pytest.raises(ValueError, match="fps=None"):
        ClipDataset(out, BucketConfig.single(64, 64, 9, 2, fps=8.0), latents="kl")
    with pytest.raises(ValueError, match="OUTPUT"):
        ClipDataset(str(out / "clips" / "*.parquet"), BUCKETS, latents="kl")


def test_hooks_and_patchify_take_latent_batches(made):
    out, _ = made
    seen = []

    def transform(sample: dict) -> dict:
        seen.append(tuple(sample["latents"].shape))
        return sample

    batch = next(iter(ClipDataset(out, BUCKETS, latents="kl", transform=transform)))
    assert seen and all(len(s) == 4 for s in seen) and batch["latents"].ndim == 5
    lat = batch["latents"].float()
    p = patchify(lat, (1, 2, 2), layout="CTHW")
    same = patchify(lat.transpose(1, 2), (1, 2, 2))  # the (B, T, C, H, W) view of the same latents
    assert torch.equal(p.tokens, same.tokens) and p.grid == same.grid
    assert torch.equal(unpatchify(p), lat)
