"""validate(): a clean output has no problems; each kind of damage is named."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.validate import validate
from tests.test_output_store import write


@pytest.fixture
def out(tmp_path: Path) -> Path:
    write(str(tmp_path / "out"))
    return tmp_path / "out"


def first(out: Path, table: str = "clips") -> Path:
    return sorted((out / table).glob("*.parquet"))[0]


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def rewrite(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def null_phash(t: pa.Table) -> pa.Table:
    loose = pa.schema([f.with_nullable(True) for f in t.schema])
    phash = pa.array([None] + t["phash"].to_pylist()[1:], pa.string())
    return t.cast(loose).set_column(t.schema.get_field_index("phash"), loose.field("phash"), phash)


def bump_accepted(t: pa.Table) -> pa.Table:
    i = t.schema.get_field_index("num_accepted")
    return t.set_column(i, t.schema.field(i), pa.compute.add(t["num_accepted"], 1).cast(pa.int32()))


def test_clean_output_has_no_problems(out: Path) -> None:
    assert validate(str(out)) == [] and validate(str(out), deep=False) == []


def test_clean_object_store_output() -> None:
    url = f"memory://curate-test-{time.monotonic_ns()}/out"
    write(url)
    assert validate(url) == []


def test_missing_manifest(out: Path) -> None:
    (out / "manifest.json").unlink()
    assert validate(str(out)) == [f"manifest.json not found in {out}: not a curate output, or no run ever opened it"]


DAMAGE: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("deleted shard", lambda o: first(o).unlink(), ["listed in the manifest but missing", "rows per video differ"]),
    ("copied shard", lambda o: shutil.copy(first(o), first(o).with_name(first(o).name[:-11] + "009.parquet")),
     ["not in the manifest (unlisted shard)", "occur more than once"]),
    ("stray file", lambda o: (o / "clips" / "notes.txt").write_text("hi"), ["clips/notes.txt: not in the manifest"]),
    ("left temp file", lambda o: (o / "rejected" / ".part-000009-0000abcd-000.parquet.tmp").write_bytes(b"x"),
     ["uncommitted temp file"]),
    ("orphan shard", lambda o: shutil.copy(first(o), o / "clips" / "part-000099-0000abcd-000.parquet"),
     ["orphan of an interrupted commit"]),
    ("wrong schema", lambda o: rewrite(first(o), lambda t: t.drop_columns(["sharpness"])), ["missing column sharpness"]),
    ("corrupt shard", lambda o: first(o, "rejected").write_bytes(first(o, "rejected").read_bytes()[:-100]), ["unreadable"]),
    ("null in a required column", lambda o: rewrite(first(o), null_phash), ["column phash: 1 nulls"]),
    ("funnel edited", lambda o: edit_json(o / "manifest.json", lambda d: d["funnel"]["clips"].update(accepted=1)),
     ["manifest funnel clips"]),
    ("config edited", lambda o: edit_json(o / "manifest.json", lambda d: d["config"].update(name="x")),
     ["config_hash"]),
    ("ledger disagrees", lambda o: rewrite(first(o, "_ledger"), bump_accepted),
     ["rows per video differ from ledger num_accepted", "videos.parquet: differs"]),
    ("videos.parquet deleted", lambda o: (o / "videos.parquet").unlink(), ["videos.parquet: unreadable"]),
    ("run never closed", lambda o: edit_json(o / "manifest.json", lambda d: d["runs"][-1].update(status="running")),
     ["did not close"]),
]


@pytest.mark.parametrize("damage,expected", [(f, e) for _, f, e in DAMAGE], ids=[name for name, _, _ in DAMAGE])
def test_damage_is_reported(out: Path, damage: Callable[[Path], None], expected: list[str]) -> None:
    damage(out)
    problems = validate(str(out))
    for text in expected:
        assert any(text in p for p in problems), f"{text!r} not in {problems}"


def test_quick_mode_skips_decoding_payload_columns(out: Path) -> None:
    rewrite(first(out), null_phash)
    problems = validate(str(out), deep=False)
    assert not any("phash" in p for p in problems) and any("rows / " in p for p in problems)  # size changed
