"""Issue 14's promise, checked as a user runs it: one CLI run over every kind of hostile input.

The corpus is built here from synthetic videos (no ../shared needed): every
container the decoder reads, spliced and resized TS streams, a header that
lies about the length, very wide and anamorphic pictures, odd file names, the
classic bad files, and manifests with bad rows and text that is not UTF-8.
On both runners the run must exit 0, give every input exactly one ledger row
(with a reason unless it is done), and ``curate validate --decode`` must pass.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate import synth
from tests.pipeline_helpers import read_table
from tests.test_cli import curate
from tests.test_hostile_media import container_copies, ffmpeg, resolution_change_ts, spliced_ts

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")


def _pipeline(root: Path) -> Path:
    doc = {"clips": {"min_s": 1.0, "max_s": 3.0}, "limits": {"video_timeout_s": 120}, "output": {"shard_size_mb": 0.2},
           "filter": {"min_motion": 0.0, "min_sharpness": 0.0}}
    path = root / "pipeline.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[str], int]:
    """``(root, --input arguments, inputs expected)``."""
    root = tmp_path_factory.mktemp("hostile")
    d = root / "videos"
    d.mkdir()
    src = d / "src.mp4"
    synth.make_video(src, [(50, "pan_left"), (50, "moving"), (50, "zoom_in")], size=(192, 144), seed=1)
    other = root / "other.mp4"
    synth.make_video(other, [(60, "tilt_up")], size=(256, 192), seed=2)
    container_copies(src, d)  # ts, m2ts, mov, mkv with negative timestamps, mpg, vob, webm, avi
    spliced_ts(src, other, d / "spliced.ts", seconds=3)
    resolution_change_ts(d)
    synth.lie_about_duration(src, d / "lies.mp4", 0.3)
    synth.make_video(d / "wide.mp4", [(40, "pan_left")], size=(1280, 96))
    synth.make_video(root / "raw720.mp4", [(40, "pan_left")], size=(720, 480))
    ffmpeg("-i", root / "raw720.mp4", "-vf", "setsar=32/27", "-c:v", "libx264", "-preset", "ultrafast", d / "anamorphic.mp4")
    shutil.copy(src, os.fsdecode(bytes(d) + b"/caf\xe9 [1].mp4"))  # not UTF-8, glob characters
    (d / "zero.mp4").write_bytes(b"")
    synth.write_garbage(d / "garbage.mp4")
    (d / "notes.mp4").write_text("this is not a video\n" * 50)
    synth.truncate_copy(src, d / "truncated.mp4", 0.3)
    synth.make_audio_only(d / "audio_only.mp4")
    synth.make_video(d / "short.mp4", [(10, "moving")], size=(192, 144))
    synth.make_video(d / "tiny.mp4", [(40, "moving")], size=(32, 32))
    (d / "sidecar.mp4").write_bytes(src.read_bytes() + b"\0")
    (d / "sidecar.txt").write_bytes("na\xefve caption".encode("latin-1"))
    n_dir = len([p for p in d.iterdir() if p.suffix != ".txt"])

    m = root / "manifests"
    m.mkdir()
    for name in ("a", "b", "c", "d"):
        (m / f"{name}.mp4").write_bytes(src.read_bytes() + name.encode())  # distinct identities
    (m / "latin1.csv").write_bytes("uri,caption\na.mp4,caf\xe9 cr\xe8me\nb.mp4,0042\n".encode("latin-1"))
    pq.write_table(pa.table({"uri": [None, "", "c.mp4"], "caption": [1, 2, 3], "score": [float("nan"), 1.0, 2.0]}), m / "numbers.parquet")
    pq.write_table(pa.table({"uri": pa.array([b"d.mp4"], pa.binary())}), m / "binary.parquet")
    (m / "mixed.jsonl").write_text('{"uri": "d.mp4", "caption": 5}\n{"uri": 7, "caption": "x"}\n{broken\n')
    inputs = [str(d), *(str(m / n) for n in ("latin1.csv", "numbers.parquet", "binary.parquet", "mixed.jsonl"))]
    return root, inputs, n_dir + 2 + 3 + 1 + 3


@pytest.mark.parametrize("runner", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_hostile_corpus_runs_clean(corpus, tmp_path: Path, runner: str):
    root, inputs, expected = corpus
    out = tmp_path / "out"
    args = ["run", str(_pipeline(tmp_path)), "-o", str(out), "--runner", runner]
    for i in inputs:
        args += ["-i", i]
    r = curate(*args, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr

    videos = pd.read_parquet(out / "videos.parquet")
    assert len(videos) == expected and videos["uri"].is_unique and videos["video_id"].is_unique
    for row in videos.to_dict("records"):
        assert row["status"] in ("done", "rejected", "failed")
        if row["status"] != "done":
            assert row["reason"], row["uri"]
    status = {Path(u).name: s for u, s in zip(videos["uri"], videos["status"])}
    must_work = ["src.ts", "src.m2ts", "src.mov", "src_neg.mkv", "src.mpg", "src.vob", "src.webm", "src.avi", "spliced.ts",
                 "reschange.ts", "lies.mp4", "wide.mp4", "anamorphic.mp4", "sidecar.mp4", "a.mp4", "b.mp4", "c.mp4", "d.mp4"]
    assert {n: status.get(n) for n in must_work} == dict.fromkeys(must_work, "done")
    assert [s for u, s in status.items() if u.startswith("caf")] == ["done"]
    clips = pd.concat([read_table(out, "clips"), read_table(out, "rejected")])
    caption = {(Path(u).name, c, s) for u, c, s in zip(clips["source_uri"], clips["caption"], clips["caption_source"])}
    assert ("sidecar.mp4", "naïve caption", "sidecar") in caption
    assert {("a.mp4", "café crème", "manifest"), ("b.mp4", "0042", "manifest"), ("c.mp4", "3", "manifest")} <= caption

    verdict = curate("validate", "--decode", str(out), timeout=600)
    assert verdict.returncode == 0 and "is valid" in verdict.stdout, verdict.stdout[-3000:]
