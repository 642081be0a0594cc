"""``curate latents``: VAE latents of the kept clips, computed once per clip, VAE and bucket, stored and committed.

Tiny random diffusers VAEs are saved with ``save_pretrained`` and loaded through
the same path as downloaded ones. The reference for every stored latent is the
VAE applied to the loader's own pixel batch of the same bucket.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from curate.config import ConfigError, PipelineConfig
from curate.config_diff import check_run_fits, differences
from curate.data import Bucket, BucketConfig, ClipDataset, DecodeOptions
from curate.data.decode import Target, decode_clip, decode_targets
from curate.inspect import summarize
from curate.latents import add_latents
from curate.models.download import check_models, layout, required
from curate.models.hub import ModelUnavailable
from curate.models.settings import VaeConfig
from curate.models.vae import load_vae
from curate.output.shards import Location, read_table
from curate.validate import validate
from tests.latents_helpers import BUCKETS, assert_cli_refuses_missing_weights, copy_output, finished_output, with_latents
from tests.vae_fixtures import tiny_vae

KINDS = {"kl": "AutoencoderKL", "cog": "AutoencoderKLCogVideoX"}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("latents")
    return {"out": finished_output(root), **{k: tiny_vae(root / f"vae-{k}", kind) for k, kind in KINDS.items()}}


def _vae(made: dict[str, Path], key: str, **over) -> dict:
    return {"id": key, "kind": KINDS[key], "model": str(made[key]), **over}


def _latent_rows(out: Path) -> pd.DataFrame:
    doc = json.loads((out / "manifest.json").read_text())
    loc = Location.of(str(out))
    tables = [read_table(loc, e["path"]).to_pandas() for e in (doc.get("latents") or {}).get("shards", [])]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["clip_id", "vae", "bucket"])


def _pixel_and_latent_batches(out: Path, vae: str, bucket: dict) -> list[tuple[dict, dict]]:
    """The loader's float pixel batches and latent batches of one bucket, same seed, hence the same clips."""
    bc = BucketConfig((Bucket(bucket["height"], bucket["width"], bucket["num_frames"], 2),), allow_upscale=True)
    pixels = ClipDataset(out, bc, seed=3, decode=DecodeOptions(temporal="center", output="float"))
    latents = ClipDataset(out, bc, seed=3, latents=vae)
    return list(zip(pixels, latents, strict=True))


@pytest.mark.parametrize("key", ["kl", "cog"])
def test_stored_latent_is_the_vae_of_the_loaders_pixels(made, tmp_path: Path, key: str):
    out = copy_output(made["out"], tmp_path / "out")
    config = with_latents(out, _vae(made, key), posterior=True)
    result = add_latents(str(out), config)
    clips = json.loads((out / "manifest.json").read_text())["funnel"]["clips"]["accepted"]
    assert clips >= 4 and result.computed == clips * len(BUCKETS) and result.skipped == 0 and not result.failed
    vae = load_vae(config.latents.vae)  # the same loading path, independently
    for bucket in BUCKETS:
        batches = _pixel_and_latent_batches(out, key, bucket)
        assert batches
        for i, (px, lat) in enumerate(batches):
            assert px["clip_id"] == lat["clip_id"] and lat["latents"].dtype == torch.float16
            mean, logvar = vae.encode(px["video"])
            assert lat["latents"].shape == mean.shape and mean.ndim == 5  # (B, C, T', H', W')
            torch.testing.assert_close(lat["latents"].float(), mean, atol=2e-3, rtol=2e-3)
            torch.testing.assert_close(lat["logvar"].float(), logvar, atol=2e-3, rtol=2e-3)
            # decoding the stored latent gives the VAE's reconstruction of the clip (to fp16 rounding, through the decoder)
            if i == 0:
                torch.testing.assert_close(vae.decode(lat["latents"].float()), vae.decode(mean), atol=1e-2, rtol=1e-2)
    if key == "kl":  # an image VAE: one latent frame per frame
        assert lat["latents"].shape[2] == bucket["num_frames"]
    else:  # a video VAE compresses time
        assert lat["latents"].shape[2] < bucket["num_frames"]
    assert validate(str(out)) == []


def test_manifest_records_the_vae_and_every_reader_reads_the_table(made, tmp_path: Path):
    out = copy_output(made["out"], tmp_path / "out")
    add_latents(str(out), with_latents(out, _vae(made, "kl"), dtype="bfloat16"))
    doc = json.loads((out / "manifest.json").read_text())
    sets = doc["latents"]["sets"]
    assert sorted(sets) == ["kl/5x32x48", "kl/9x64x64"]
    s = sets["kl/9x64x64"]
    assert (s["class"], s["scaling_factor"], s["shift_factor"], s["dtype"], s["shape"]) == ("AutoencoderKL", 0.5, 0.1, "bfloat16", [4, 9, 8, 8])
    assert s["revision"].startswith("sha256:") and s["random_init"] is False and not doc["random_init"]
    assert doc["versions"][-1]["kind"] == "latents" and doc["latents"]["rows"] == sum(x["rows"] for x in sets.values())
    assert "latents" not in doc["shards"]  # clip-table readers never meet latent rows
    n = doc["latents"]["rows"]
    assert len(pd.read_parquet(out / "latents")) == n
    import duckdb

    got = duckdb.sql(f"SELECT bucket, count(*), min(octet_length(latent)) FROM '{out}/latents/*.parquet' GROUP BY bucket ORDER BY bucket").fetchall()
    assert got == [("5x32x48", sets["kl/5x32x48"]["rows"], 4 * 5 * 4 * 6 * 2), ("9x64x64", s["rows"], 4 * 9 * 8 * 8 * 2)]
    from datasets import load_dataset

    assert load_dataset("parquet", data_files=str(out / "latents" / "*.parquet"), split="train").num_rows == n
    assert summarize(str(out))["latents"]["sets"]["kl/9x64x64"]["rows"] == s["rows"]
    lat = next(iter(ClipDataset(out, BucketConfig.single(64, 64, 9, 2), latents="kl")))
    assert lat["latents"].dtype == torch.bfloat16 and "logvar" not in lat


def test_a_second_pass_computes_nothing_and_a_new_vae_only_its_own(made, tmp_path: Path, monkeypatch):
    import curate.models.vae

    out = copy_output(made["out"], tmp_path / "out")
    first = add_latents(str(out), with_latents(out, _vae(made, "kl")))
    with monkeypatch.context() as m:  # nothing to do: the VAE is not even loaded
        m.setattr(curate.models.vae, "load_vae", lambda *a, **k: pytest.fail("loaded the VAE for a pass with nothing to do"))
        again = add_latents(str(out), with_latents(out, _vae(made, "kl")))
    assert (again.computed, again.skipped, again.commits) == (0, first.computed, 0)
    cog = add_latents(str(out), with_latents(out, _vae(made, "cog")))
    assert cog.computed == first.computed
    rows = _latent_rows(out)
    assert not rows.duplicated(["clip_id", "vae", "bucket"]).any() and len(rows) == 2 * first.computed
    assert validate(str(out)) == []


def test_a_vae_id_cannot_name_other_latents(made, tmp_path: Path):
    out = copy_output(made["out"], tmp_path / "out")
    add_latents(str(out), with_latents(out, _vae(made, "kl")))
    with pytest.raises(ConfigError, match="another latents.vae.id"):
        add_latents(str(out), with_latents(out, _vae(made, "kl"), dtype="bfloat16"))
    with pytest.raises(ConfigError, match="another latents.vae.id"):
        add_latents(str(out), with_latents(out, _vae(made, "cog", id="kl")))
    # the same weights copied elsewhere (a models dir moved to another machine) are the same VAE
    moved = tmp_path / "moved-vae"
    shutil.copytree(made["kl"], moved)
    assert add_latents(str(out), with_latents(out, _vae(made, "kl", model=str(moved)))).computed == 0


def test_each_clip_is_decoded_once_for_all_its_buckets(made, tmp_path: Path, monkeypatch):
    import curate.latents as lat

    out = copy_output(made["out"], tmp_path / "out")
    calls: list[int] = []

    def counting(row, targets):
        calls.append(len(targets))
        decode_targets(row, targets)

    monkeypatch.setattr(lat, "decode_targets", counting)
    result = add_latents(str(out), with_latents(out, _vae(made, "kl")))
    assert calls and set(calls) == {len(BUCKETS)} and len(calls) * len(BUCKETS) == result.computed


def test_one_decode_pass_gives_each_target_what_it_gets_alone(made):
    loc = Location.of(str(made["out"]))
    doc = json.loads((made["out"] / "manifest.json").read_text())
    row = read_table(loc, doc["shards"]["clips"][0]["path"]).to_pylist()[0]
    shapes = [(9, 64, 64, None, None), (5, 32, 48, 8.0, None), (4, 40, 24, None, 3)]
    opts = DecodeOptions(temporal="random", crop="random")
    together = [torch.zeros((t, 3, h, w), dtype=torch.uint8) for t, h, w, _, _ in shapes]
    decode_targets(row, [Target(o, fps, opts, np.random.default_rng(i), stride) for i, (o, (*_, fps, stride)) in enumerate(zip(together, shapes))])
    for i, ((t, h, w, fps, stride), got) in enumerate(zip(shapes, together)):
        alone = torch.zeros((t, 3, h, w), dtype=torch.uint8)
        decode_clip(row, alone, fps, opts, np.random.default_rng(i), stride)
        assert torch.equal(alone, got) and got.float().std() > 0


def test_missing_weights_stop_before_any_input_is_read(made, tmp_path: Path, monkeypatch):
    import curate.latents as lat
    from curate.output.store import OutputStore

    out = copy_output(made["out"], tmp_path / "out")
    empty = tmp_path / "vae-no-weights"
    empty.mkdir()
    (empty / "config.json").write_text((made["kl"] / "config.json").read_text())
    before = (out / "manifest.json").read_bytes()

    def never(*a, **k):
        raise AssertionError("read or opened an input before checking the VAE weights")

    monkeypatch.setattr(lat, "read_table", never)
    monkeypatch.setattr(OutputStore, "open", never)
    with pytest.raises(ModelUnavailable, match="no weights") as e:
        add_latents(str(out), with_latents(out, _vae(made, "kl", model=str(empty))))
    assert "curate models download" in str(e.value)
    assert (out / "manifest.json").read_bytes() == before
    monkeypatch.undo()
    # the CLI says the same and exits 2, writing nothing
    assert_cli_refuses_missing_weights(out, with_latents(out, _vae(made, "kl", model=str(empty))), tmp_path / "p.yaml")


def test_random_weights_only_when_asked_and_then_marked(made, tmp_path: Path):
    out = copy_output(made["out"], tmp_path / "out")
    empty = tmp_path / "vae-config-only"
    empty.mkdir()
    (empty / "config.json").write_text((made["kl"] / "config.json").read_text())
    add_latents(str(out), with_latents(out, _vae(made, "kl", model=str(empty), random_init=True)))
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["random_init"] is True and doc["latents"]["sets"]["kl/9x64x64"]["random_init"] is True
    assert doc["models"]["vae"]["kl"]["random_init"] is True
    # the same config gives the same random weights, so a later pass adds latents that belong with these
    a, b = (load_vae(VaeConfig(id="kl", model=str(empty), random_init=True)) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_pipeline_rules(made, tmp_path: Path):
    out = made["out"]
    base = json.loads((out / "manifest.json").read_text())["config"]
    config = with_latents(out, _vae(made, "kl"))
    # latents are derived: a run may differ in them (it neither computes nor removes them)
    assert {d.kind for d in differences(base, config.model_dump(mode="json"))} == {"derived"}
    check_run_fits(str(out), config.model_dump(mode="json"), base)
    # curate latents refuses a pipeline that changes the clips or their decisions
    tuned = config.model_copy(update={"filter": config.filter.model_copy(update={"min_motion": 0.5})})
    with pytest.raises(ConfigError, match="filter.min_motion"):
        add_latents(str(out), tuned)
    with pytest.raises(ConfigError, match="no latents section"):
        add_latents(str(out), PipelineConfig.model_validate(base))
    bad = dict(base, latents={"vae": _vae(made, "kl"), "buckets": BUCKETS + BUCKETS[:1]})
    with pytest.raises(ValueError, match="twice"):
        PipelineConfig.model_validate(bad)
    with pytest.raises(ValueError, match="exclusive"):
        PipelineConfig.model_validate(dict(base, latents={"vae": _vae(made, "kl"), "buckets": BUCKETS, "fps": 8, "stride": 2}))


def test_models_download_knows_the_vae_and_a_run_needs_it(made, tmp_path: Path):
    hub = with_latents(made["out"], {"id": "sd", "kind": "AutoencoderKL", "model": "org/some-vae", "subfolder": "vae"})
    assert any(where == "models--org--some-vae/" and "VAE sd" in what for where, what in layout(hub))
    assert [name for name, _ in required(hub)] == ["vae sd"]
    with pytest.raises(ModelUnavailable, match="VAE sd"):  # `curate run` computes latents of the kept clips: it needs the VAE
        check_models(hub)
    offline = hub.model_copy(update={"models": hub.models.model_copy(update={"dir": tmp_path, "offline": True})})
    with pytest.raises(ModelUnavailable, match="offline"):
        add_latents(str(made["out"]), offline)


def test_vae_config_names_a_real_diffusers_class():
    import diffusers

    for kind in VaeConfig.model_fields["kind"].annotation.__args__:
        assert hasattr(diffusers, kind), kind


def test_an_output_written_before_the_latents_table_takes_latents(made, tmp_path: Path):
    out = copy_output(made["out"], tmp_path / "out")
    doc = json.loads((out / "manifest.json").read_text())
    doc["schema_versions"].pop("latents")  # what a manifest of the previous curate says
    (out / "manifest.json").write_text(json.dumps(doc))
    assert add_latents(str(out), with_latents(out, _vae(made, "kl"))).computed > 0
    assert json.loads((out / "manifest.json").read_text())["schema_versions"]["latents"] == 1
    assert validate(str(out)) == []


def test_refilter_after_latents_keeps_them_and_the_loader_follows_the_kept_clips(made, tmp_path: Path):
    from curate.refilter import refilter

    out = copy_output(made["out"], tmp_path / "out")
    config = with_latents(out, _vae(made, "kl"))
    n = add_latents(str(out), config).computed
    motion = pd.read_parquet(out / "clips")["motion_score"].sort_values()
    strict = config.model_copy(update={"filter": config.filter.model_copy(update={"min_motion": float(motion.iloc[1]) + 1e-6})})
    assert refilter(str(out), strict).changed == 2
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["latents"]["rows"] == n and len(_latent_rows(out)) == n  # rewrites of clip tables leave latents alone
    assert validate(str(out)) == []
    kept = set(pd.read_parquet(out / "clips")["clip_id"])
    seen = {c for b in ClipDataset(out, BucketConfig.single(64, 64, 9, 1), latents="kl") for c in b["clip_id"]}
    assert seen == kept
