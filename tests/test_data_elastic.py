"""Elastic resume: a checkpoint taken on one world size continues the epoch on another.

Whatever the sequence of world sizes, the rows delivered before the change
plus those delivered after cover the epoch once: nothing consumed comes
back, nothing left is lost (apart from what the final policy reports).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.data import ClipDataset, ClipLoader
from curate.data.plan import plan_epoch
from tests.test_data_resume import BUCKETS, OPTS, output  # noqa: F401  (module fixture)


def delivered(plan, k: int) -> list[int]:
    return [r for rank in plan.ranks for b, m in zip(rank.batches[:k], rank.repeated[:k]) for r in b[~m].tolist()]


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 120),
    groups=st.integers(1, 6),
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    worlds=st.lists(st.tuples(st.integers(1, 6), st.floats(0, 1)), min_size=1, max_size=4),
    last=st.integers(1, 6),
    policy=st.sampled_from(["pad", "drop"]),
    seed=st.integers(0, 3),
    block=st.sampled_from([4, 1024]),
)
def test_every_row_once_across_world_changes(n, groups, sizes, worlds, last, policy, seed, block):
    shard = np.zeros(n, int)
    rg = np.sort(np.random.default_rng(seed).integers(0, groups, n))
    bucket = np.random.default_rng(seed + 1).integers(-1, len(sizes), n)
    kw = dict(seed=seed, epoch=1, shuffle_buffer=5, policy=policy, shuffle_block=block)
    seen: Counter[int] = Counter()
    history: list[tuple[int, int]] = []
    for ranks, frac in worlds:
        plan = plan_epoch(shard, rg, bucket, sizes, ranks, history=history, **kw)
        k = int(frac * plan.num_batches)
        seen.update(delivered(plan, k))
        history.append((ranks, k))
    final = plan_epoch(shard, rg, bucket, sizes, last, history=history, **kw)
    assert {len(r.batches) for r in final.ranks} <= {final.num_batches}
    seen.update(delivered(final, final.num_batches))
    seen.update(final.dropped.tolist())
    seen.update(final.unbucketed.tolist())
    assert seen == Counter(range(n)), "a row was lost or delivered twice"


def dataset(output, rank: int, num_ranks: int) -> ClipDataset:
    return ClipDataset(output, BUCKETS, decode=OPTS, seed=7, shuffle_buffer=6, rank=rank, num_ranks=num_ranks)


def ids(batches) -> list[str]:
    return [c for b in batches for c, r in zip(b["clip_id"], b["repeated"].tolist()) if not r]


@pytest.mark.parametrize(("before", "after", "k", "workers"), [(2, 1, 3, 0), (1, 3, 4, 2), (4, 2, 1, 0), (4, 2, 1, 2), (2, 3, 2, 2)])
def test_resume_on_another_world_size(output, before, after, k, workers):  # noqa: F811
    """Every rank stops after k batches (workers prefetching ahead); the new world finishes the epoch."""
    seen: list[str] = []
    states = []
    for rank in range(before):
        ds = dataset(output, rank, before)
        loader = ClipLoader(ds, num_workers=workers)
        for i, b in enumerate(loader):
            seen += ids([b])
            if i + 1 == k:
                break
        del loader
        states.append(json.loads(json.dumps(ds.state_dict())))
    assert all(s == states[0] for s in states)  # ranks move in lockstep, so one state serves all
    for rank in range(after):
        ds = dataset(output, rank, after)
        ds.load_state_dict(states[0])
        batches = list(ClipLoader(ds, num_workers=workers))
        assert {b["epoch"] for b in batches} == {0}
        seen += ids(batches)
        assert ds.state_dict()["epoch"] == 1 and ds.state_dict()["batch"] == 0
    assert Counter(seen) == Counter(f"c{i:05d}" for i in range(29))


def test_two_changes_in_one_epoch(output):  # noqa: F811
    """2 ranks -> 3 ranks -> 1 rank within epoch 0, then epoch 1 plans normally on 1 rank."""
    seen: list[str] = []
    state = None
    for world, k in ((2, 2), (3, 1), (1, None)):
        for rank in range(world):
            ds = dataset(output, rank, world)
            if state is not None:
                ds.load_state_dict(state)
            batches = []
            for b in ds:
                batches.append(b)
                if len(batches) == k:
                    break
            seen += ids(batches)
            last = ds.state_dict()
        state = last
    assert Counter(seen) == Counter(f"c{i:05d}" for i in range(29))
    assert state["epoch"] == 1 and state["history"] == [] and state["batch"] == 0
