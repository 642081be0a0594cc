"""Outputs written at older schema versions stay readable; writing into one is refused.

An old output is made by writing a current one and turning every file back
into the old shape: at v2 reasons become their sentences and the ledger
loses ``reason_key``; v3 lacks the columns v4 added. Footers and the
manifest say the old version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.config import ConfigError
from curate.inspect import summarize
from curate.output import OutputStore
from curate.output.shards import Location, read_table
from curate.report import render
from curate.schema import load_schema
from curate.validate import validate
from tests.test_output_store import fake_video, small_config, status_of


def _to_version(path: Path, schema: str, params: dict | None, version: int) -> None:
    t = pq.read_table(path)
    cols = {}
    old = load_schema(schema, version, params=params)
    for f in old:
        col = t.column(f.name)
        if f.name in ("reject_reasons", "flag_reasons") and pa.types.is_string(f.type.value_type):
            col = pa.array([None if v is None else [r["detail"] for r in v] for v in col.to_pylist()], f.type)
        cols[f.name] = col
    pq.write_table(pa.table(cols, schema=old), path, compression="zstd")


@pytest.fixture(scope="module", params=[2, 3])
def v2(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """An output at schema version ``request.param``."""
    version = request.param
    out = tmp_path_factory.mktemp("legacy") / "out"
    with OutputStore.open(str(out), small_config()) as store:
        for i in range(20):
            store.add(fake_video(i, status_of(i)))
    m = json.loads((out / "manifest.json").read_text())
    params = m["schema_params"]["clip"]
    for table, schema in m["tables"].items():
        for e in m["shards"][table]:
            _to_version(out / e["path"], schema, params, version)
    for f in [*(out / "_ledger").glob("*.parquet"), out / "videos.parquet"]:
        _to_version(f, "videos", None, version)
    m["schema_versions"] = {"clip": version, "rejected": version, "videos": version}
    for table, entries in m["shards"].items():
        for e in entries:
            e["bytes"] = (out / e["path"]).stat().st_size
    (out / "manifest.json").write_text(json.dumps(m, indent=1))
    return out, m


def test_old_files_read_in_the_current_shape_with_the_keys_they_counted(v2: tuple[Path, dict]) -> None:
    out, m = v2
    loc = Location.of(str(out))
    clips = read_table(loc, m["shards"]["clips"][0]["path"])
    assert clips.schema.names == load_schema("clip", params=m["schema_params"]["clip"]).names
    assert clips.column("text_area_max").null_count == clips.num_rows
    assert read_table(loc, "videos.parquet", ["video_id", "shots"]).column("shots").null_count > 0
    rej = read_table(loc, m["shards"]["rejected"][0]["path"], ["clip_id", "reject_reasons"])
    first = rej.column("reject_reasons").to_pylist()[0][0]
    assert first["key"] == "min_motion" and first["detail"].startswith("motion_score ")
    ledger = read_table(loc, "videos.parquet", ["video_id", "status", "reason_key"]).to_pylist()
    keys = {r["status"]: r["reason_key"] for r in ledger}
    assert keys == {"done": None, "rejected": "min_duration_s", "failed": "analyse: VideoOpenFailure"}


def test_inspect_validate_and_report_read_an_old_output(v2: tuple[Path, dict]) -> None:
    out, m = v2
    assert validate(str(out)) == []
    s = summarize(str(out))
    assert s["funnel"] == m["funnel"] and s["funnel"]["clips_rejected"] == {"min_motion": s["shards"]["rejected"]["rows"]}
    assert "dropped: min_motion" in render(str(out))


def test_writing_into_an_old_output_is_refused(v2: tuple[Path, dict]) -> None:
    out, _ = v2
    with pytest.raises(ConfigError, match="schema versions"):
        OutputStore.open(str(out), small_config())
