"""docs/loader.md's "Reading shards with other tools" snippet runs on an OUTPUT laid out as curate writes it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.test_data_dataset import clip_row, write_output

DOC = Path(__file__).resolve().parents[1] / "docs" / "loader.md"


def snippet(title: str) -> str:
    section = DOC.read_text().split(f"## {title}", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_reading_shards_snippet(tmp_path, monkeypatch):
    pytest.importorskip("duckdb")
    pytest.importorskip("datasets")
    out = write_output(tmp_path / "out", [clip_row(i, b"x", 8, 32, 32, 8.0, aesthetic_score=float(i)) for i in range(6)], 4, 2)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({"shards": {"clips": manifest["shards"]}}))  # keyed by table, as curate writes it
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    scope = {"out": str(out)}
    exec(snippet("Reading shards with other tools"), scope)
    assert sorted(scope["df"]["clip_id"]) == [f"c{i:05d}" for i in range(6)]  # not the uncommitted part-99999
    assert scope["hf"].num_rows == 6
