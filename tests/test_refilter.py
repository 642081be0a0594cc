"""``curate refilter``: new thresholds from stored scores, a new version of the shards, ids kept."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.config import ConfigError, PipelineConfig
from curate.output import rewrite, shards
from curate.output.rewrite import RewriteError
from curate.refilter import refilter
from curate.run import run_pipeline
from curate.validate import validate
from tests.pipeline_helpers import make_inputs, read_table
from tests.test_resume_commit import Crash, crash_on
from tests.tiny_pipeline import write_yaml

TABLES = ("clips", "review", "rejected")


def model_free(**filter_over) -> PipelineConfig:
    return PipelineConfig.model_validate({
        "limits": {"video_timeout_s": 60}, "clips": {"min_s": 1.0, "max_s": 4.0}, "output": {"shard_size_mb": 0.05},
        "dedup": {"score": "sharpness"}, "filter": filter_over,
    })


@pytest.fixture(scope="module")
def run_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refilter")
    make_inputs(root / "in", 3)
    run_pipeline(model_free(), [str(root / "in")], str(root / "out"), runner="local")
    return root / "out"


@pytest.fixture
def out(run_out: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(run_out, copy)
    return copy


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Clip ids sent to be encoded from their source (the encode stage itself runs in a guarded child)."""
    seen: list[str] = []
    real = rewrite.encode_rows

    def counting(config: PipelineConfig, rows: list[dict]) -> list[dict]:
        seen.extend(r["clip_id"] for r in rows)
        return real(config, rows)

    monkeypatch.setattr(rewrite, "encode_rows", counting)
    return seen


def ids(out: Path, table: str) -> set[str]:
    return set(read_table(out, table)["clip_id"])


def all_ids(out: Path) -> set[str]:
    return set().union(*(ids(out, t) for t in TABLES))


def test_tighter_threshold_keeps_fewer_and_encodes_nothing(out: Path, run_out: Path, encoded: list[str]) -> None:
    before = read_table(run_out, "clips").set_index("clip_id")
    cut = float(before["sharpness"].median())
    result = refilter(str(out), model_free(min_sharpness=cut))
    after = read_table(out, "clips").set_index("clip_id")
    assert 0 < len(after) < len(before) and set(after.index) <= set(before.index)
    assert all_ids(out) == all_ids(run_out) and encoded == [] and result.record["encoded"] == 0
    for cid in after.index:  # kept clips keep their bytes
        assert after.loc[cid, "video"] == before.loc[cid, "video"]
    dropped = read_table(out, "rejected").set_index("clip_id").loc[sorted(set(before.index) - set(after.index))]
    assert all(any(r["key"] == "min_sharpness" for r in rr) for rr in dropped["reject_reasons"])
    assert "video" not in dropped.columns
    assert validate(str(out)) == []
    m = json.loads((out / "manifest.json").read_text())
    version = m["versions"][-1]
    assert version["kind"] == "refilter" and version["thresholds"]["filter"]["min_sharpness"] == cut
    assert version["config_hash"] == m["config_hash"] == model_free(min_sharpness=cut).config_hash()
    assert m["runs"][-1]["command"] == "refilter" and m["funnel"]["clips"]["accepted"] == len(after)


def test_looser_threshold_encodes_only_the_newly_accepted(out: Path, run_out: Path, encoded: list[str]) -> None:
    before = read_table(run_out, "clips").set_index("clip_id")
    loose = model_free(min_motion=None, max_frozen_fraction=None)
    result = refilter(str(out), loose)
    after = read_table(out, "clips").set_index("clip_id")
    new = set(after.index) - set(before.index)
    assert new and set(encoded) == new and result.record["encoded"] == len(new)
    for cid in after.index:
        with av.open(io.BytesIO(after.loc[cid, "video"])) as c:
            assert sum(1 for _ in c.decode(video=0)) == after.loc[cid, "num_frames"]
        if cid in before.index:
            assert after.loc[cid, "video"] == before.loc[cid, "video"]
    assert all_ids(out) == all_ids(run_out) and validate(str(out)) == []
    again = refilter(str(out), loose)  # the same thresholds again: nothing to do
    assert again.record is None and again.changed == 0


def test_back_to_the_run_config_restores_the_run(out: Path, run_out: Path) -> None:
    refilter(str(out), model_free(min_sharpness=1e9))
    assert ids(out, "clips") == set()
    refilter(str(out), model_free())
    for t in TABLES:
        assert ids(out, t) == ids(run_out, t), t
    assert validate(str(out)) == []
    assert [v["kind"] for v in json.loads((out / "manifest.json").read_text())["versions"]][-2:] == ["refilter", "refilter"]


def test_a_lost_source_changes_nothing(out: Path, run_out: Path, tmp_path: Path) -> None:
    """Newly accepted clips need their source; without it the refilter stops and leaves the output as it was."""
    moved = tmp_path / "moved"
    sidecars = sorted((out / "_ledger").glob("*.json"))
    shutil.copytree(run_out.parent / "in", moved)
    shutil.rmtree(run_out.parent / "in")
    try:
        with pytest.raises(RewriteError, match="nothing was changed"):
            refilter(str(out), model_free(min_motion=None, max_frozen_fraction=None))
    finally:
        shutil.copytree(moved, run_out.parent / "in")
    assert not list(out.rglob("*.tmp")) and sorted((out / "_ledger").glob("*.json")) == sidecars
    for t in TABLES:
        assert ids(out, t) == ids(run_out, t)
    assert validate(str(out)) == []


def test_refuses_what_needs_a_rerun(out: Path) -> None:
    with pytest.raises(ConfigError, match="clip ids would change"):
        refilter(str(out), PipelineConfig.model_validate({"clips": {"min_s": 1.0, "max_s": 5.0}}))
    other = model_free().model_copy(update={"encode": model_free().encode.model_copy(update={"crf": 30})})
    with pytest.raises(ConfigError, match="encode"):
        refilter(str(out), other)
    with pytest.raises(ConfigError, match="not a curate output"):
        refilter(str(out / "nothing"), model_free())


def test_killed_refilter_is_redone(out: Path, run_out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("curate.output.store.OutputStore.__exit__", lambda self, *exc: self._lock.release())
    crash_on(monkeypatch, shards, "_rename", lambda src, dst: "/_ledger/" in dst and dst.endswith(".parquet"), skip=0)
    with pytest.raises(Crash):
        refilter(str(out), model_free(min_sharpness=1e9))
    monkeypatch.undo()
    assert ids(out, "clips") == ids(run_out, "clips")  # nothing committed
    refilter(str(out), model_free(min_sharpness=1e9))
    assert ids(out, "clips") == set() and validate(str(out)) == []


def test_cli_refilter_and_report(out: Path, tmp_path: Path) -> None:
    pipe = write_yaml(model_free(min_sharpness=1e9), tmp_path / "strict.yaml")
    result = CliRunner().invoke(app, ["refilter", str(out), str(pipe)])
    assert result.exit_code == 0, result.output
    assert ids(out, "clips") == set()
    result = CliRunner().invoke(app, ["report", str(out), "--output", str(tmp_path / "r.html")])
    assert result.exit_code == 0 and "min_sharpness" in (tmp_path / "r.html").read_text()
    bad = write_yaml(PipelineConfig.model_validate({"detector": {"kind": "content"}}), tmp_path / "bad.yaml")
    result = CliRunner().invoke(app, ["refilter", str(out), str(bad)])
    assert result.exit_code == 2 and "clip ids would change" in " ".join(result.output.split())


RUN_ID = r"\d{8}T\d{6}Z-[0-9a-f]{6}"


def test_one_run_id_format(out: Path) -> None:
    import re

    refilter(str(out), model_free(min_sharpness=1e9))
    runs = json.loads((out / "manifest.json").read_text())["runs"]
    assert [r["command"] for r in runs] == ["run", "refilter"]
    assert all(re.fullmatch(RUN_ID, r["run_id"]) for r in runs), [r["run_id"] for r in runs]


def test_noop_refilter_writes_nothing(out: Path) -> None:
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    result = CliRunner().invoke(app, ["refilter", str(out), str(write_yaml(model_free(), out.parent / "same.yaml"))])
    assert result.exit_code == 0, result.output
    assert "nothing written" in result.output
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before  # no version, no run entry, no file touched


def test_summary_counts_real_moves_and_reads_well(out: Path, run_out: Path, tmp_path: Path) -> None:
    before = {t: ids(run_out, t) for t in TABLES}
    cut = float(read_table(run_out, "clips")["sharpness"].median())
    strict = model_free(min_sharpness=cut)
    result = CliRunner().invoke(app, ["refilter", str(out), str(write_yaml(strict, tmp_path / "strict.yaml"))])
    assert result.exit_code == 0, result.output
    after = {t: ids(out, t) for t in TABLES}
    moved = sum(len(before[t] - after[t]) for t in TABLES)
    stayed_rejected = before["rejected"] & after["rejected"]
    text = result.output
    assert "{" not in text and "->" not in text, text  # no Python dicts
    assert f"min_sharpness 5 → {cut:g}" in text and f"kept → dropped {moved}" in text and f"({moved} clip" in text
    m = json.loads((out / "manifest.json").read_text())["versions"][-1]
    assert m["moves"] == {"clips->rejected": moved} and sum(m["moves"].values()) == moved
    # dropped clips that stay dropped (their reasons now name min_sharpness too) are not moves
    rows = read_table(out, "rejected").set_index("clip_id").loc[sorted(stayed_rejected)]
    gained = sum(any(r["key"] == "min_sharpness" for r in rr) for rr in rows["reject_reasons"])
    assert gained and m["updated"] == gained and f"updated:    {gained} clip{'' if gained == 1 else 's'} with other reasons, not moved" in text
