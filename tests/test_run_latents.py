"""Latents computed during ``curate run`` (a ``latents:`` section), from the frames the encode step decodes.

The reference is what the encoder was fed: with lossless x264 (``crf: 0``) the
stored clip decodes to exactly those frames, so the in-run pixels must equal the
loader's pixels of the stored clip bit for bit and the latents must equal what
``curate latents`` computes from the stored bytes. With the default (lossy) crf
they differ by what x264 loses; the measured gap is asserted as a bound.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from curate.config import PipelineConfig, load_pipeline
from curate.data import Bucket, BucketConfig, ClipDataset, DecodeOptions
from curate.data.decode import decode_targets
from curate.data.latents import from_bytes
from curate.discover import discover
from curate.latents import add_latents, fitting, targets
from curate.models.vae import load_vae
from curate.output import shards
from curate.output.shards import Location, read_table
from curate.pipeline import build_stages
from curate.run import run_pipeline
from curate.validate import validate
from tests.latents_helpers import BUCKETS, MODEL_FREE, copy_output
from tests.pipeline_helpers import make_inputs
from tests.test_resume_commit import Crash, crash_on
from tests.vae_fixtures import tiny_vae


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runlatents")
    make_inputs(root / "in", 2)
    return {"root": root, "in": root / "in", "vae": tiny_vae(root / "vae")}


def _pipeline(made: dict[str, Path], name: str, **encode: Any) -> Path:
    """model-free + a latents section; ``encode`` overrides (``crf: 0`` stores exactly the frames the encoder got)."""
    data = yaml.safe_load(MODEL_FREE.read_text())
    data.update(clips={"min_s": 1.0, "max_s": 4.0, "trim_frames": 2}, output={"shard_size_mb": 0.05, "row_group_rows": 4},
                limits={"video_timeout_s": 60})
    data["encode"] = {**(data.get("encode") or {}), **encode}
    data["latents"] = {"vae": {"id": "kl", "kind": "AutoencoderKL", "model": str(made["vae"])}, "buckets": BUCKETS, "batch_size": 2}
    path = made["root"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def lossless(made) -> Path:
    """A local run with in-run latents, lossless clips (shared, do not modify)."""
    out = made["root"] / "lossless"
    run_pipeline(load_pipeline(_pipeline(made, "lossless", crf=0)), [str(made["in"])], str(out), runner="local")
    return out


def _latents(out: Path) -> pd.DataFrame:
    """Latent rows by (vae, clip_id, bucket), duplicates kept: what a plain glob of ``latents/`` sees."""
    loc = Location.of(str(out))
    tables = [read_table(loc, f"latents/{n}").to_pandas() for n in loc.names("latents") if n.endswith(".parquet")]
    return pd.concat(tables).sort_values(["vae", "clip_id", "bucket"]).reset_index(drop=True)


def _as_other_vae(out: Path, vae_id: str) -> PipelineConfig:
    """OUTPUT's pipeline with the same VAE weights under another id: ``curate latents`` then computes them from the stored clips."""
    data = json.loads((out / "manifest.json").read_text())["config"]
    data["latents"]["vae"]["id"] = vae_id
    return PipelineConfig.model_validate(data)


def _pairs(out: Path, a: str, b: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    doc = json.loads((out / "manifest.json").read_text())
    rows = _latents(out)
    x, y = (rows[rows.vae == v].set_index(["clip_id", "bucket"]) for v in (a, b))
    assert sorted(x.index) == sorted(y.index)
    shape = {k.partition("/")[2]: s["shape"] for k, s in doc["latents"]["sets"].items()}
    return [(from_bytes(x.loc[k, "latent"], shape[k[1]], "float16").float(), from_bytes(y.loc[k, "latent"], shape[k[1]], "float16").float())
            for k in x.index]


def _encoded(path: Path, video: Path) -> list[dict[str, Any]]:
    """The clips of ``video`` as the run's encode stage leaves them (stages run here, unguarded)."""
    stages = [dataclasses.replace(s, timeout_s=None) for s in build_stages(load_pipeline(path)) if s.name != "latents"]
    record = next(iter(discover([str(video)])))
    for stage in stages:
        stage.start()
        record = stage.process([record])[0]
        stage.stop()
    return [c for c in record["clips"] if not c.get("reject_reasons")]


def test_run_commits_one_latent_per_accepted_clip_and_bucket_and_the_manifest_describes_them(lossless):
    doc = json.loads((lossless / "manifest.json").read_text())
    clips = pd.read_parquet(lossless / "clips")
    rows = _latents(lossless)
    assert len(clips) >= 4 and len(rows) == len(clips) * len(BUCKETS)
    assert not rows.duplicated(["clip_id", "vae", "bucket"]).any() and set(rows.clip_id) == set(clips.clip_id)
    sets = doc["latents"]["sets"]
    assert sorted(sets) == sorted(f"kl/{b['num_frames']}x{b['height']}x{b['width']}" for b in BUCKETS)
    for info in sets.values():
        assert info["class"] == "AutoencoderKL" and info["revision"].startswith("sha256:") and info["dtype"] == "float16"
        assert info["rows"] == len(clips) and info["scaling_factor"] == 0.5 and not info["random_init"]
    assert doc["models"]["vae"]["kl"]["class"] == "AutoencoderKL" and not doc["random_init"]
    assert doc["timings"]["latents"]["videos"] == 2  # a run commit that adds latents still counts its videos' time
    assert validate(str(lossless)) == []


def test_in_run_pixels_are_the_loaders_pixels_of_the_frames_the_encoder_got(made):
    """Lossless clips decode to the frames x264 got: the loader's pixels of the stored clip equal the in-run ones exactly."""
    path = _pipeline(made, "lossless", crf=0)
    clips, cfg = [c for c in _encoded(path, made["in"] / "v0.mp4") if "_latent_pixels" in c], load_pipeline(path).latents
    assert clips
    for clip in clips:
        buckets = fitting(cfg, clip)
        tgs = targets(cfg, buckets)
        decode_targets(clip, tgs)  # the stored bytes, as `curate latents` and the loader decode them
        assert sorted(clip["_latent_pixels"]) == sorted(b.key for b in buckets)
        for b, tg in zip(buckets, tgs):
            np.testing.assert_array_equal(clip["_latent_pixels"][b.key], tg.out.numpy())


def test_in_run_latent_is_the_vae_of_the_loaders_pixels_and_what_curate_latents_computes(lossless, tmp_path: Path):
    vae = load_vae(load_pipeline(Path(lossless).parent / "lossless.yaml").latents.vae)
    for b in BUCKETS:
        bc = BucketConfig((Bucket(b["height"], b["width"], b["num_frames"], 2),), allow_upscale=True)
        pixels = ClipDataset(lossless, bc, seed=3, decode=DecodeOptions(temporal="center", output="float"))
        latents = ClipDataset(lossless, bc, seed=3, latents="kl")
        for px, lat in zip(pixels, latents, strict=True):
            assert px["clip_id"] == lat["clip_id"] and lat["latents"].dtype == torch.float16
            torch.testing.assert_close(lat["latents"].float(), vae.encode(px["video"])[0], atol=2e-3, rtol=2e-3)
    out = copy_output(lossless, tmp_path / "out")
    again = add_latents(str(out), load_pipeline(Path(lossless).parent / "lossless.yaml"))
    assert again.computed == 0 and again.commits == 0 and again.skipped == len(_latents(lossless))  # curate latents after the run: nothing
    assert add_latents(str(out), _as_other_vae(out, "kl2")).computed == len(_latents(lossless))
    for x, y in _pairs(out, "kl", "kl2"):
        torch.testing.assert_close(x, y, atol=2e-3, rtol=2e-3)  # measured: equal bytes
    assert validate(str(out)) == []


def test_lossy_clips_differ_from_the_in_run_reference_by_what_x264_loses(made, tmp_path: Path):
    """The default crf: the loader sees x264's output, in-run latents the frames before it; the gap is the codec's."""
    clips = [c for c in _encoded(_pipeline(made, "lossy"), made["in"] / "v0.mp4") if "_latent_pixels" in c]
    cfg = load_pipeline(made["root"] / "lossy.yaml").latents
    for clip in clips:
        buckets = fitting(cfg, clip)
        tgs = targets(cfg, buckets)
        decode_targets(clip, tgs)
        for b, tg in zip(buckets, tgs):
            d = clip["_latent_pixels"][b.key].astype(float) - tg.out.numpy()
            assert 0 < np.abs(d).mean() < 4 and 10 * np.log10(255**2 / (d**2).mean()) > 35  # measured: 1.7-2.1 mean, 39-41 dB


@pytest.mark.slow  # a Ray run: about 40 s here
def test_ray_runner_gives_the_same_latent_rows(made, lossless, tmp_path: Path, ray_session):
    out = tmp_path / "ray"
    run_pipeline(load_pipeline(made["root"] / "lossless.yaml"), [str(made["in"])], str(out), runner="ray")
    a, b = _latents(lossless), _latents(out)
    assert a[["clip_id", "vae", "bucket"]].equals(b[["clip_id", "vae", "bucket"]])
    sets = json.loads((lossless / "manifest.json").read_text())["latents"]["sets"]
    assert json.loads((out / "manifest.json").read_text())["latents"]["sets"] == sets
    for bucket, x, y in zip(a.bucket, a.latent, b.latent):  # other batches and threads: equal to fp16 rounding
        shape = sets[f"kl/{bucket}"]["shape"]
        torch.testing.assert_close(from_bytes(x, shape, "float16"), from_bytes(y, shape, "float16"), atol=2e-3, rtol=2e-3)
    assert validate(str(out)) == []


def test_a_crash_between_commits_then_a_rerun_stores_each_latent_once(made, lossless, tmp_path: Path, monkeypatch):
    out, path = tmp_path / "out", made["root"] / "lossless.yaml"
    crash_on(monkeypatch, shards, "_rename", lambda src, dst: "/_ledger/part-" in dst and dst.endswith(".parquet"), skip=1)  # the second commit dies at its ledger rename
    with pytest.raises(Crash):
        run_pipeline(load_pipeline(path), [str(made["in"])], str(out), runner="local")
    monkeypatch.undo()
    assert 0 < json.loads((out / "manifest.json").read_text())["latents"]["rows"] < len(_latents(lossless))  # one video committed
    summary = run_pipeline(load_pipeline(path), [str(made["in"])], str(out), runner="local")
    assert summary.skipped == 1 and summary.processed == 1
    rows = _latents(out)
    assert rows[["clip_id", "vae", "bucket"]].equals(_latents(lossless)[["clip_id", "vae", "bucket"]])
    assert list(rows.latent) == list(_latents(lossless).latent)
    assert validate(str(out)) == []


def test_reference_mode_decodes_the_source_span_as_the_loader_does(made, tmp_path: Path):
    out = tmp_path / "ref"
    run_pipeline(load_pipeline(_pipeline(made, "reference", mode="reference")), [str(made["in"] / "v1.mp4")], str(out), runner="local")
    n = len(_latents(out))
    assert n == len(pd.read_parquet(out / "clips")) * len(BUCKETS) > 0
    assert add_latents(str(out), _as_other_vae(out, "kl2")).computed == n
    for x, y in _pairs(out, "kl", "kl2"):
        torch.testing.assert_close(x, y, atol=2e-3, rtol=2e-3)


def test_refilter_after_the_run_leaves_latents_and_the_loader_serves_the_accepted_clips_only(lossless, tmp_path: Path):
    from curate.refilter import refilter

    out = copy_output(lossless, tmp_path / "out")
    config = load_pipeline(Path(lossless).parent / "lossless.yaml")
    motion = pd.read_parquet(out / "clips")["motion_score"].sort_values()
    strict = config.model_copy(update={"filter": config.filter.model_copy(update={"min_motion": float(motion.iloc[1]) + 1e-6})})
    assert refilter(str(out), strict).changed == 2
    assert len(_latents(out)) == len(_latents(lossless)) and validate(str(out)) == []
    kept = set(pd.read_parquet(out / "clips")["clip_id"])
    b = BUCKETS[0]
    seen = {c for batch in ClipDataset(out, BucketConfig.single(b["height"], b["width"], b["num_frames"], 1), latents="kl")
            for c in batch["clip_id"]}
    assert seen == kept and len(kept) == len(_latents(lossless)) // len(BUCKETS) - 2


def test_the_latents_stage_is_a_gpu_pool_where_there_are_gpus_unless_pinned_to_the_cpu(made):
    from curate.runners.pools import plan_pools
    from curate.runners.ray import group_stages

    config = load_pipeline(_pipeline(made, "lossless", crf=0))
    for device, share in (("auto", 0.3), ("cpu", 0.0)):
        cfg = config.model_copy(update={"latents": config.latents.model_copy(update={"device": device})})
        groups = group_stages(build_stages(cfg))
        assert groups[-1].stages[-1].name == "latents" and groups[-1].gpus == share
        pools = plan_pools(groups, [{"CPU": 16.0, "GPU": 1.0}])
        assert (pools[-1].gpus > 0) == (share > 0) and pools[-1].batch_size == (16 if share else 4)


EVERY_CLIP_A_PIECE = {"encode": {"piece_mb": 1e-6}}  # resources: each encoded clip leaves encode as a clip piece of its own


def _pieces_pipeline(made: dict[str, Path]) -> Path:
    """The lossless pipeline with a tiny piece size: every clip (and its latent pixels) goes ahead of its video's record."""
    data = yaml.safe_load(_pipeline(made, "lossless", crf=0).read_text())
    data["resources"] = {**(data.get("resources") or {}), **EVERY_CLIP_A_PIECE}
    path = made["root"] / "pieces.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _same_latents_as(out: Path, reference: Path) -> None:
    """One latent row per accepted clip and bucket, as the run without pieces has; the sidecars and manifest record them."""
    a, b = _latents(reference), _latents(out)
    assert not b.duplicated(["clip_id", "vae", "bucket"]).any()
    assert b[["clip_id", "video_id", "vae", "bucket"]].equals(a[["clip_id", "video_id", "vae", "bucket"]])
    assert set(b.clip_id) == set(pd.read_parquet(out / "clips")["clip_id"])
    sets = json.loads((reference / "manifest.json").read_text())["latents"]["sets"]
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["latents"]["sets"] == sets and doc["latents"]["rows"] == len(a)
    sidecars = [json.loads(p.read_text()) for p in (out / "_ledger").glob("*.json")]
    assert sum(s["computed"] for s in sidecars if s.get("run_commit")) == len(a)
    committed = {f for s in sidecars for f in s["files"]}
    assert committed == {f"latents/{n}" for n in Location.of(str(out)).names("latents") if n.endswith(".parquet")}
    for bucket, x, y in zip(a.bucket, a.latent, b.latent):  # VAE batches of one piece's clips, not two videos': fp16 rounding
        shape = sets[f"kl/{bucket}"]["shape"]
        torch.testing.assert_close(from_bytes(x, shape, "float16"), from_bytes(y, shape, "float16"), atol=2e-3, rtol=2e-3)
    assert doc["timings"]["latents"]["videos"] == 2
    assert validate(str(out)) == []
    assert not list(out.rglob(".w-*")), "a staged piece outlived the run"


def test_clip_pieces_get_their_latents_committed_once_with_their_video(made, lossless, tmp_path: Path):
    out = tmp_path / "pieces"
    summary = run_pipeline(load_pipeline(_pieces_pipeline(made)), [str(made["in"])], str(out), runner="local")
    assert summary.accepted == len(pd.read_parquet(lossless / "clips"))
    # every clip was a piece: its latent rows were staged with it, one latents file per piece
    assert len([n for n in Location.of(str(out)).names("latents") if n.endswith(".parquet")]) == summary.accepted
    _same_latents_as(out, lossless)


@pytest.mark.slow  # a Ray run
def test_ray_runner_gives_clip_pieces_their_latents(made, lossless, tmp_path: Path, ray_session):
    out = tmp_path / "ray-pieces"
    run_pipeline(load_pipeline(_pieces_pipeline(made)), [str(made["in"])], str(out), runner="ray")
    _same_latents_as(out, lossless)


def test_a_piece_whose_vae_call_fails_goes_on_without_latents(caplog):
    """The piece's video may be past the stage already: the piece is not failed, its clips just get no latents now."""
    from curate.records import piece
    from curate.stages.latents import LatentsStage

    class Broken:
        info: dict = {}

        def encode(self, pixels):
            raise RuntimeError("out of memory")

    stage = LatentsStage(latents=PipelineConfig.model_validate({"latents": {"vae": {"id": "kl", "kind": "AutoencoderKL", "model": "x"},
                                                                              "buckets": BUCKETS}}).latents)
    stage._vae = Broken()
    clip = {"clip_id": "c0", "_latent_pixels": {"5x32x48": np.zeros((5, 3, 32, 48), np.uint8)}}
    pieces = [piece({"video_id": "v", "uri": "u"}, [dict(clip)]), piece({"video_id": "v", "uri": "u"}, [dict(clip, clip_id="c1")])]
    out = stage.process(pieces)
    assert [p["clips"][0]["clip_id"] for p in out] == ["c0", "c1"]
    assert all("_latent_pixels" not in c and "_latents" not in c for p in out for c in p["clips"])
    assert all("status" not in p and "_latent_sets" not in p for p in out)
    assert "get no latents now" in caplog.text
