"""Resume: a checkpoint after k batches (workers prefetching ahead) continues exactly there."""

from __future__ import annotations

import json

import pytest

from curate.data import BucketConfig, ClipDataset, ClipLoader, DecodeOptions
from tests.test_data_dataset import clip_row, encode, write_output

BUCKETS = BucketConfig.single(16, 16, 4, 3)
OPTS = DecodeOptions(crop="random")  # random crops and offsets must replay too


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    clips = [encode(n, 32, 24, 12.0) for n in (6, 9)]
    rows = [clip_row(i, clips[i % 2], (6, 9)[i % 2], 32, 24, 12.0) for i in range(29)]
    return write_output(tmp_path_factory.mktemp("out"), rows, rows_per_shard=10, row_group_size=4)


def dataset(output, **kw) -> ClipDataset:
    return ClipDataset(output, BUCKETS, decode=OPTS, seed=7, shuffle_buffer=6, rank=1, num_ranks=2, **kw)


def key(b) -> tuple:
    return (b["epoch"], b["batch_index"], tuple(b["clip_id"]), tuple(b["repeated"].tolist()), b["video"].sum().item())


@pytest.mark.parametrize(("workers_before", "workers_after", "k"), [(2, 2, 3), (2, 1, 1), (0, 2, 2), (1, 0, 4)])
def test_resume_after_k_batches(output, workers_before, workers_after, k):
    full = [key(b) for b in ClipLoader(dataset(output), num_workers=2)]
    ds = dataset(output)
    before = []
    loader = ClipLoader(ds, num_workers=workers_before, **({"prefetch_factor": 4} if workers_before else {}))
    for b in loader:  # workers have prefetched beyond k when we stop
        before.append(key(b))
        if len(before) == k:
            break
    state = json.loads(json.dumps(ds.state_dict()))
    assert state["epoch"] == 0 and state["batch"] == k
    del loader

    resumed = dataset(output)
    resumed.load_state_dict(state)
    after = [key(b) for b in ClipLoader(resumed, num_workers=workers_after)]
    assert before + after == full
    assert resumed.state_dict()["epoch"] == 1 and resumed.state_dict()["batch"] == 0


def test_persistent_workers_follow_epochs_and_breaks(output):
    ds = dataset(output)
    loader = ClipLoader(ds, num_workers=2, persistent_workers=True)
    epoch0 = [key(b) for b in loader]
    part = []
    for b in loader:  # epoch 1, interrupted after 2 batches
        part.append(key(b))
        if len(part) == 2:
            break
    rest = [key(b) for b in loader]  # the same loader continues where the trainer stopped
    fresh = dataset(output)
    fresh.set_epoch(1)
    epoch1 = [key(b) for b in fresh]
    assert part + rest == epoch1
    assert {k[0] for k in epoch0} == {0} and [k[2] for k in epoch0] != [k[2] for k in epoch1]


def test_state_must_match_the_data(output):
    state = dataset(output).state_dict()
    other = ClipDataset(output, BUCKETS, seed=8, rank=1, num_ranks=2)
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="version"):
        dataset(output).load_state_dict({**state, "version": 1})
    with pytest.raises(ValueError, match="fingerprint"):
        ClipDataset(output, BucketConfig.single(16, 16, 4, 2), seed=7, rank=1, num_ranks=2).load_state_dict(state)
