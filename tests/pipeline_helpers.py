"""Inputs and comparisons shared by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads

from curate.synth import make_video

# Columns that legitimately differ between runs (ids of the run, timings).
RUN_COLUMNS = {"run_id", "config_hash"}


def make_inputs(root: Path, n: int = 3) -> list[Path]:
    """``n`` small real videos with cuts and varied motion, one static shot each."""
    root.mkdir(parents=True, exist_ok=True)
    kinds = [["pan_left", "static", "moving"], ["zoom_in", "tilt_up"], ["moving", "pan_right", "static"]]
    paths = []
    for i in range(n):
        p = root / f"v{i}.mp4"
        make_video(p, [(60, k) for k in kinds[i % len(kinds)]], size=(192, 144), seed=i)
        paths.append(p)
    return paths


def read_table(output: Path, table: str) -> pd.DataFrame:
    """A committed table, sorted by clip id, without per-run columns."""
    d = output / table
    if not d.is_dir() or not list(d.glob("*.parquet")):
        return pd.DataFrame({"clip_id": pd.Series([], dtype=str)})
    df = pads.dataset(str(d), format="parquet").to_table().to_pandas()
    return df.drop(columns=[c for c in RUN_COLUMNS if c in df]).sort_values("clip_id").reset_index(drop=True)


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame, tol: float = 1e-4) -> None:
    assert list(a["clip_id"]) == list(b["clip_id"])
    for col in a.columns:
        if col == "video":
            assert all(_same_video(x, y) for x, y in zip(a[col], b[col])), col
        elif a[col].dtype.kind == "f":
            assert ((a[col] - b[col]).abs().fillna(0) <= tol * (1 + a[col].abs().fillna(0))).all(), col
        else:
            assert [_plain(v) for v in a[col]] == [_plain(v) for v in b[col]], col


def _plain(v: object) -> object:
    return v.tolist() if hasattr(v, "tolist") else v


def _same_video(x: bytes | None, y: bytes | None, max_mean_diff: float = 2.0) -> bool:
    """Same frame count and nearly the same pixels.

    Bytes are not compared: decoder error concealment on damaged sources and
    encoder threading under load may shift a few bits without changing the clip.
    """
    if x is None or y is None:
        return x is y
    import io

    import av
    import numpy as np

    def frames(b: bytes) -> list:
        with av.open(io.BytesIO(b)) as c:
            return [f.to_ndarray(format="gray").astype(np.int16) for f in c.decode(video=0)]

    fx, fy = frames(x), frames(y)
    return len(fx) == len(fy) and all(np.abs(p - q).mean() <= max_mean_diff for p, q in zip(fx, fy))


def ledger_rows(out: Path) -> list[dict]:
    """The ledger's per-video outcome (counts, shot list, which stages ran), sorted by video: what a rerun or a
    streamed run must reproduce."""
    import json

    keep = ("video_id", "status", "num_clips", "num_accepted", "num_rejected", "num_flagged", "num_frames", "shots", "transitions")
    rows = pads.dataset(str(out / "_ledger"), format="parquet").to_table().to_pylist()
    return sorted(({k: r[k] for k in keep} | {"stages": sorted(json.loads(r["timings"]))} for r in rows), key=lambda r: r["video_id"])


def assert_same_output(out: Path, reference: Path) -> None:
    """``out`` holds the reference run's rows in every clip table and its ledger, validates, and left no staged piece."""
    from curate.validate import validate

    for table in ("clips", "review", "rejected"):
        assert_same_rows(read_table(out, table), read_table(reference, table))
    assert ledger_rows(out) == ledger_rows(reference)
    assert validate(str(out)) == []
    assert not list(out.rglob(".w-*")), "a staged piece outlived the run"
