"""Who am I in the job: distributed rank plus DataLoader worker, derived once.

The plan is a pure function of ``(rows, num_ranks, seed, epoch)`` (plus the
epoch's earlier world sizes after an elastic resume); the worker
split only deals out a rank's batches, so the batches a rank yields never
depend on how many DataLoader workers it runs (resume may change workers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """Rank and DataLoader-worker coordinates of the current process.

    Args:
        rank: distributed rank, ``0 <= rank < num_ranks``.
        num_ranks: distributed world size.
        worker: DataLoader worker id (0 in the main process).
        num_workers: DataLoader workers of this rank (1 when loading in-process).
    """

    rank: int = 0
    num_ranks: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.num_ranks:
            raise ValueError(f"rank {self.rank} outside world of {self.num_ranks} ranks")
        if not 0 <= self.worker < self.num_workers:
            raise ValueError(f"worker {self.worker} outside {self.num_workers} workers")

    @classmethod
    def detect(cls, rank: int | None = None, num_ranks: int | None = None) -> World:
        """The current world: ``torch.distributed`` if initialised, else ``RANK``/``WORLD_SIZE``.

        Explicit ``rank``/``num_ranks`` win, which lets tests and custom launchers
        simulate any world without a process group.
        """
        if rank is None or num_ranks is None:
            d_rank, d_ranks = _distributed()
            rank = d_rank if rank is None else rank
            num_ranks = d_ranks if num_ranks is None else num_ranks
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        if info is None:
            return cls(rank, num_ranks)
        return cls(rank, num_ranks, info.id, info.num_workers)


def _distributed() -> tuple[int, int]:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:  # torch built without distributed
        pass
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def worker_batches(num_batches: int, start: int, num_workers: int, worker: int) -> range:
    """Batch indices of the rank's plan that ``worker`` produces, starting at batch ``start``.

    Dealing round-robin from ``start`` means DataLoader's in-order round-robin
    fetching (worker 0 first on every new iterator) returns batches in plan order.
    """
    return range(start + worker, num_batches, max(1, num_workers))
