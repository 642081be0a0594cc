"""pandas, DuckDB and Hugging Face ``datasets`` read the clip shards directly (docs/loader.md)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import pytest

from tests.test_data_dataset import clip_row, encode, write_output


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[str]:
    """The committed shards of a small OUTPUT, as the manifest lists them."""
    video = encode(6, 32, 24, 12.0)
    rows = [clip_row(i, video, 6, 32, 24, 12.0) for i in range(7)]
    root = write_output(tmp_path_factory.mktemp("out"), rows, rows_per_shard=4, row_group_size=2)
    manifest = json.loads((root / "manifest.json").read_text())
    return [str(root / s["path"]) for s in manifest["shards"]]


def frames_in(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_pandas(shards):
    pd = pytest.importorskip("pandas")
    df = pd.concat([pd.read_parquet(p, columns=["clip_id", "caption", "motion_score", "video"]) for p in shards])
    assert len(df) == 7 and df["clip_id"].is_unique
    assert frames_in(df["video"].iloc[0]) == 6
    assert df.loc[df["motion_score"] >= 0.5, "clip_id"].tolist() == ["c00005", "c00006"]


def test_duckdb(shards):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    rows = con.execute("SELECT clip_id, octet_length(video) AS n FROM read_parquet(?) WHERE caption IS NOT NULL ORDER BY clip_id", [shards]).fetchall()
    assert [r[0] for r in rows] == [f"c{i:05d}" for i in range(7)] and all(n > 0 for _, n in rows)
    (blob,) = con.execute("SELECT video FROM read_parquet(?) LIMIT 1", [shards]).fetchone()
    assert frames_in(bytes(blob)) == 6


def test_hf_datasets(shards, tmp_path: Path):
    datasets = pytest.importorskip("datasets", reason="Hugging Face datasets is not installed (pip install datasets)")
    ds = datasets.load_dataset("parquet", data_files=shards, split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 7 and sorted(ds["clip_id"]) == [f"c{i:05d}" for i in range(7)]
    assert frames_in(ds[0]["video"]) == 6
    assert ds.filter(lambda r: r["motion_score"] >= 0.5).num_rows == 2
