"""Run-wide dedup: exact and near duplicates, one deterministic decision, idempotent and crash-safe."""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from curate.config import DedupConfig, PipelineConfig
from curate.dedup import dedup_output, embedding_matrix, find_duplicates
from curate.output import OutputStore, shards
from curate.output import manifest as mf
from curate.output.rewrite import apply_changes
from curate.records import reason
from curate.run import run_pipeline
from curate.synth import make_video
from curate.validate import validate
from tests.models_fixtures import tiny_clip  # noqa: F401
from tests.pipeline_helpers import assert_same_rows, make_inputs, read_table
from tests.test_resume_commit import Crash, crash_on
from tests.tiny_pipeline import tiny_default

TABLES = ("clips", "review", "rejected")


# -- the decision ---------------------------------------------------------------------------

def _h(bits: int) -> str:
    return f"{bits:016x}"


def test_exact_near_rank_and_score_order() -> None:
    cfg = DedupConfig(phash_max_distance=2, cosine_threshold=0.9)
    e = np.eye(6).tolist()
    ids = ["a", "b", "c", "d", "e", "f", "g"]
    phash = [_h(0b1), _h(0b11), _h(0xF0F0), _h(0xFF00FF00), _h(0xFF00FF00), _h(0xABCDEF), _h(0xABCDEF)]
    emb = np.array([e[0], e[1], [0.0, 0.0, 0.99, 0.14, 0.0, 0.0], e[2], e[3], e[4], e[5]])
    score = [1.0, 2.0, 5.0, 4.0, 9.0, 10.0, 0.0]
    rank = [0, 0, 0, 0, 1, 1, 0]  # e and f are flagged
    dups = find_duplicates(ids, phash, emb, np.ones(7, bool), score, rank, cfg)
    assert {ids[i]: (ids[j], why) for i, (j, why) in dups.items()} == {
        "a": ("b", reason("phash_max_distance", "phash distance 1 <= phash_max_distance 2")),  # b scores higher
        "d": ("c", reason("cosine_threshold", "cosine 0.990 >= cosine_threshold 0.9")),  # near duplicate by embedding only
        "f": ("g", reason("phash_max_distance", "phash distance 0 <= phash_max_distance 2")),  # an accepted twin beats a better-scored flagged one
    }  # e has d's pHash, but d is dropped: a dropped clip keeps no one out
    assert find_duplicates(ids, phash, emb, np.ones(7, bool), score, rank, DedupConfig(phash_max_distance=None, cosine_threshold=None)) == {}
    assert find_duplicates(ids, phash, emb, np.zeros(7, bool), score, rank, DedupConfig(phash_max_distance=None)) == {}


def test_greedy_is_order_free_and_dropped_clips_do_not_drop_others() -> None:
    cfg = DedupConfig(phash_max_distance=1, cosine_threshold=None)
    # a ~ b ~ c in a chain (one bit each), a !~ c: a kept, b dropped, c kept.
    ids, phash, score = ["a", "b", "c"], [_h(0b0), _h(0b1), _h(0b11)], [3.0, 2.0, 1.0]
    none = np.zeros((3, 1)), np.zeros(3, bool)
    dups = find_duplicates(ids, phash, *none, score, [0] * 3, cfg)
    assert {ids[i]: ids[j] for i, (j, _) in dups.items()} == {"b": "a"}
    rng = random.Random(0)
    n = 60
    base = {"ids": [f"id{i:03d}" for i in range(n)], "phash": [_h(rng.getrandbits(6)) for _ in range(n)],
            "score": [rng.choice([None, 1.0, 2.0, float(i)]) for i in range(n)], "rank": [rng.randint(0, 1) for _ in range(n)]}
    first = None
    for _ in range(3):
        perm = rng.sample(range(n), n)
        d = find_duplicates([base["ids"][i] for i in perm], [base["phash"][i] for i in perm], np.zeros((n, 1)), np.zeros(n, bool),
                            [base["score"][i] for i in perm], [base["rank"][i] for i in perm], cfg)
        named = {base["ids"][perm[i]]: base["ids"][perm[j]] for i, (j, _) in d.items()}
        assert first is None or named == first
        first = named


def test_embedding_matrix_reads_arrow_buffers() -> None:
    import pyarrow as pa

    col = pa.chunked_array([pa.array([[1, 0], None], pa.list_(pa.float16(), 2)), pa.array([[0, 2]], pa.list_(pa.float16(), 2))])
    emb, has = embedding_matrix(col)
    assert emb.tolist() == [[1, 0], [0, 0], [0, 2]] and has.tolist() == [True, False, True]
    sliced = embedding_matrix(col.combine_chunks().slice(1))
    assert sliced[0].tolist() == [[0, 0], [0, 2]] and sliced[1].tolist() == [False, True]
    assert embedding_matrix(pa.nulls(2, pa.list_(pa.float16(), 4)))[1].tolist() == [False, False]
    f32 = pa.array([None, [0.5, 0.5]], pa.list_(pa.float32(), 2))
    assert embedding_matrix(f32)[0].tolist() == [[0, 0], [0.5, 0.5]]


# -- on real outputs -----------------------------------------------------------------------

def model_free(**over) -> PipelineConfig:
    base = {"limits": {"video_timeout_s": 60}, "clips": {"min_s": 1.0, "max_s": 4.0}, "output": {"shard_size_mb": 0.05},
            "dedup": {"score": "sharpness"}}
    base.update(over)
    return PipelineConfig.model_validate(base)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two videos, and the first one again under another name."""
    root = tmp_path_factory.mktemp("dups")
    v0, _ = make_inputs(root, 2)
    shutil.copy(v0, root / "v0_copy.mp4")
    return root


def final_state(out: Path) -> dict[str, list]:
    state = {}
    for t in TABLES:
        df = read_table(out, t)
        state[t] = sorted(zip(df["clip_id"], df["duplicate_of"] if "duplicate_of" in df else [None] * len(df)))
    return state


@pytest.fixture(scope="module")
def one_shot(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one") / "out"
    run_pipeline(model_free(), [str(corpus)], str(out), runner="local")
    return out


def test_copies_are_exact_duplicates(one_shot: Path) -> None:
    assert validate(str(one_shot)) == []
    kept = pd.concat([read_table(one_shot, "clips"), read_table(one_shot, "review")])
    rejected = read_table(one_shot, "rejected")
    dups = rejected[rejected["duplicate_of"].notna()]
    assert len(dups) > 0
    assert set(dups["duplicate_of"]) <= set(kept["clip_id"])
    for reasons in dups["reject_reasons"]:
        assert len(reasons) == 1 and reasons[0]["key"] == "phash_max_distance"
        assert reasons[0]["detail"].startswith("duplicate_of ") and "<= phash_max_distance 4" in reasons[0]["detail"]
    hashes = [int(h, 16) for h in kept["phash"]]
    assert all((a ^ b).bit_count() > 4 for i, a in enumerate(hashes) for b in hashes[i + 1:])
    m = json.loads((one_shot / "manifest.json").read_text())
    assert m["funnel"]["clips_rejected"]["phash_max_distance"] == len(dups)
    assert [v["kind"] for v in m["versions"]] == ["dedup"] and m["versions"][0]["moves"] == {"clips->rejected": len(dups)}


def test_rerun_and_repeat_change_nothing(one_shot: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(one_shot, out)
    before = final_state(out)
    with OutputStore.open(str(out), model_free()) as store:
        assert dedup_output(store).changed == 0
    summary = run_pipeline(model_free(), [str(corpus)], str(out), runner="local")
    assert summary.processed == 0 and final_state(out) == before
    assert len(json.loads((out / "manifest.json").read_text())["versions"]) == 1


def test_resumed_run_keeps_the_same_clips(one_shot: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_pipeline(model_free(), [str(corpus / "v0_copy.mp4"), str(corpus / "v1.mp4")], str(out), runner="local")
    run_pipeline(model_free(), [str(corpus)], str(out), runner="local")
    assert final_state(out) == final_state(one_shot)
    assert validate(str(out)) == []


def test_ray_runner_keeps_the_same_clips(one_shot: Path, corpus: Path, tmp_path: Path, ray_session) -> None:
    run_pipeline(model_free(), [str(corpus)], str(tmp_path / "ray"), runner="ray")
    for t in TABLES:
        assert_same_rows(read_table(one_shot, t), read_table(tmp_path / "ray", t))


def test_a_clip_that_stops_being_a_duplicate_is_encoded_again(one_shot: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(one_shot, out)
    clips = read_table(out, "clips")
    victim, other = clips["clip_id"][0], clips["clip_id"][1]
    with OutputStore.open(str(out), model_free()) as store:  # pretend an earlier decision made it a duplicate
        apply_changes(store, {victim: {"reject_reasons": [reason("phash_max_distance", f"duplicate_of {other} (test)")], "flag_reasons": None,
                                       "duplicate_of": other}}, {"kind": "test"})
    assert victim in set(read_table(out, "rejected")["clip_id"])
    with OutputStore.open(str(out), model_free()) as store:
        result = dedup_output(store)
    assert result.record["encoded"] == 1 and result.record["moves"] == {"rejected->clips": 1}
    row = read_table(out, "clips").set_index("clip_id").loc[victim]
    with av.open(io.BytesIO(row["video"])) as c:
        assert sum(1 for _ in c.decode(video=0)) == row["num_frames"]
    assert final_state(out) == final_state(one_shot) and validate(str(out)) == []


def _die_instead_of_closing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash leaves no close(): only the lock goes, as when the kernel reaps the process."""
    monkeypatch.setattr(OutputStore, "__exit__", lambda self, *exc: self._lock.release())


def _is_rewrite_ledger(src: str, dst: str) -> bool:
    return "/_ledger/" in dst and dst.endswith(".parquet") and Path(dst[: -len(".parquet")] + ".json").exists()


@pytest.mark.parametrize("point", ["before the ledger rename", "after the commit, before the manifest"])
def test_killed_dedup_is_redone_on_resume(point: str, one_shot: Path, corpus: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    _die_instead_of_closing(monkeypatch)
    if point == "before the ledger rename":
        crash_on(monkeypatch, shards, "_rename", _is_rewrite_ledger, skip=0)
    else:
        crash_on(monkeypatch, mf, "write", lambda loc, doc: bool(doc.get("versions")), skip=0)
    with pytest.raises(Crash):
        run_pipeline(model_free(), [str(corpus)], str(out), runner="local")
    assert validate(str(out)) != []
    monkeypatch.undo()
    run_pipeline(model_free(), [str(corpus)], str(out), runner="local")
    assert final_state(out) == final_state(one_shot)
    assert validate(str(out)) == []
    assert len(json.loads((out / "manifest.json").read_text())["versions"]) == 1


def test_near_duplicates_by_embedding(tmp_path: Path, tiny_clip) -> None:  # noqa: F811
    """A re-encoded copy (other quality) is caught by the embedding alone when pHash is off."""
    make_inputs(tmp_path / "in", 1)
    make_video(tmp_path / "in" / "v0_crf40.mp4", [(60, "pan_left"), (60, "static"), (60, "moving")], size=(192, 144), seed=0,
               options={"crf": "40"})
    config = tiny_default(tmp_path, tiny_clip, dedup={"phash_max_distance": None, "cosine_threshold": 0.999},
                          caption_check={"pass_min": -1.0, "reject_below": -1.0}, filter={"min_aesthetic": None})
    run_pipeline(config, [str(tmp_path / "in")], str(tmp_path / "out"), runner="local")
    rejected = read_table(tmp_path / "out", "rejected")
    dups = rejected[rejected["duplicate_of"].notna()]
    assert len(dups) > 0 and all("cosine_threshold 0.999" in r[0]["detail"] for r in dups["reject_reasons"])
    assert validate(str(tmp_path / "out")) == []


def test_dedup_on_an_object_store() -> None:
    """No renames there: the sidecar is written before the ledger part, which commits the rewrite."""
    from tests.test_output_store import fake_video

    out = f"memory://curate-dedup-{random.getrandbits(32)}/out"
    config = PipelineConfig.model_validate({"dedup": {"score": "sharpness"}})
    with OutputStore.open(out, config) as store:
        for i in range(6):
            video = fake_video(i)
            if i == 1:
                twin = next(c for c in fake_video(0)["clips"] if not c["reject_reasons"])
                next(c for c in video["clips"] if not c["reject_reasons"])["phash"] = twin["phash"]
            store.add(video)
        store.commit()
        assert dedup_output(store).duplicates == 1
    assert validate(out) == []
    with OutputStore.open(out, config) as store:
        assert store.recovered == [] and dedup_output(store).changed == 0
