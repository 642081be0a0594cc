"""Ray runner: each stage becomes an actor pool in one streaming Ray Data pipeline.

Rows are groups of video records pickled into one binary cell, so stages
keep working on plain dicts with nested clips and numpy frames, and Arrow
typing happens once, at the writer, against ``schemas/``. A group holds one
video, or several small ones (up to :data:`GROUP_SOURCE_BYTES` of source):
every row is its own block, so pools spread videos, while thousands of tiny
inputs do not each pay Ray Data's per-block cost. Pool sizes come from the nodes' CPUs
and GPUs (:mod:`curate.runners.pools`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, NamedTuple

from curate.output.rows import Outcome
from curate.output.pieces import Staged, StagedPiece
from curate.output.writer import ShardWriter, WriterSpec
from curate.records import Record, is_piece
from curate.runners.pools import plan_pools
from curate.stage import Stage, run_stages

log = logging.getLogger(__name__)

# Shard writers (one actor per node) encode Parquet and write files: mostly I/O,
# run in the CPUs the pools leave free. The loader reads work-list chunks.
WRITER_CPUS = 0.0
LOADER_CPUS = 0.1
IN_FLIGHT_PER_WRITER = 2  # blocks sent to a writer and not yet answered: bounds the driver's references
MAX_WRITER_RESTARTS = 3
RESTART_WAIT_S = 0.5  # before sending again to a writer Ray is still restarting
# Ray Data blocks of one row each: every group is its own block, so actor pools
# spread them instead of one actor taking a whole work-list chunk.
ONE_ROW_BLOCKS = 1
# A group of small videos holds up to this much source and so many videos; a
# video of more than half of it (or of unknown size) is in a group of its own,
# so real footage keeps one video per block and spreads over the pools.
GROUP_SOURCE_BYTES = 256 << 10
GROUP_MAX_VIDEOS = 64


class Written(NamedTuple):
    """What a writer reported: outcomes of videos it buffered, commits and clip pieces it staged, bytes the driver received."""

    outcomes: list[Outcome]
    staged: list[Staged]
    pieces: list[StagedPiece]
    received: int


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

    def __call__(self, batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The batch's groups through the stages; clip pieces leave as one-row batches the moment a stage makes them."""
        # a piece from an earlier pool comes as a one-row group of its own and leaves as one (the stages
        # up to encode work on an analysis piece, the latents stage on a closed one's clips); groups are
        # of the video records, whose order is kept
        loaded = [pickle.loads(b) for b in batch["payload"]]
        groups = [g for g in ([r for r in g if not is_piece(r)] for g in loaded) if g]
        pieces = [r for g in loaded for r in g if is_piece(r)]
        records = []
        for record in run_stages(self.stages, pieces + [r for g in groups for r in g]):
            if is_piece(record):
                yield {"uri": [record["uri"]], "payload": [pickle.dumps([record], protocol=5)]}
            else:
                records.append(record)
            del record  # a piece handed on is not held while the stages make the next
        if len(records) != sum(map(len, groups)):
            raise RuntimeError(f"stages returned {len(records)} records for {sum(map(len, groups))}")
        out, at = [], 0
        for g in groups:  # the same groups, in order: stages keep their input's order
            out.append(records[at:at + len(g)])
            at += len(g)
        if out:
            yield {"uri": [g[0]["uri"] for g in out], "payload": [pickle.dumps(g, protocol=5) for g in out]}


def init_ray(address: str | None = None) -> float:
    """Join ``address`` (or ``RAY_ADDRESS``) or start an embedded local Ray; returns seconds taken."""
    import ray

    t0 = time.perf_counter()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        with _stdin_from_devnull(), quiet_ray(), _ctrl_c_after():
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


# Logger -> start of a message dropped while curate drives Ray. Ray Data warns, for
# every pool given both CPUs and GPUs, that this is "experimental": curate's model
# stages declare both by design (their actors decode and batch on CPUs), and such
# pools ran on a real GPU (tests/test_ray_gpu.py), so the four lines a GPU run
# printed left a user nothing to do but worry.
_RAY_DROPPED = {"ray.data._internal.execution.operators.map_operator": "Specifying both num_cpus and num_gpus"}


class _DropMessage(logging.Filter):
    """Drops the records whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


@contextlib.contextmanager
def quiet_ray() -> Iterator[None]:
    """Ray's loggers at :data:`_RAY_LOG_LEVELS`, less :data:`_RAY_DROPPED`, while the block runs; all is put back after."""
    before = {name: logging.getLogger(name).level for name in _RAY_LOG_LEVELS}
    for name, level in _RAY_LOG_LEVELS.items():
        logging.getLogger(name).setLevel(level)
    drops = {name: _DropMessage(prefix) for name, prefix in _RAY_DROPPED.items()}
    for name, drop in drops.items():
        logging.getLogger(name).addFilter(drop)
    try:
        yield
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)
        for name, drop in drops.items():
            logging.getLogger(name).removeFilter(drop)


@contextlib.contextmanager
def _run_context() -> Iterator[None]:
    """Ray Data's progress bars off (curate draws its own) and one-row blocks for this run; the settings are put back."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    before = ctx.enable_progress_bars, ctx.target_max_block_size
    ctx.enable_progress_bars, ctx.target_max_block_size = False, ONE_ROW_BLOCKS
    try:
        yield
    finally:
        ctx.enable_progress_bars, ctx.target_max_block_size = before


@contextlib.contextmanager
def _ctrl_c_after() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise it.

    ``ray.init`` starts its processes with a Python ``preexec_fn``, so a
    SIGINT that lands in the instant between fork and exec raises
    KeyboardInterrupt inside the child, whose traceback then goes to the
    user's terminal. Here a SIGINT is only noted, and is raised once Ray is up.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hit: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: hit.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
    if hit:
        raise KeyboardInterrupt


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
    """Stream videos through the stages on Ray and yield each finished video record (bytes and all),
    after the clip pieces a long one sent ahead (``curate.records.PIECE``).

    For analysis and benchmarks that want the records; a run uses :func:`write_ray`,
    where workers write the shards and the driver receives metadata only.
    """
    init_ray(address)
    items = [{"uri": v["uri"], "payload": pickle.dumps([v], protocol=5)} for v in videos]
    if not items:
        return
    import ray.data

    with quiet_ray(), _run_context():
        ds = _through_stages(stages, ray.data.from_items(items, override_num_blocks=len(items)))
        for batch in ds.iter_batches(batch_size=1, batch_format="default", prefetch_batches=1):
            for blob in batch["payload"]:
                yield from pickle.loads(blob)


def write_ray(stages: list[Stage], chunks: list[str], spec: WriterSpec, address: str | None = None) -> Iterator[Written]:
    """Run the work list's ``chunks`` (relpaths under ``spec.root``) through the stages; workers write the shards.

    Yields, as writers report, what the driver needs: outcomes of buffered
    videos and :class:`~curate.output.writer.Staged` commits (paths, counts,
    ledger rows). The records themselves, and their clip bytes, go from the
    last stage's actor to a writer on the same node without passing through
    this process.
    """
    init_ray(address)
    if not chunks:
        return
    import ray.data

    with quiet_ray(), _run_context():
        items = ray.data.from_items([{"chunk": c} for c in chunks], override_num_blocks=len(chunks))
        loaded = items.map_batches(_load_chunks, fn_kwargs={"root": spec.root}, batch_size=1, num_cpus=LOADER_CPUS,
                                   batch_format="default", zero_copy_batch=False)
        writers = _Writers(spec)
        try:
            for bundle in _through_stages(stages, loaded).iter_internal_ref_bundles():
                for ref in bundle.block_refs:
                    yield from writers.put(ref)
            yield from writers.finish()
        finally:
            writers.close()


def _load_chunks(batch: dict[str, Any], root: str) -> dict[str, Any]:
    """Work-list chunks as rows of video groups (see the module docstring)."""
    from curate.output.worklist import read_chunk

    out: dict[str, list[Any]] = {"uri": [], "payload": []}
    for rel in batch["chunk"]:
        groups: list[list[Record]] = [[]]
        size = 0
        for blob in read_chunk(root, rel)["payload"]:
            video = pickle.loads(blob)
            nbytes = video.get("size_bytes") or GROUP_SOURCE_BYTES
            if groups[-1] and (size + nbytes > GROUP_SOURCE_BYTES or len(groups[-1]) >= GROUP_MAX_VIDEOS):
                groups.append([])
                size = 0
            groups[-1].append(video)
            size += nbytes
        for group in filter(None, groups):
            out["uri"].append(group[0]["uri"])
            out["payload"].append(pickle.dumps(group, protocol=5))
    return out


def _through_stages(stages: list[Stage], ds: Any) -> Any:
    import ray
    import ray.data

    groups = group_stages(stages)
    pools = plan_pools(groups, [n["Resources"] for n in ray.nodes() if n.get("Alive")])
    log.info("ray: pools %s", dict(zip((g.name for g in groups), pools)))
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
    return ds


class _WriterActor:
    """A :class:`ShardWriter` in a Ray actor; results go back pickled, so the driver can count what it receives."""

    def __init__(self, spec: WriterSpec) -> None:
        self._writer = ShardWriter(spec)

    def add(self, block: Any) -> bytes:
        """``(outcomes, staged, pieces, buffered)``: ``buffered`` when the block left rows in the buffer (not only pieces)."""
        records = [r for b in block["payload"].to_pylist() for r in pickle.loads(b)]
        return pickle.dumps((*self._writer.add(records), not all(map(is_piece, records))), protocol=5)

    def flush(self) -> bytes:
        staged = self._writer.flush()
        return pickle.dumps(([], [staged] if staged else [], [], False), protocol=5)


@dataclass
class _Sent:
    """A block a writer buffers: kept (as a reference) until a commit covers it, to send again if the writer dies."""

    ref: Any
    reported: bool = False


@dataclass
class _Writer:
    actor: Any
    node: str | None
    sent: list[_Sent] = field(default_factory=list)
    deaths: int = 0


class _Writers:
    """One writer actor per node; blocks go to the writer on their node, results come back as they finish.

    Calls to one actor run in order, so a commit returned by a call covers
    every block sent to that writer up to it. An actor that dies is restarted
    by Ray with an empty buffer: the answers of its calls that finished are
    taken first, then the blocks no commit covers are sent again (their
    outcomes are not reported twice).
    """

    def __init__(self, spec: WriterSpec) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = ray.remote(num_cpus=WRITER_CPUS, max_restarts=MAX_WRITER_RESTARTS, max_task_retries=0)(_WriterActor)
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU")]
        self._writers = [
            _Writer(remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True)).remote(spec), node)
            for node in nodes
        ]
        self._by_node = {w.node: w for w in self._writers}
        self._inflight: dict[Any, tuple[_Writer, _Sent]] = {}
        self._next = 0

    def put(self, ref: Any) -> Iterator[Written]:
        writer = self._place(ref)
        sent = _Sent(ref)
        writer.sent.append(sent)
        self._submit(writer, sent)
        while len(self._inflight) >= IN_FLIGHT_PER_WRITER * len(self._writers):
            yield from self._wait_one()

    def finish(self) -> Iterator[Written]:
        """Wait for every answer, then flush each writer's buffer."""
        import ray

        while self._inflight:
            yield from self._wait_one()
        for writer in self._writers:
            while True:
                try:
                    blob = ray.get(writer.actor.flush.remote())
                except ray.exceptions.RayActorError as e:  # it died holding a buffer: send that again, flush again
                    yield from self._recover(writer, e)
                    while self._inflight:
                        yield from self._wait_one()
                    continue
                outcomes, staged, _, _ = pickle.loads(blob)
                writer.sent.clear()
                yield Written(outcomes, staged, [], len(blob))
                break

    def close(self) -> None:
        import ray

        for writer in self._writers:
            with contextlib.suppress(Exception):  # already gone with a failing run
                ray.kill(writer.actor, no_restart=True)

    def _place(self, ref: Any) -> _Writer:
        """The writer on the node that holds ``ref`` (no transfer), else the next one round-robin."""
        from ray.experimental import get_object_locations

        for node in get_object_locations([ref]).get(ref, {}).get("node_ids") or []:
            if node in self._by_node:
                return self._by_node[node]
        self._next = (self._next + 1) % len(self._writers)
        return self._writers[self._next]

    def _submit(self, writer: _Writer, sent: _Sent) -> None:
        self._inflight[writer.actor.add.remote(sent.ref)] = (writer, sent)

    def _wait_one(self) -> Iterator[Written]:
        import ray

        (done,), _ = ray.wait(list(self._inflight), num_returns=1)
        writer, sent = self._inflight.pop(done)
        try:
            blob = ray.get(done)
        except ray.exceptions.RayActorError as e:
            yield from self._recover(writer, e)
            return
        yield self._accept(writer, sent, blob)

    def _accept(self, writer: _Writer, sent: _Sent, blob: bytes) -> Written:
        outcomes, staged, pieces, buffered = pickle.loads(blob)
        if staged and sent in writer.sent:  # the commit covers this block and every one sent to this writer before it
            del writer.sent[: writer.sent.index(sent) + 1]
        elif not buffered and sent in writer.sent:  # only clip pieces, already in staged files: nothing to send again
            writer.sent.remove(sent)
        reported, sent.reported = sent.reported, True
        return Written([] if reported else outcomes, staged, [] if reported else pieces, len(blob))

    def _recover(self, writer: _Writer, error: Exception) -> Iterator[Written]:
        """Take the answers of ``writer``'s calls that finished before it died, then send what they do not cover."""
        import ray

        for ref, (w, sent) in list(self._inflight.items()):
            if w is writer:
                del self._inflight[ref]
                with contextlib.suppress(ray.exceptions.RayActorError):
                    yield self._accept(writer, sent, ray.get(ref))
        if isinstance(error, ray.exceptions.ActorUnavailableError):
            # still restarting from the death already counted (or a first one Ray is handling):
            # give it a moment; a writer past Ray's max_restarts answers ActorDiedError, which counts
            time.sleep(RESTART_WAIT_S)
        else:
            writer.deaths += 1
        if writer.deaths > MAX_WRITER_RESTARTS:
            raise RuntimeError(f"shard writer on node {writer.node} died {writer.deaths} times; rerun the same command to resume")
        log.warning("shard writer on node %s died; sending its %d uncommitted blocks again", writer.node, len(writer.sent))
        for sent in writer.sent:
            self._submit(writer, sent)
