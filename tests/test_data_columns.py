"""Filters that keep nothing or name a missing column fail loudly; tensor columns, hooks and stride."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from curate.data import BucketConfig, ClipDataset, ClipLoader, DecodeOptions, ReadFilter
from curate.data.filters import filter_columns
from tests.test_data_dataset import clip_row, encode, level, output, write_output  # noqa: F401  (module fixture)

SMALL = BucketConfig.single(16, 16, 2, 4)


def test_filter_keeping_nothing_names_each_condition(output):  # noqa: F811
    flt = ReadFilter(min={"motion_score": 0.5}, max={"black_fraction": -1.0}, require_caption=True)
    with pytest.raises(ValueError, match=r"keeps 0 of 22 rows \(motion_score >= 0.5 keeps 10; black_fraction <= -1.0 keeps 0; caption not empty keeps 21\)"):
        ClipDataset(output, SMALL, filter=flt)
    with pytest.raises(ValueError, match="keeps 0 of 22"):
        ClipDataset(output, SMALL, filter=pc.field("sharpness") > 1000)


def test_filter_keeping_almost_nothing_warns(tmp_path):
    rows = [clip_row(i, b"x", 8, 32, 32, 8.0, sharpness=90.0 if i == 0 else 10.0) for i in range(150)]
    write_output(tmp_path, rows, 150, 50)
    with pytest.warns(UserWarning, match=r"keeps 1 of 150 rows \(sharpness >= 80 keeps 1\)"):
        ClipDataset(tmp_path, SMALL, filter=ReadFilter(min={"sharpness": 80}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClipDataset(tmp_path, SMALL, filter=ReadFilter(min={"sharpness": 5}))


def test_filter_on_missing_column_lists_the_columns(output):  # noqa: F811
    with pytest.raises(ValueError, match=r"filter column 'aesthetic' is not in shard .*part-00000.parquet; its columns are: clip_id, video_id"):
        ClipDataset(output, SMALL, filter=ReadFilter(min={"aesthetic": 4.5}))
    with pytest.raises(ValueError, match=r"filter column 'nope' is not in shard .*; its columns are: clip_id"):
        ClipDataset(output, SMALL, filter=pc.field("nope") > 1)


def test_a_raw_expression_reads_only_the_columns_it_names():
    schema = pa.schema([("clip_id", pa.string()), ("caption", pa.string()), ("sharpness", pa.float32()), ("video", pa.binary())])
    expr = (pc.field("sharpness") > 1) & (pc.utf8_length(pc.field("caption")) > 0)
    assert filter_columns(expr, "part-0.parquet", schema) == ["caption", "sharpness"]
    assert filter_columns(pc.field("sharpness").is_valid(), "part-0.parquet", schema) == ["sharpness"]
    assert filter_columns(None, "part-0.parquet", schema) == []


def test_nothing_fits_a_bucket_is_an_error(output):  # noqa: F811
    with pytest.raises(ValueError, match="none of the 22 clips fits a bucket"):
        ClipDataset(output, BucketConfig.single(16, 16, 500, 2))
    with pytest.raises(ValueError, match=r"policy='drop' leaves no batch: 22 clips over 4 ranks fill no batch of sizes \[8\]"):
        ClipDataset(output, BucketConfig.single(16, 16, 2, 8), policy="drop", rank=0, num_ranks=4)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    video = encode(8, 32, 32, 8.0)
    rows = []
    for i in range(6):
        emb = None if i == 3 else (np.arange(512) * 0 + i).astype(np.float16).tolist()
        rows.append(clip_row(i, video, 8, 32, 32, 8.0, embedding=emb, aesthetic_score=None if i == 4 else float(i)))
    return write_output(tmp_path_factory.mktemp("emb"), rows, 6, 3)


def test_numeric_columns_come_back_as_batched_tensors(embedded):
    ds = ClipDataset(embedded, BucketConfig.single(16, 16, 2, 3), tensors=("embedding", "aesthetic_score", "num_frames"), shuffle=False)
    batches = list(ds)
    b = batches[0]
    assert b["embedding"].shape == (3, 512) and b["embedding"].dtype == torch.float16
    assert b["aesthetic_score"].shape == (3,) and b["aesthetic_score"].dtype == torch.float32
    assert b["num_frames"].dtype == torch.int64 and b["num_frames"].tolist() == [8, 8, 8]
    by_id = {c: (e, a) for bb in batches for c, e, a in zip(bb["clip_id"], bb["embedding"], bb["aesthetic_score"])}
    assert torch.all(by_id["c00002"][0] == 2) and by_id["c00002"][1] == 2.0
    assert torch.isnan(by_id["c00003"][0]).all() and torch.isnan(by_id["c00004"][1])  # nulls are NaN
    with pytest.raises(ValueError, match="'camera_motion' is string, not numeric"):
        ClipDataset(embedded, SMALL, tensors=("camera_motion",))
    with pytest.raises(ValueError, match="clashes with the batch key"):
        ClipDataset(embedded, SMALL, tensors=("caption",))
    with pytest.raises(ValueError, match="tensor column 'missing' is not in shard"):
        ClipDataset(embedded, SMALL, tensors=("missing",))


def _tokenise(sample: dict) -> dict:
    ids = [ord(c) for c in sample["caption"]]
    return {"video": sample["video"].float().mean(), "ids": torch.tensor(ids), "score": sample["aesthetic_score"].item()}


def _pad(samples: list[dict]) -> dict:
    width = max(len(s["ids"]) for s in samples)
    ids = torch.zeros(len(samples), width, dtype=torch.long)
    for i, s in enumerate(samples):
        ids[i, : len(s["ids"])] = s["ids"]
    return {"video": torch.stack([s["video"] for s in samples]), "ids": ids, "score": torch.tensor([s["score"] for s in samples])}


def test_transform_and_collate_run_in_workers_and_keep_resume_keys(embedded):
    ds = ClipDataset(embedded, BucketConfig.single(16, 16, 2, 3), tensors=("aesthetic_score",), transform=_tokenise, collate=_pad, seed=3)
    batches = list(ClipLoader(ds, num_workers=2))
    assert len(batches) == 2 and {b["batch_index"] for b in batches} == {0, 1}
    b = batches[0]
    assert b["ids"].shape[0] == 3 and b["video"].shape == (3,) and b["repeated"].shape == (3,)
    assert ds.state_dict()["epoch"] == 1  # ClipLoader still counted the batches
    plain = ClipDataset(embedded, BucketConfig.single(16, 16, 2, 3), transform=lambda s: {**s, "n": len(s["caption"])})
    nb = next(iter(plain))
    assert nb["video"].shape == (3, 2, 3, 16, 16) and nb["n"].tolist() == [len(c) for c in nb["caption"]]


def test_stride_takes_every_kth_decoded_frame(tmp_path):
    rows = [clip_row(0, encode(20, 32, 32, 24.0), 20, 32, 32, 24.0), clip_row(1, encode(6, 32, 32, 24.0), 6, 32, 32, 24.0)]
    write_output(tmp_path, rows, 2, 2)
    cfg = BucketConfig.single(16, 16, 4, 1, stride=3)
    ds = ClipDataset(tmp_path, cfg, decode=DecodeOptions(temporal="start"))
    (b,) = list(ds)  # the 6-frame clip needs (4 - 1) * 3 + 1 = 10 frames: no bucket
    assert b["clip_id"] == ["c00000"] and ds.report()["unbucketed"] == ["c00001"]
    assert np.allclose(b["video"][0].float().mean(dim=(1, 2, 3)).numpy(), [level(i) for i in (0, 3, 6, 9)], atol=3)
    centre = next(iter(ClipDataset(tmp_path, cfg, decode=DecodeOptions(temporal="center"))))  # slack 10 -> offset 5
    assert np.allclose(centre["video"][0].float().mean(dim=(1, 2, 3)).numpy(), [level(i) for i in (5, 8, 11, 14)], atol=3)
    with pytest.raises(ValueError, match="exclusive with fps"):
        BucketConfig.single(16, 16, 4, 1, fps=8, stride=2)
