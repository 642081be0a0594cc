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
            diffs = {c: d for c, x, y in zip(a["clip_id"], a[col], b[col]) if (d := _video_difference(x, y))}
            assert not diffs, f"video: {diffs}"
        elif a[col].dtype.kind == "f":
            assert ((a[col] - b[col]).abs().fillna(0) <= tol * (1 + a[col].abs().fillna(0))).all(), col
        else:
            assert [_plain(v) for v in a[col]] == [_plain(v) for v in b[col]], col


def _plain(v: object) -> object:
    return v.tolist() if hasattr(v, "tolist") else v


def _video_difference(x: bytes | None, y: bytes | None, max_mean_diff: float = 2.0) -> str | None:
    """None where both are the same clip (same frame count, nearly the same pixels), else how they differ.

    Bytes are not compared: decoder error concealment on damaged sources may
    shift a few bits without changing the clip.
    The description names the frame, so a rare failure can be told apart from bit noise.
    """
    if x is None or y is None:
        return None if x is y else f"one clip has no bytes ({x is None}, {y is None})"
    import io

    import av
    import numpy as np

    def frames(b: bytes) -> list:
        with av.open(io.BytesIO(b)) as c:
            return [f.to_ndarray(format="gray").astype(np.int16) for f in c.decode(video=0)]

    fx, fy = frames(x), frames(y)
    if len(fx) != len(fy):
        return f"{len(fx)} frames against {len(fy)}"
    diffs = [float(np.abs(p - q).mean()) for p, q in zip(fx, fy)]
    bad = [i for i, d in enumerate(diffs) if d > max_mean_diff]
    return f"frames {bad} differ by up to {max(diffs):.2f} grey levels (bytes equal: {x == y})" if bad else None


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
