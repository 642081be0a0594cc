"""Ray runner: each stage becomes an actor pool in one streaming Ray Data pipeline.

Rows are video records pickled into one binary cell, so stages keep working
on plain dicts with nested clips and numpy frames, and Arrow typing happens
once, at the writer, against ``schemas/``. Pool sizes come from the nodes' CPUs
and GPUs (:mod:`curate.runners.pools`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from curate.records import Record
from curate.runners.pools import plan_pools
from curate.stage import Stage

log = logging.getLogger(__name__)

# Stages declaring fewer CPUs than this share an actor with a neighbour: an
# actor of its own costs a worker process (~1.5 CPU-s to start) and a copy of
# every record, more than such a stage's work.
CHEAP_CPUS = 0.5


@dataclass
class _Group:
    """Consecutive stages run by one actor pool; resources are the largest declared."""

    stages: list[Stage]

    @property
    def name(self) -> str:
        return "+".join(s.name for s in self.stages)

    @property
    def cpus(self) -> float:
        return max(s.cpus for s in self.stages)

    @property
    def gpus(self) -> float:
        return max(s.gpus for s in self.stages)

    @property
    def batch_size(self) -> int:
        return max(s.batch_size for s in self.stages)

    @property
    def gpu_batch_size(self) -> int | None:
        return max((s.gpu_batch_size for s in self.stages if s.gpu_batch_size), default=None)


def group_stages(stages: list[Stage]) -> list[_Group]:
    """Fold each cheap stage into the pool before it (a leading one into the next)."""
    groups: list[_Group] = []
    lead: list[Stage] = []
    for stage in stages:
        if stage.cpus < CHEAP_CPUS and stage.gpus == 0:
            (groups[-1].stages if groups else lead).append(stage)
        else:
            groups.append(_Group(lead + [stage]))
            lead = []
    if lead:
        groups.append(_Group(lead))
    return groups


class _StageActor:
    """Callable class Ray Data instantiates once per actor: start the stages, map, stop them.

    Ray Data deletes the callable when the actor exits gracefully (the pool
    is done; ``__ray_shutdown__`` drops its reference), so ``__del__`` is where
    the stages' ``teardown`` runs, as the local runner runs it after the last
    video. An actor that is killed or crashes gets no teardown; a guarded
    stage's child then notices its parent is gone and exits.
    """

    def __init__(self, stages_blob: bytes) -> None:
        self.stages: list[Stage] = pickle.loads(stages_blob)
        self._started: list[Stage] = []
        for stage in self.stages:
            stage.start()
            self._started.append(stage)

    def __del__(self) -> None:
        started, self._started = getattr(self, "_started", []), []
        for stage in reversed(started):
            try:
                stage.stop()
            except Exception:  # noqa: BLE001 - one stage's failed teardown must not skip the others'
                log.exception("%s: teardown failed", stage.name)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        records = [pickle.loads(b) for b in batch["payload"]]
        for stage in self.stages:
            records = stage.process(records)
        return {"video_id": [r["video_id"] for r in records], "payload": [pickle.dumps(r, protocol=5) for r in records]}


def init_ray(address: str | None = None) -> float:
    """Join ``address`` (or ``RAY_ADDRESS``) or start an embedded local Ray; returns seconds taken."""
    import ray

    t0 = time.perf_counter()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        with _stdin_from_devnull(), quiet_ray():
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                ignore_reinit_error=True,
                runtime_env=None if address is None else {"py_modules": [_package_dir()]},
            )
    return time.perf_counter() - t0


# Logger -> level while curate drives Ray. Ray's INFO chatter would drown the
# per-video log (its warnings still show); two notices say nothing a curate
# user acts on: the embedded cluster's token-auth notice (Ray picks its secure
# default either way) and Ray Data's "progress bars disabled" (curate draws its own).
_RAY_LOG_LEVELS = {
    "ray": logging.WARNING,
    "ray.data": logging.WARNING,
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
    "ray.data._internal.progress": logging.ERROR,
}


@contextlib.contextmanager
def quiet_ray() -> Iterator[None]:
    """Ray's loggers at :data:`_RAY_LOG_LEVELS` while the block runs; their levels are put back after."""
    before = {name: logging.getLogger(name).level for name in _RAY_LOG_LEVELS}
    for name, level in _RAY_LOG_LEVELS.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _run_context() -> Iterator[None]:
    """Ray Data's progress bars off for this run (curate draws its own); the context's setting is put back."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    before = ctx.enable_progress_bars
    ctx.enable_progress_bars = False
    try:
        yield
    finally:
        ctx.enable_progress_bars = before


@contextlib.contextmanager
def _stdin_from_devnull() -> Iterator[None]:
    """Ray's processes (and every worker and child they start) inherit /dev/null as stdin.

    Ray workers run in background process groups of the user's terminal; a
    child there that configures stdin as a tty (ffmpeg does, to read keys)
    gets SIGTTOU and the kernel stops its whole group: the run hangs.
    """
    saved = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(devnull)


def _package_dir() -> str:
    import curate

    return os.path.dirname(os.path.abspath(curate.__file__))


def run_ray(stages: list[Stage], videos: Iterable[Record], address: str | None = None) -> Iterator[Record]:
    """Stream videos through the stages on Ray and yield each finished video record."""
    init_ray(address)
    items = [{"video_id": v["video_id"], "payload": pickle.dumps(v, protocol=5)} for v in videos]
    if not items:
        return
    with quiet_ray(), _run_context():
        yield from _stream(stages, items)


def _stream(stages: list[Stage], items: list[dict[str, Any]]) -> Iterator[Record]:
    import ray
    import ray.data

    groups = group_stages(stages)
    pools = plan_pools(groups, [n["Resources"] for n in ray.nodes() if n.get("Alive")])
    log.info("ray: pools %s", dict(zip((g.name for g in groups), pools)))
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    for group, pool in zip(groups, pools):
        ds = ds.map_batches(
            _StageActor,
            fn_constructor_args=(pickle.dumps(group.stages),),
            batch_size=pool.batch_size,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=pool.actors),
            num_cpus=pool.cpus,
            num_gpus=pool.gpus or None,
            batch_format="default",
            zero_copy_batch=False,
        )
    for batch in ds.iter_batches(batch_size=1, batch_format="default", prefetch_batches=1):
        for blob in batch["payload"]:
            yield pickle.loads(blob)
