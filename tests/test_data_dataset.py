"""ClipDataset on real tiny H.264 shards: decoding, buckets, filters, ranks and workers.

Frame ``i`` of every synthetic clip is a flat grey of level ``10 + 7 * i``,
so the mean of a decoded frame tells which source frame was sampled.
"""

from __future__ import annotations

import io
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from curate.data import BucketConfig, ClipDataset, ClipLoader, DecodeOptions, ReadFilter
from curate.data.decode import geometry
from curate.schema import to_table


def level(i: int) -> int:
    return 10 + 7 * i


def encode(num_frames: int, width: int, height: int, fps: float, path: Path | None = None, color: tuple[int, int, int] | None = None) -> bytes:
    """H.264 MP4 (bytes, or written to ``path``) whose frame i is grey ``level(i)`` (or flat ``color``)."""
    buf = io.BytesIO()
    with av.open(str(path) if path else buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "4"}
        for i in range(num_frames):
            img = np.full((height, width, 3), color or level(i), np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return buf.getvalue()


def clip_row(i: int, video: bytes | None, num_frames: int, width: int, height: int, fps: float, **extra) -> dict:
    """A clip row with every non-nullable column filled."""
    d = num_frames / fps
    row = {
        "clip_id": f"c{i:05d}",
        "video_id": f"v{i // 4}",
        "source_uri": "mem://none",
        "shot_index": 0,
        "window_index": i % 3,
        "start_frame": 0,
        "end_frame": num_frames,
        "num_frames": num_frames,
        "start_s": 0.0,
        "end_s": d,
        "duration_s": d,
        "fps": fps,
        "width": width,
        "height": height,
        "source_fps": fps,
        "source_width": width,
        "source_height": height,
        "source_rotation": 0,
        "source_codec": "h264",
        "source_pix_fmt": "yuv420p",
        "caption": f"clip {i}",
        "video": video,
        "video_format": "mp4" if video is not None else "reference",
        "caption_source": "manifest",
        "motion_score": (i % 10) / 10,
        "camera_motion": "static",
        "camera_pan": 0.0,
        "camera_tilt": 0.0,
        "camera_zoom": 0.0,
        "sharpness": 50.0,
        "brightness": 0.5,
        "contrast": 0.1,
        "black_fraction": 0.0,
        "frozen_fraction": 0.0,
        "phash": "0" * 16,
        "thumbnail": b"",
        "input_meta": None,
        "run_id": "run",
        "config_hash": "cfg",
    }
    row.update(extra)
    return row


def write_output(root: Path, rows: list[dict], rows_per_shard: int, row_group_size: int) -> Path:
    """An OUTPUT dir: clips/part-*.parquet plus a manifest.json listing them (and an uncommitted file)."""
    (root / "clips").mkdir(parents=True)
    shards = []
    for s in range(0, len(rows), rows_per_shard):
        rel = f"clips/part-{s // rows_per_shard:05d}.parquet"
        chunk = rows[s : s + rows_per_shard]
        pq.write_table(to_table(chunk, "clip"), root / rel, row_group_size=row_group_size, compression="zstd")
        shards.append({"path": rel, "rows": len(chunk), "table": "clips"})
    pq.write_table(to_table(rows[:1], "clip"), root / "clips" / "part-99999.parquet")  # not committed
    (root / "manifest.json").write_text(json.dumps({"shards": shards}))
    return root


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """22 clips of 3 shapes and lengths, 3 shards, row groups of 3."""
    shapes = [(64, 48, 12, 24.0), (48, 64, 16, 24.0), (80, 46, 20, 30.0)]
    cache = {s: encode(s[2], s[0], s[1], s[3]) for s in shapes}
    rows = [clip_row(i, cache[shapes[i % 3]], shapes[i % 3][2], *shapes[i % 3][:2], shapes[i % 3][3]) for i in range(22)]
    rows[5]["caption"] = None
    return write_output(tmp_path_factory.mktemp("out"), rows, rows_per_shard=8, row_group_size=3)


def ids(batches) -> list[str]:
    return [c for b in batches for c, r in zip(b["clip_id"], b["repeated"].tolist()) if not r]


def test_manifest_read_and_batch_contents(output):
    ds = ClipDataset(output, BucketConfig.single(32, 32, 6, 4, fps=12), decode=DecodeOptions(temporal="start"))
    batches = list(ds)
    assert len(batches) == len(ds) == 6  # 22 rows, batch 4, last one padded
    assert sorted(ids(batches)) == [f"c{i:05d}" for i in range(22)]  # part-99999 is not committed
    b = batches[0]
    assert b["video"].shape == (4, 6, 3, 32, 32) and b["video"].dtype == torch.uint8
    assert b["shape"] == (6, 32, 32) and len(b["caption"]) == 4 and "motion_score" in b["meta"][0]
    # 24 fps -> 12 fps takes every other frame; 30 fps -> 12 fps takes frames nearest to k/12 s
    for clip, video, meta in zip(b["clip_id"], b["video"], b["meta"]):
        step = meta["fps"] / 12
        want = [level(round(k * step)) for k in range(6)]
        assert np.allclose(video.float().mean(dim=(1, 2, 3)).numpy(), want, atol=3), clip
    assert ds.report()["repeated"] and not ds.report()["dropped"]


def test_a_filter_keeps_exactly_the_passing_rows(output):
    ds = ClipDataset(output, BucketConfig.single(32, 32, 4, 2), filter=ReadFilter(min={"motion_score": 0.5}, require_caption=True), shuffle=False)
    want = {f"c{i:05d}" for i in range(22) if (i % 10) >= 5 and i != 5}
    assert set(ds.index.clip_id) == want
    assert set(ids(ds)) == want


def test_grid_buckets_share_shape(output):
    cfg = BucketConfig.grid({32 * 32: {8: 2, 16: 2}}, aspect_ratios=(0.75, 1.0, 16 / 9), multiple=8)
    ds = ClipDataset(output, cfg, policy="drop")
    shapes = set()
    for b in ds:
        assert b["video"].shape[1:] == (b["shape"][0], 3, *b["shape"][1:])
        shapes.add(b["shape"])
    assert len(shapes) >= 3  # portrait, landscape and the 16-frame bucket


def test_ranks_and_workers_cover_once(output):
    """World of 3 ranks, each with 2 DataLoader worker processes: one epoch, no row twice."""
    seen, counts = [], []
    for rank in range(3):
        ds = ClipDataset(output, BucketConfig.single(16, 16, 4, 3), rank=rank, num_ranks=3, shuffle_buffer=5)
        batches = list(ClipLoader(ds, num_workers=2))
        counts.append(len(batches))
        assert [b["batch_index"] for b in batches] == list(range(len(batches)))
        seen += ids(batches)
    assert len(set(counts)) == 1
    assert sorted(seen) == [f"c{i:05d}" for i in range(22)]


def test_float_output_and_random_crop_is_seeded(output):
    opts = DecodeOptions(output="float", crop="random")
    a = next(iter(ClipDataset(output, BucketConfig.single(24, 24, 4, 2), decode=opts, seed=1)))
    b = next(iter(ClipDataset(output, BucketConfig.single(24, 24, 4, 2), decode=opts, seed=1)))
    assert a["video"].dtype == torch.float32 and a["video"].min() >= -1 and a["video"].max() <= 1
    assert torch.equal(a["video"], b["video"]) and a["clip_id"] == b["clip_id"]


def test_channels_are_rgb(tmp_path):
    write_output(tmp_path, [clip_row(0, encode(4, 32, 32, 8.0, color=(200, 40, 90)), 4, 32, 32, 8.0)], 1, 1)
    b = next(iter(ClipDataset(tmp_path, BucketConfig.single(16, 16, 2, 1))))
    assert np.allclose(b["video"][0].float().mean(dim=(0, 2, 3)).numpy(), (200, 40, 90), atol=4)


def test_geometry_cover_and_stretch():
    rng = np.random.default_rng(0)
    assert geometry(640, 360, 256, 256, DecodeOptions(), rng) == (455, 256, 99, 0)
    assert geometry(640, 360, 256, 256, DecodeOptions(resize="stretch"), rng) == (256, 256, 0, 0)
    rw, rh, x, y = geometry(360, 640, 128, 128, DecodeOptions(crop="random"), rng)
    assert (rw, rh) == (128, 228) and x == 0 and 0 <= y <= 100


def test_reference_mode_seeks_into_source(tmp_path):
    src = tmp_path / "source.mp4"
    encode(30, 64, 48, 10.0, src)
    row = clip_row(0, None, 10, 64, 48, 10.0, source_uri=str(src), start_s=1.5, end_s=2.5, start_frame=15, end_frame=25)
    write_output(tmp_path / "out", [row], 1, 1)
    b = next(iter(ClipDataset(tmp_path / "out", BucketConfig.single(32, 32, 5, 1, fps=5), decode=DecodeOptions(temporal="start"))))
    means = b["video"][0].float().mean(dim=(1, 2, 3)).numpy()
    assert np.allclose(means, [level(15 + 2 * k) for k in range(5)], atol=3)


def test_broken_clip_is_replaced_and_reported(tmp_path):
    good = encode(8, 32, 32, 8.0)
    rows = [clip_row(0, good, 8, 32, 32, 8.0), clip_row(1, b"not a video", 8, 32, 32, 8.0)]
    write_output(tmp_path, rows, 2, 2)
    b = next(iter(ClipDataset(tmp_path, BucketConfig.single(32, 32, 4, 2), shuffle=False)))
    assert b["repeated"].tolist() == [False, True] and "c00001" in b["errors"][0]
    assert torch.equal(b["video"][0], b["video"][1])


def test_fsspec_output_and_reference_source(output, tmp_path):
    """An OUTPUT on an fsspec filesystem (memory://), with a reference-mode row whose source is there too."""
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.put(str(output), "/remote/out", recursive=True)
    fs.pipe("/remote/src.mp4", encode(20, 32, 32, 10.0))
    ref = clip_row(100, None, 10, 32, 32, 10.0, source_uri="memory:///remote/src.mp4", start_s=1.0, end_s=2.0)
    local = write_output(tmp_path / "ref", [ref], 1, 1)
    fs.put(str(local / "clips" / "part-00000.parquet"), "/remote/ref.parquet")
    try:
        ds = ClipDataset(["memory:///remote/out", "memory:///remote/ref.parquet"], BucketConfig.single(16, 16, 2, 23), decode=DecodeOptions(temporal="start"))
        (batch,) = list(ds)
        assert len(set(batch["clip_id"])) == 23
        i = batch["clip_id"].index("c00100")
        assert np.allclose(batch["video"][i].float().mean(dim=(1, 2, 3)).numpy(), [level(10), level(11)], atol=3)
    finally:
        fs.rm("/remote", recursive=True)


def test_reference_mode_applies_source_rotation(tmp_path):
    """A source coded 64x32 with a 90-degree (counter-clockwise) display rotation shows 32x64, right half on top."""
    src = tmp_path / "rotated.mp4"
    img = np.zeros((32, 64, 3), np.uint8)
    img[:, 32:] = 220
    with av.open(str(src), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.set_display_rotation(90)
        for _ in range(4):
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode())
    row = clip_row(0, None, 4, 32, 64, 10.0, source_uri=str(src), source_rotation=90, start_s=0.0, end_s=0.4)
    write_output(tmp_path / "out", [row], 1, 1)
    b = next(iter(ClipDataset(tmp_path / "out", BucketConfig.single(64, 32, 1, 1))))
    frame = b["video"][0, 0].float().mean(dim=0)  # (H=64, W=32)
    assert frame[:28].mean() > 200 and frame[36:].mean() < 20


@pytest.mark.parametrize("layout", ["list", "by_table"])
def test_manifest_lists_only_committed_clip_shards(tmp_path, layout):
    from curate.data.index import resolve_shards

    clips = [{"path": "clips/part-000001-aaaaaaaa.parquet", "rows": 3}, {"path": "clips/part-000002-bbbbbbbb.parquet", "rows": 1}]
    rejected = [{"path": "rejected/part-000001-aaaaaaaa.parquet", "rows": 2}]
    if layout == "list":
        shards = [{**e, "table": "clips"} for e in clips] + [{**e, "table": "rejected"} for e in rejected]
    else:
        shards = {"clips": clips, "rejected": rejected}
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": shards}))
    _, paths = resolve_shards(tmp_path)
    assert paths == [f"{tmp_path}/{e['path']}" for e in clips]
    (tmp_path / "clips").mkdir()
    with pytest.raises(ValueError, match="manifest"):
        resolve_shards(tmp_path / "clips")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_shards(tmp_path / "nothing.parquet")
