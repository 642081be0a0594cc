from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from curate.discover import InputError, discover, video_identity


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
