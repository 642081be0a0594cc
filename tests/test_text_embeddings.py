"""Caption embeddings (``text_embeddings:`` in ``curate latents``): the encoder over the final captions, stored once per
clip and encoder, recomputed only for clips whose caption changed, read by the loader.

Tiny random ``transformers`` encoders (T5, CLIP text) and their tokenizer are saved with ``save_pretrained`` and
loaded through the same path as downloaded ones. The reference for every stored embedding is the encoder applied
to the clip's caption as the clips table holds it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from curate.config import ConfigError, PipelineConfig
from curate.config_diff import differences
from curate.data import BucketConfig, ClipDataset
from curate.inspect import summarize
from curate.models.download import layout, required
from curate.models.hub import ModelUnavailable
from curate.models.settings import TextEncoderConfig
from curate.models.text_encoder import load_text_encoder
from curate.output.rewrite import apply_changes
from curate.output.shards import Location, read_table
from curate.output.store import OutputStore
from curate.text_embeddings import add_text_embeddings
from curate.validate import validate
from tests.latents_helpers import assert_cli_refuses_missing_weights, copy_output, finished_output
from tests.models_fixtures import CAPTION_WORDS, tiny_text_encoder

REPO = Path(__file__).resolve().parents[1]
KINDS = {"t5": "T5EncoderModel", "clip": "CLIPTextModel"}
MAX_LENGTH = 12
WORDS = CAPTION_WORDS[6:]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """A finished OUTPUT whose accepted clips have captions (set as a review edit would), and the tiny encoders."""
    root = tmp_path_factory.mktemp("textemb")
    out = finished_output(root)
    ids = _accepted(out)
    rng = np.random.default_rng(0)
    _edit(out, {cid: " ".join(rng.choice(WORDS, size=3 + i % 9)) for i, cid in enumerate(ids)})
    return {"out": out, **{k: tiny_text_encoder(root / f"enc-{k}", kind) for k, kind in KINDS.items()}}


def _accepted(out: Path) -> list[str]:
    doc = json.loads((out / "manifest.json").read_text())
    loc = Location.of(str(out))
    return [c for e in doc["shards"]["clips"] for c in read_table(loc, e["path"], ["clip_id"]).column("clip_id").to_pylist()]


def _captions(out: Path) -> dict[str, str]:
    doc = json.loads((out / "manifest.json").read_text())
    loc = Location.of(str(out))
    rows = [r for e in doc["shards"]["clips"] for r in read_table(loc, e["path"], ["clip_id", "caption"]).to_pylist()]
    return {r["clip_id"]: r["caption"] for r in rows}


def _edit(out: Path, captions: dict[str, str]) -> None:
    """Change captions through the same copy-on-write commit review edits use."""
    config = PipelineConfig.model_validate(json.loads((out / "manifest.json").read_text())["config"])
    with OutputStore.open(str(out), config, command="review") as store:
        apply_changes(store, {cid: {"caption": c, "caption_source": "human"} for cid, c in captions.items()}, {"kind": "review"})


def _config(out: Path, encoder: dict, **section) -> PipelineConfig:
    data = json.loads((out / "manifest.json").read_text())["config"]
    data["text_embeddings"] = {"encoder": encoder, "max_length": MAX_LENGTH, "batch_size": 3, **section}
    return PipelineConfig.model_validate(data)


def _encoder(made: dict[str, Path], key: str, **over) -> dict:
    return {"id": key, "kind": KINDS[key], "model": str(made[key]), **over}


def _rows(out: Path) -> pd.DataFrame:
    doc = json.loads((out / "manifest.json").read_text())
    loc = Location.of(str(out))
    tables = [read_table(loc, e["path"]).to_pandas() for e in (doc.get("text_embeddings") or {}).get("shards", [])]
    return pd.concat(tables, ignore_index=True)


@pytest.mark.parametrize("key", ["t5", "clip"])
def test_stored_embedding_is_the_encoder_of_the_final_caption(made, tmp_path: Path, key: str):
    out = copy_output(made["out"], tmp_path / "out")
    config = _config(out, _encoder(made, key))
    r = add_text_embeddings(str(out), config)
    captions = _captions(out)
    assert len(captions) >= 4 and (r.computed, r.replaced, r.skipped, r.uncaptioned) == (len(captions), 0, 0, 0)
    info = json.loads((out / "manifest.json").read_text())["text_embeddings"]["sets"][key]
    hidden = 32 if key == "t5" else 24
    assert (info["class"], info["max_length"], info["hidden_size"], info["shape"], info["dtype"]) == (KINDS[key], MAX_LENGTH, hidden, [MAX_LENGTH, hidden], "float16")
    assert info["revision"].startswith("sha256:") and info["random_init"] is False and info["rows"] == len(captions)
    enc = load_text_encoder(config.text_embeddings.encoder)  # the same loading path, independently
    rows = _rows(out)
    assert sorted(rows.clip_id) == sorted(captions)
    for row in rows.itertuples():
        want, mask = enc.encode([captions[row.clip_id]], MAX_LENGTH)
        got = torch.frombuffer(bytearray(row.embedding), dtype=torch.float16).view(MAX_LENGTH, hidden)
        torch.testing.assert_close(got.float(), want[0], atol=2e-3, rtol=2e-3)
        assert np.frombuffer(row.mask, np.uint8).tolist() == mask[0].tolist() and row.tokens == int(mask[0].sum())
    lengths = {int(t) for t in rows.tokens}
    assert len(lengths) > 1  # captions of different lengths: the mask is what tells them apart
    # the loader yields them with the batch, (B, L, D) + mask, for the clips of the batch
    for batch in ClipDataset(out, BucketConfig.single(32, 48, 5, 2), text_embeddings=key):
        emb, m = batch["text_embeddings"], batch["text_mask"]
        assert emb.shape == (2, MAX_LENGTH, hidden) and emb.dtype == torch.float16 and m.dtype == torch.bool
        for i, cid in enumerate(batch["clip_id"]):
            want, mask = enc.encode([captions[cid]], MAX_LENGTH)
            assert batch["caption"][i] == captions[cid] and m[i].tolist() == mask[0].bool().tolist()
            torch.testing.assert_close(emb[i].float(), want[0], atol=2e-3, rtol=2e-3)


def test_a_caption_change_recomputes_only_that_clip(made, tmp_path: Path, monkeypatch):
    import curate.models.text_encoder

    out = copy_output(made["out"], tmp_path / "out")
    config = _config(out, _encoder(made, "t5"))
    first = add_text_embeddings(str(out), config)
    with monkeypatch.context() as m:  # nothing to do: the encoder is not even loaded
        m.setattr(curate.models.text_encoder, "load_text_encoder", lambda *a, **k: pytest.fail("loaded the encoder for nothing"))
        again = add_text_embeddings(str(out), config)
    assert (again.computed, again.skipped, again.commits) == (0, first.computed, 0)
    before = _rows(out).set_index("clip_id")
    changed = sorted(before.index)[1]
    _edit(out, {changed: "a red dog runs on the blue grass"})
    with pytest.warns(UserWarning, match="1 clips have no embedding of their current caption"):
        stale = ClipDataset(out, BucketConfig.single(32, 48, 5, 1), text_embeddings="t5")
    assert changed not in {c for b in stale for c in b["clip_id"]}

    third = add_text_embeddings(str(out), config)
    assert (third.computed, third.replaced, third.skipped) == (1, 1, first.computed - 1)
    after = _rows(out).set_index("clip_id")
    assert sorted(after.index) == sorted(before.index) and not after.index.duplicated().any()
    others = [c for c in before.index if c != changed]
    assert (after.loc[others, "run_id"] == before.loc[others, "run_id"]).all()  # not recomputed
    assert (after.loc[others, "embedding"] == before.loc[others, "embedding"]).all()
    assert after.loc[changed, "run_id"] != before.loc[changed, "run_id"]
    want, _ = load_text_encoder(config.text_embeddings.encoder).encode(["a red dog runs on the blue grass"], MAX_LENGTH)
    got = torch.frombuffer(bytearray(after.loc[changed, "embedding"]), dtype=torch.float16).view(MAX_LENGTH, 32)
    torch.testing.assert_close(got.float(), want[0], atol=2e-3, rtol=2e-3)
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["text_embeddings"]["sets"]["t5"]["rows"] == doc["text_embeddings"]["rows"] == len(after)
    assert doc["versions"][-1]["kind"] == "text_embeddings" and doc["versions"][-1]["supersedes"]
    assert validate(str(out)) == []
    batches = list(ClipDataset(out, BucketConfig.single(32, 48, 5, 1), text_embeddings="t5"))
    assert changed in {c for b in batches for c in b["clip_id"]}


def test_a_crash_after_the_stale_rows_went_is_finished_by_the_next_pass(made, tmp_path: Path, monkeypatch):
    import curate.text_embeddings as te

    out = copy_output(made["out"], tmp_path / "out")
    config = _config(out, _encoder(made, "t5"), batch_size=1)
    first = add_text_embeddings(str(out), config)
    ids = sorted(_captions(out))
    _edit(out, {ids[0]: "a cat", ids[2]: "the dog"})
    calls = []
    real = te._Pass.commit

    def commit_then_die(self, final=False):  # one commit (which supersedes the stale rows), then a crash
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        real(self, final=True)

    monkeypatch.setattr(te._Pass, "add", lambda self, clip: (self.pending.append(clip), self.commit()))
    monkeypatch.setattr(te._Pass, "commit", commit_then_die)
    with pytest.raises(KeyboardInterrupt):
        add_text_embeddings(str(out), config)
    monkeypatch.undo()
    assert validate(str(out)) == [] and len(_rows(out)) == first.computed - 1  # one stale row gone, its clip not yet redone
    done = add_text_embeddings(str(out), config)
    assert (done.computed, done.replaced) == (1, 0)
    rows = _rows(out)
    assert sorted(rows.clip_id) == ids and validate(str(out)) == []
    want = load_text_encoder(config.text_embeddings.encoder).encode(["a cat", "the dog"], MAX_LENGTH)[0]
    for i, cid in enumerate([ids[0], ids[2]]):
        got = torch.frombuffer(bytearray(rows.set_index("clip_id").loc[cid, "embedding"]), dtype=torch.float16)
        torch.testing.assert_close(got.view(MAX_LENGTH, 32).float(), want[i], atol=2e-3, rtol=2e-3)


def test_missing_weights_stop_before_any_input_is_read(made, tmp_path: Path, monkeypatch):
    import curate.text_embeddings as te

    out = copy_output(made["out"], tmp_path / "out")
    no_weights, no_tokenizer = tmp_path / "enc-no-weights", tmp_path / "enc-no-tokenizer"
    for d, drop in ((no_weights, "model.safetensors"), (no_tokenizer, "tokenizer_config.json")):
        d.mkdir()
        for f in made["t5"].iterdir():
            if f.name != drop:
                (d / f.name).write_bytes(f.read_bytes())
    before = (out / "manifest.json").read_bytes()

    def never(*a, **k):
        raise AssertionError("read or opened an input before checking the encoder weights")

    monkeypatch.setattr(te, "read_table", never)
    monkeypatch.setattr(OutputStore, "open", never)
    with pytest.raises(ModelUnavailable, match="no weights") as e:
        add_text_embeddings(str(out), _config(out, _encoder(made, "t5", model=str(no_weights))))
    assert "curate models download" in str(e.value)
    with pytest.raises(ModelUnavailable, match="tokenizer_config.json"):
        add_text_embeddings(str(out), _config(out, _encoder(made, "t5", model=str(no_tokenizer))))
    assert (out / "manifest.json").read_bytes() == before
    monkeypatch.undo()
    # the CLI says the same and exits 2 before any latents or embeddings are computed
    assert_cli_refuses_missing_weights(out, _config(out, _encoder(made, "t5", model=str(no_weights))), tmp_path / "p.yaml")


def test_random_weights_only_when_asked_and_then_marked(made, tmp_path: Path):
    out = copy_output(made["out"], tmp_path / "out")
    bare = tmp_path / "enc-config-only"
    bare.mkdir()
    for f in made["t5"].iterdir():
        if f.name != "model.safetensors":
            (bare / f.name).write_bytes(f.read_bytes())
    add_text_embeddings(str(out), _config(out, _encoder(made, "t5", model=str(bare), random_init=True)))
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["random_init"] is True and doc["text_embeddings"]["sets"]["t5"]["random_init"] is True
    assert doc["models"]["text_encoder"]["t5"]["random_init"] is True
    a, b = (load_text_encoder(TextEncoderConfig(id="t5", model=str(bare), random_init=True)) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_validate_inspect_and_every_reader_understand_the_table(made, tmp_path: Path):
    out = copy_output(made["out"], tmp_path / "out")
    add_text_embeddings(str(out), _config(out, _encoder(made, "clip"), dtype="bfloat16"))
    doc = json.loads((out / "manifest.json").read_text())
    n = doc["text_embeddings"]["rows"]
    assert "text_embeddings" not in doc["shards"] and validate(str(out)) == []
    s = summarize(str(out))["text_embeddings"]
    assert s["rows"] == n and s["sets"]["clip"]["shape"] == [MAX_LENGTH, 24] and s["sets"]["clip"]["dtype"] == "bfloat16"
    r = subprocess.run([sys.executable, "-m", "curate", "inspect", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "caption embeddings" in r.stdout and "12x24" in r.stdout, r.stdout + r.stderr
    import duckdb

    got = duckdb.sql(f"SELECT encoder, count(*), min(octet_length(embedding)), max(octet_length(mask)) "
                     f"FROM '{out}/text_embeddings/*.parquet' GROUP BY encoder").fetchall()
    assert got == [("clip", n, MAX_LENGTH * 24 * 2, MAX_LENGTH)]
    assert len(pd.read_parquet(out / "text_embeddings")) == n
    # validate catches a row the manifest does not count: a second commit of the same rows, duplicating each key
    with OutputStore.open(str(out), PipelineConfig.model_validate(doc["config"]), command="latents") as store:
        from curate.output.derived import commit_rows

        commit_rows(store, "text_embeddings", read_table(store.location, doc["text_embeddings"]["shards"][0]["path"]),
                    {"encoder": "clip", "sets": {}})
    problems = validate(str(out))
    assert any("more than one row" in p for p in problems) and any("the manifest says" in p for p in problems), problems


def test_pipeline_rules(made, tmp_path: Path):
    out = made["out"]
    config = _config(out, _encoder(made, "t5"))
    diffs = differences(json.loads((out / "manifest.json").read_text())["config"], config.model_dump(mode="json"))
    assert {d.kind for d in diffs} == {"derived"}  # a run may have the section or not
    changed = config.model_copy(update={"filter": config.filter.model_copy(update={"min_motion": 0.9})})
    with pytest.raises(ConfigError, match="filter.min_motion"):
        add_text_embeddings(str(out), changed)
    add_text_embeddings(str(copy_output(out, tmp_path / "o")), config)
    with pytest.raises(ConfigError, match="another text_embeddings.encoder.id"):  # an id names one kind of tensor
        add_text_embeddings(str(tmp_path / "o"), _config(out, _encoder(made, "t5"), max_length=MAX_LENGTH + 1))
    with pytest.raises(ConfigError, match="64 positions"):  # CLIP text has absolute positions; T5 takes any length
        add_text_embeddings(str(tmp_path / "o"), _config(out, _encoder(made, "clip"), max_length=65))
    assert [name for name, _ in required(config)][-1] == "text encoder t5"
    assert not any(name.startswith("text encoder") for name, _ in required(config, text_embeddings=False))
    assert any("text encoder t5" in what for _, what in layout(config))


def test_latent_batches_carry_them_too_and_hooks_see_them_per_sample(made, tmp_path: Path):
    from curate.latents import add_latents
    from tests.latents_helpers import with_latents
    from tests.vae_fixtures import tiny_vae

    out = copy_output(made["out"], tmp_path / "out")
    add_latents(str(out), with_latents(out, {"id": "kl", "kind": "AutoencoderKL", "model": str(tiny_vae(tmp_path / "vae", "AutoencoderKL"))}))
    add_text_embeddings(str(out), _config(out, _encoder(made, "t5")))
    seen = []

    def transform(sample: dict) -> dict:
        seen.append((tuple(sample["text_embeddings"].shape), tuple(sample["text_mask"].shape)))
        return sample

    captions = _captions(out)
    enc = load_text_encoder(TextEncoderConfig(id="t5", model=str(made["t5"])))
    ds = ClipDataset(out, BucketConfig.single(64, 64, 9, 2), latents="kl", text_embeddings="t5", transform=transform)
    for batch in ds:
        assert batch["latents"].ndim == 5 and batch["text_embeddings"].shape == (2, MAX_LENGTH, 32)
        for i, cid in enumerate(batch["clip_id"]):
            torch.testing.assert_close(batch["text_embeddings"][i].float(), enc.encode([captions[cid]], MAX_LENGTH)[0][0],
                                       atol=2e-3, rtol=2e-3)
    assert seen and set(seen) == {((MAX_LENGTH, 32), (MAX_LENGTH,))}
    with pytest.raises(ValueError, match="no caption embeddings of encoder 'nope'.*'t5'"):
        ClipDataset(out, BucketConfig.single(64, 64, 9, 2), text_embeddings="nope")
