"""Resume state: where the trainer is in the epoch, as a few JSON-able integers.

A position is ``(epoch, history, batch)``: ``history`` lists the earlier
segments of the epoch as ``(num_ranks, batches consumed)`` (one entry per
world-size change, see :mod:`curate.data.plan`) and ``batch`` counts batches
consumed in the current segment.  Everything else is recomputed.

Three producers of state exist and all land here:

* the main process (``ClipLoader`` or in-process iteration) counts batches
  the trainer received -- the exact position;
* a DataLoader worker under torchdata's ``StatefulDataLoader`` reports the
  next batch *it* will build; the loader snapshots one such state per worker,
  in step with what it yielded, and hands each back to its worker on resume;
* a whole ``StatefulDataLoader.state_dict()``: the worker states inside it
  pin the global position (the smallest "next batch" over the workers, since
  in-order round-robin yields batches in plan order), which lets that state
  also resume on another world size or worker count.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

STATE_VERSION = 2
MAX_SEGMENTS = 64  # world-size changes within one epoch that the shared cursor can carry


@dataclass(frozen=True)
class Position:
    """Epoch, earlier segments ``((num_ranks, consumed), ...)`` and batches consumed in the current one."""

    epoch: int = 0
    batch: int = 0
    history: tuple[tuple[int, int], ...] = field(default=())


def elastic(pos: Position, ranks_then: int, ranks_now: int) -> Position:
    """``pos`` saved on ``ranks_then`` ranks, continued on ``ranks_now``: close the segment if the world changed."""
    if ranks_then == ranks_now or pos.batch == 0:
        return pos
    if len(pos.history) >= MAX_SEGMENTS:
        raise ValueError(f"cannot resume: more than {MAX_SEGMENTS} world-size changes within epoch {pos.epoch}")
    return Position(pos.epoch, 0, (*pos.history, (ranks_then, pos.batch)))


class Cursor:
    """The position of the current iteration in shared memory, read by (persistent) workers.

    Workers are forked once; a tensor in shared memory is how the main process
    tells them about a new epoch or a loaded state without restarting them.
    """

    def __init__(self) -> None:
        self.data = torch.zeros(3 + 2 * MAX_SEGMENTS, dtype=torch.int64).share_memory_()

    def publish(self, pos: Position) -> None:
        flat = [pos.epoch, pos.batch, len(pos.history)] + [v for seg in pos.history for v in seg]
        self.data[: len(flat)] = torch.tensor(flat, dtype=torch.int64)

    def read(self) -> Position:
        v = self.data.tolist()
        n = v[2]
        return Position(v[0], v[1], tuple((v[3 + 2 * i], v[4 + 2 * i]) for i in range(n)))


def to_dict(pos: Position, **identity: Any) -> dict[str, Any]:
    """The JSON-able state: position plus what must match on resume (seed, fingerprint, num_ranks...)."""
    return {"version": STATE_VERSION, "epoch": pos.epoch, "batch": pos.batch, "history": [list(s) for s in pos.history], **identity}


def from_dict(state: Mapping[str, Any]) -> Position:
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"cannot resume: state version {state.get('version')!r}; this loader ({STATE_VERSION}) shuffles differently, so its batch counts point at other rows")
    return Position(int(state["epoch"]), int(state["batch"]), tuple((int(r), int(k)) for r, k in state.get("history", [])))


def check_identity(state: Mapping[str, Any], mine: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Refuse a state whose data or settings differ: its batch counts would point at other rows."""
    for key in keys:
        if state.get(key) != mine[key]:
            raise ValueError(f"cannot resume: {key} is {mine[key]!r} here but {state.get(key)!r} in the state; rebuild the dataset as it was")


def dataset_states(obj: Any) -> Iterator[Mapping[str, Any]]:
    """Every ClipDataset state nested anywhere in ``obj`` (a StatefulDataLoader state, say)."""
    if isinstance(obj, Mapping):
        if "fingerprint" in obj and "epoch" in obj and "batch" in obj:
            yield obj
            return
        for v in obj.values():
            yield from dataset_states(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from dataset_states(v)


def from_loader_state(loader_state: Mapping[str, Any]) -> dict[str, Any]:
    """One dataset state (main-process form) from a whole ``StatefulDataLoader.state_dict()``.

    With workers, each worker state holds the next batch that worker would
    build; the trainer consumed exactly the smallest of them (plus the steps
    the loader took since its last snapshot, ``snapshot_every_n_steps > 1``).
    """
    found = list(dataset_states(loader_state))
    if not found:
        raise ValueError("no ClipDataset state in this loader state; was it saved by a StatefulDataLoader over a ClipDataset?")
    mains = [s for s in found if "worker" not in s]
    if mains:
        return dict(mains[0])
    positions = {(s["epoch"], tuple(map(tuple, s.get("history", [])))) for s in found}
    if len(positions) != 1:
        raise ValueError(f"worker states disagree on the epoch: {sorted(positions)}")
    steps = int(loader_state.get("_steps_since_snapshot", 0) or 0)
    state = {k: v for k, v in found[0].items() if k != "worker"}
    state["batch"] = min(int(s["worker"]["next"]) for s in found) + steps
    return state
