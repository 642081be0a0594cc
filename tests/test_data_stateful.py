"""torchdata's StatefulDataLoader resumes exactly, beside ClipLoader, with 0, 2 and 4 workers.

StatefulDataLoader snapshots each worker's ``dataset.state_dict()`` in step
with what it yielded and hands it back to that worker on resume, so the
dataset reports, inside a worker, the next batch that worker will build.
"""

from __future__ import annotations

import json

import pytest

from curate.data import ClipLoader
from tests.test_data_resume import dataset, key, output  # noqa: F401  (module fixture)

StatefulDataLoader = pytest.importorskip("torchdata.stateful_dataloader").StatefulDataLoader
# 4 workers on a 2-core CI box and torchdata's own deprecated torch.set_vital call warn; both are expected here
pytestmark = [pytest.mark.filterwarnings("ignore:This DataLoader will create"), pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")]


def take(loader, k: int | None) -> list[tuple]:
    out = []
    for b in loader:
        out.append(key(b))
        if len(out) == k:
            break
    return out


@pytest.mark.parametrize(("workers", "k"), [(0, 3), (2, 3), (2, 1), (4, 4), (4, 0)])
def test_stateful_dataloader_resumes_exactly(output, workers, k):  # noqa: F811
    full = take(ClipLoader(dataset(output), num_workers=2), None)
    assert k < len(full)  # stopping after the last batch moves a dataset state on to the next epoch
    extra = {"prefetch_factor": 4} if workers else {}
    loader = StatefulDataLoader(dataset(output), batch_size=None, num_workers=workers, **extra)
    before = take(loader, k) if k else []
    state = json.loads(json.dumps(loader.state_dict()))  # checkpoints go through JSON / torch.save
    del loader

    ds = dataset(output)
    resumed = StatefulDataLoader(ds, batch_size=None, num_workers=workers)
    resumed.load_state_dict(state)
    after = take(resumed, None)
    assert before + after == full
    # the same loader state also positions a dataset for ClipLoader (e.g. on another world size)
    other = dataset(output)
    other.load_state_dict(state)
    assert before + take(ClipLoader(other, num_workers=1), None) == full


def test_stateful_dataloader_next_epoch(output):  # noqa: F811
    """After a resumed epoch ends, the next epoch is a fresh, different plan (set_epoch with workers)."""
    ds = dataset(output)
    loader = StatefulDataLoader(ds, batch_size=None, num_workers=2)
    take(loader, 2)
    state = loader.state_dict()
    ds2 = dataset(output)
    loader2 = StatefulDataLoader(ds2, batch_size=None, num_workers=2)
    loader2.load_state_dict(state)
    ds2.set_epoch(0)  # a loop calling set_epoch every epoch keeps the resume
    rest = take(loader2, None)
    ds2.set_epoch(1)
    epoch1 = take(loader2, None)
    assert {k[0] for k in rest} == {0} and {k[0] for k in epoch1} == {1}
    assert [k[1] for k in epoch1] == list(range(len(epoch1)))


def test_sparse_snapshots(output):  # noqa: F811
    """snapshot_every_n_steps=3, stopped after 4: the loader replays one step; the dataset adds it."""
    full = take(ClipLoader(dataset(output), num_workers=2), None)
    loader = StatefulDataLoader(dataset(output), batch_size=None, num_workers=2, snapshot_every_n_steps=3)
    before = take(loader, 4)
    state = loader.state_dict()
    resumed = StatefulDataLoader(dataset(output), batch_size=None, num_workers=2, snapshot_every_n_steps=3)
    resumed.load_state_dict(state)
    assert before + take(resumed, None) == full
    other = dataset(output)
    other.load_state_dict(state)
    assert other.state_dict()["batch"] == 4


def test_loader_state_resumes_on_another_world_size(output):  # noqa: F811
    """A StatefulDataLoader state from 2 ranks x 2 workers finishes the epoch on 3 ranks (fresh loaders)."""
    from curate.data import ClipDataset
    from tests.test_data_resume import BUCKETS, OPTS

    def make(rank: int, world: int) -> ClipDataset:
        return ClipDataset(output, BUCKETS, decode=OPTS, seed=7, shuffle_buffer=6, rank=rank, num_ranks=world)

    seen, states = [], []
    for rank in range(2):
        loader = StatefulDataLoader(make(rank, 2), batch_size=None, num_workers=2)
        before = []
        for b in loader:
            before.append(b)
            if len(before) == 2:
                break
        seen += [c for b in before for c, r in zip(b["clip_id"], b["repeated"].tolist()) if not r]
        states.append(loader.state_dict())
    for rank in range(3):
        ds = make(rank, 3)
        ds.load_state_dict(states[0])
        seen += [c for b in ClipLoader(ds, num_workers=2) for c, r in zip(b["clip_id"], b["repeated"].tolist()) if not r]
    assert sorted(seen) == [f"c{i:05d}" for i in range(29)]


def test_worker_state_on_another_world_says_what_to_do(output):  # noqa: F811
    """StatefulDataLoader itself cannot re-deal worker states; the worker says how to resume instead."""
    from types import SimpleNamespace
    from unittest.mock import patch

    from curate.data import ClipDataset
    from curate.data.state import dataset_states
    from tests.test_data_resume import BUCKETS, OPTS

    loader = StatefulDataLoader(dataset(output), batch_size=None, num_workers=2)
    take(loader, 1)
    worker_state = next(s for s in dataset_states(loader.state_dict()) if "worker" in s)
    ds = ClipDataset(output, BUCKETS, decode=OPTS, seed=7, shuffle_buffer=6, rank=0, num_ranks=3)
    with patch("curate.data.dataset.get_worker_info", return_value=SimpleNamespace(id=0, num_workers=2)):
        with pytest.raises(ValueError, match="worker state of 2 workers on 2 ranks with 2 on 3; call dataset.load_state_dict"):
            ds.load_state_dict(worker_state)
    with pytest.raises(ValueError, match="one DataLoader worker's state"):
        ds.load_state_dict(worker_state)
