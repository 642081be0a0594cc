from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from curate.discover import InputError, discover
from curate.media.identity import video_identity


def _touch(p: Path, data: bytes = b"x" * 100) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_directory_glob_and_limit(tmp_path: Path):
    for name in ("b.mp4", "a.mkv", "sub/c.webm", "notes.txt"):
        _touch(tmp_path / name)
    uris = [v["uri"] for v in discover([str(tmp_path)])]
    assert [Path(u).name for u in uris] == ["a.mkv", "b.mp4", "c.webm"]
    assert len(list(discover([str(tmp_path / "*.mp4")]))) == 1
    assert len(list(discover([str(tmp_path)], limit=2))) == 2


def test_ids_are_stable_and_content_sensitive(tmp_path: Path):
    p = _touch(tmp_path / "v.mp4", b"a" * 5000)
    first = video_identity(str(p))
    assert first == video_identity(str(p))
    p.write_bytes(b"b" * 5000)
    assert video_identity(str(p))[0] != first[0]


def test_manifest_carries_caption_and_metadata(tmp_path: Path):
    _touch(tmp_path / "v1.mp4")
    _touch(tmp_path / "v2.mp4")
    pd.DataFrame({"uri": ["v1.mp4", str(tmp_path / "v2.mp4")], "caption": ["a cat", None], "source": ["yt", "vimeo"]}).to_parquet(tmp_path / "m.parquet")
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps({"uri": u, "lang": "en"}) for u in ("v1.mp4", "v2.mp4")))
    vids = list(discover([str(tmp_path / "m.parquet")]))
    assert vids[0]["caption"] == "a cat" and vids[0]["caption_source"] == "manifest"
    assert json.loads(vids[1]["input_meta"]) == {"source": "vimeo"}
    assert [v["uri"] for v in discover([str(tmp_path / "m.jsonl")])] == [str(tmp_path / "v1.mp4"), str(tmp_path / "v2.mp4")]


def test_sidecar_caption(tmp_path: Path):
    _touch(tmp_path / "v.mp4")
    (tmp_path / "v.txt").write_text("  a   red\nbicycle ")
    (v,) = discover([str(tmp_path / "v.mp4")])
    assert (v["caption"], v["caption_source"]) == ("a red bicycle", "sidecar")


def test_errors(tmp_path: Path):
    with pytest.raises(InputError, match="not found"):
        list(discover([str(tmp_path / "nope")]))
    (tmp_path / "m.csv").write_text("path\nx.mp4\n")
    with pytest.raises(InputError, match="no 'uri' column"):
        list(discover([str(tmp_path / "m.csv")]))


def test_named_pipe_is_not_read(tmp_path: Path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    (v,) = discover([str(fifo)])  # would block forever if discover opened it
    assert v["status"] == "pending" and v["size_bytes"] is None


def test_odd_file_names_get_a_storable_uri_that_opens_the_same_bytes(tmp_path: Path):
    name = os.fsdecode(b"caf\xe9 [1].mp4")  # not UTF-8, and glob characters
    p = _touch(tmp_path / name, b"video bytes")
    (v,) = discover([str(p)])
    v["uri"].encode("utf-8")  # storable in Parquet and JSON
    assert v["uri"].startswith("file://") and v["status"] == "pending"
    from curate.media.uri import local_path

    assert Path(local_path(v["uri"])).read_bytes() == b"video bytes"
    assert [x["uri"] for x in discover([str(tmp_path)])] == [v["uri"]]


def test_an_existing_path_wins_over_glob_expansion_and_empty_globs_warn(tmp_path: Path, caplog):
    p = _touch(tmp_path / "g" / "clip[1].mp4")
    assert [Path(v["uri"]).name for v in discover([str(p)])] == ["clip[1].mp4"]
    assert list(discover([str(tmp_path / "g" / "*.mkv")])) == []
    assert "no videos found" in caplog.text


def test_one_file_named_several_ways_is_one_input(tmp_path: Path, monkeypatch):
    _touch(tmp_path / "a.mp4")
    (tmp_path / "x").mkdir()
    monkeypatch.chdir(tmp_path)
    vids = list(discover(["./a.mp4", "a.mp4", "x/../a.mp4", "/" + str(tmp_path / "a.mp4"), str(tmp_path / "a.mp4")]))
    assert [v["uri"] for v in vids] == [str(tmp_path / "a.mp4")]


def test_bad_manifest_rows_fail_alone(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _touch(tmp_path / "ok.mp4")
    pq.write_table(pa.table({"uri": pa.array([b"ok.mp4", None, b"", b"ok.mp4"], pa.binary())}), tmp_path / "bin.parquet")
    pq.write_table(pa.table({"uri": [None, "", "ok.mp4"], "caption": [1, 2, 3], "score": [float("nan"), 1.0, float("inf")]}), tmp_path / "m.parquet")
    vids = list(discover([str(tmp_path / "m.parquet")]))
    assert [v["status"] for v in vids] == ["failed", "failed", "pending"]
    assert "uri is missing" in vids[0]["reason"] and "uri is empty" in vids[1]["reason"]
    assert vids[2]["caption"] == "3" and json.loads(vids[2]["input_meta"]) == {"score": None}
    binary = list(discover([str(tmp_path / "bin.parquet")]))
    assert all(v["status"] == "failed" for v in binary) and "not a string" in binary[0]["reason"]
    assert len({v["uri"] for v in binary}) == len(binary) == 4  # one row each, nothing merged away


def test_text_that_is_not_utf8_is_read_not_fatal(tmp_path: Path, caplog):
    _touch(tmp_path / "a.mp4")
    _touch(tmp_path / "b.mp4")
    (tmp_path / "m.csv").write_bytes("uri,caption\na.mp4,caf\xe9 au lait\nb.mp4,0042\n".encode("latin-1"))
    a, b = discover([str(tmp_path / "m.csv")])
    assert a["caption"] == "café au lait" and b["caption"] == "0042"
    assert "not UTF-8" in caplog.text
    (tmp_path / "b.txt").write_bytes("na\xefve".encode("latin-1"))
    (v,) = discover([str(tmp_path / "b.mp4")])
    assert v["caption"] == "naïve"


def test_jsonl_with_mixed_types_and_a_broken_line(tmp_path: Path):
    _touch(tmp_path / "a.mp4")
    (tmp_path / "m.jsonl").write_text('{"uri": "a.mp4", "caption": "x", "n": 1}\n{"uri": 5, "n": "two"}\n{broken\n[1, 2]\n')
    vids = list(discover([str(tmp_path / "m.jsonl")]))
    assert [v["status"] for v in vids] == ["pending", "failed", "failed", "failed"]
    assert "not a string" in vids[1]["reason"] and "not valid JSON" in vids[2]["reason"] and "not an object" in vids[3]["reason"]


def test_empty_manifests_yield_nothing(tmp_path: Path, caplog):
    (tmp_path / "e.csv").write_text("")
    (tmp_path / "h.csv").write_text("uri,caption\n")
    (tmp_path / "e.jsonl").write_text("\n")
    assert list(discover([str(tmp_path / n) for n in ("e.csv", "h.csv", "e.jsonl")])) == []
    assert "no rows" in caplog.text


def test_a_directory_is_walked_in_the_order_of_its_sorted_full_paths(tmp_path: Path):
    names = ["a.mp4", "a/b.mp4", "a-b.mp4", "a/c/d.mp4", "a0.mp4", "a/.h.mp4", "B.mp4", "a/c.mp4"]
    for name in names:
        _touch(tmp_path / "in" / name)
    uris = [v["uri"] for v in discover([str(tmp_path / "in")])]
    assert uris == sorted(str(tmp_path / "in" / n) for n in names)


def test_a_manifest_streams_rows_before_reading_to_its_end(tmp_path: Path):
    from curate.input_manifest import BATCH_BYTES, ManifestError, iter_rows
    import fsspec

    line = "x.mp4,a caption long enough to fill the first read block quickly\n"
    body = "uri,caption\n" + line * (3 * BATCH_BYTES // len(line)) + "y.mp4,too,many,columns\n"
    (tmp_path / "m.csv").write_text(body)
    rows = iter_rows(fsspec.filesystem("file"), str(tmp_path / "m.csv"), "m.csv")
    assert next(rows)["uri"] == "x.mp4"  # the broken last line has not been read yet
    with pytest.raises(ManifestError, match="not a readable CSV"):
        list(rows)


GLOB_TREE = ("a.mp4", "b.mkv", ".hidden.mp4", "x/c.mp4", "x/y/d.mp4", "x/.h/e.mp4", "z[1]/f.mp4", "zz/g.MP4", "n/o/p/q.mp4")
GLOB_PATTERNS = ("*.mp4", "**/*.mp4", "x/**/*.mp4", "x/*/*.mp4", "*/*.mp4", "[ab].*", "z?/*", "**", "x/**", "n/**/q.mp4", "**/.h/*")


def test_a_glob_streams_the_matches_glob_gives_in_sorted_order(tmp_path: Path):
    import glob

    from curate.input_glob import glob_local, local_listing, split_pattern, walk_glob

    for name in GLOB_TREE:
        _touch(tmp_path / name)
    for pattern in GLOB_PATTERNS:
        full = str(tmp_path / pattern)
        want = sorted(p for p in glob.glob(full, recursive=True) if not os.path.isdir(p))
        assert list(glob_local(full)) == want, pattern
    listed: list[str] = []

    def counting(directory: str) -> list:
        listed.append(directory)
        return local_listing(directory)

    head, parts = split_pattern(str(tmp_path / "**" / "*.mp4"))
    first = next(walk_glob(counting, head, parts, hidden_rule=True))
    assert Path(first).name == "a.mp4" and listed == [str(tmp_path)]  # the first match before any subfolder is listed
    head, parts = split_pattern(str(tmp_path / "x" / "*" / "*.mp4"))
    list(walk_glob(counting, head, parts, hidden_rule=True))
    assert str(tmp_path / "n") not in listed  # folders the pattern cannot reach are never listed


def test_a_remote_glob_streams_the_files_fsspec_glob_finds():
    import fsspec

    from curate.input_glob import glob_fs

    fs = fsspec.filesystem("memory")
    for name in GLOB_TREE:
        fs.pipe_file(f"/globtest/{name}", b"x")
    try:
        for pattern in ("/globtest/*.mp4", "/globtest/**/*.mp4", "/globtest/x/*/*.mp4", "/globtest/[ab].*"):
            want = sorted(p for p in fs.glob(pattern) if fs.isfile(p))
            assert list(glob_fs(fs, pattern)) == want, pattern
        assert [v["uri"] for v in discover(["memory://globtest/x/**/*.mp4"])] == [
            "memory:///globtest/x/.h/e.mp4", "memory:///globtest/x/c.mp4", "memory:///globtest/x/y/d.mp4"]
    finally:
        fs.rm("/globtest", recursive=True)


def test_discovery_reads_no_content_and_the_rerun_confirms_by_hash(tmp_path: Path, monkeypatch):
    from curate.config import PipelineConfig
    from curate.run import run_pipeline
    from curate.stages import probe
    from tests.pipeline_helpers import make_inputs

    a, b = make_inputs(tmp_path / "in", 2)
    hashed: list[str] = []
    monkeypatch.setattr(probe, "video_identity", lambda uri: hashed.append(uri) or video_identity(uri))
    videos = list(discover([str(tmp_path / "in")]))
    assert [v["video_id"] for v in videos] == [None, None] and [v["size_bytes"] for v in videos] == [a.stat().st_size, b.stat().st_size]
    assert hashed == []  # the probe stage hashes, on the workers

    config = PipelineConfig.model_validate({"clips": {"min_s": 1.0, "max_s": 2.0}, "dedup": {"enabled": False}})
    out = str(tmp_path / "out")
    run_pipeline(config, [str(tmp_path / "in")], out, runner="local")
    data = bytearray(b.read_bytes())
    data[len(data) // 2] ^= 0xFF  # b replaced by a file of the same name and size
    b.write_bytes(bytes(data))
    hashed.clear()
    summary = run_pipeline(config, [str(tmp_path / "in")], out, runner="local")
    assert (summary.skipped, summary.processed) == (1, 1)  # a is confirmed by its hash; b's hash differs: new
    # both match a finished row by uri and size, so the skip check hashes each once; b keeps that id (no second hash)
    assert sorted(hashed) == [str(a), str(b)]
