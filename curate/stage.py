"""The stage abstraction: one small class per step, unaware of Ray.

Records flowing between stages are plain dicts, one per *source video*
(see ``curate/records.py``); its clips travel nested under ``"clips"``, except
those a stage sends ahead as clip pieces (the analysis stage for a long
source's sampled frames, the encode stage for its bytes), which the writers
hold until the video's record commits. Keys
that start with ``_`` are transient (e.g. sampled frames) and are never written.

Lifecycle. A stage author overrides three verbs: :meth:`Stage.setup` (load
models once per worker), :meth:`Stage.process` (a batch of records) and
:meth:`Stage.teardown` (release them). Runners never call ``setup`` or
``teardown`` directly but :meth:`Stage.start` and :meth:`Stage.stop`, which
run them here or, for a guarded :class:`VideoStage`, in its child process.
Both runners call ``start`` once per worker before the first batch and
``stop`` once after the last, also when the run fails.

Contract. :meth:`Stage.inputs` and :meth:`Stage.outputs` name the record
keys a stage reads and writes (``"probe"``; clip keys as ``"clips.motion_score"``);
``tests/test_structure.py`` walks the shipped pipelines and checks every key
a stage reads was written before it.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from curate.records import FAILED, PARTS, PENDING, REJECTED, Reason, Record, is_piece, passes


@dataclass
class Stage:
    """A step of a pipeline.

    Subclasses set ``name``, implement :meth:`process` and declare their keys
    (``reads``/``writes``, or :meth:`inputs`/:meth:`outputs` when they depend
    on the config). Resources are plain fields whose defaults each stage class
    declares (the one place they are set; ``resources:`` in a pipeline file
    overrides them); runners translate them (the Ray runner into actor
    pools sized by :func:`curate.runners.pools.plan_pools`, the local runner ignores them).
    """

    name: ClassVar[str] = "stage"
    # Record keys read and written; clip keys as "clips.<key>" (see curate/records.py).
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    cpus: float = 1.0
    gpus: float = 0.0  # GPU fraction per actor wherever the cluster has GPUs (curate/runners/pools.py)
    batch_size: int = 1  # videos per batch
    gpu_batch_size: int | None = None  # videos per batch in a GPU pool (None: batch_size)

    @classmethod
    def from_config(cls, config: Any) -> Stage | None:
        """This stage built from its own section(s) of a ``PipelineConfig``; ``None`` when the pipeline has none."""
        return cls()

    def setup(self) -> None:
        """Load models/codecs once per worker, before the first batch."""

    def process(self, batch: list[Record]) -> list[Record]:
        raise NotImplementedError

    def process_iter(self, batch: list[Record]) -> Iterator[Record]:
        """:meth:`process` as a stream: a stage that sends clip pieces ahead (``records.PIECE``) yields them as made."""
        yield from self.process(batch)

    def teardown(self) -> None:
        """Release what :meth:`setup` loaded, once per worker, after the last batch."""

    def start(self) -> None:
        """What a runner calls once per worker before the first batch (runs :meth:`setup`)."""
        self.setup()

    def stop(self) -> None:
        """What a runner calls once per worker after the last batch, also on failure (runs :meth:`teardown`)."""
        self.teardown()

    def inputs(self) -> tuple[str, ...]:
        """Record keys this stage reads (``"clips.<key>"`` for clip keys)."""
        return self.reads

    def outputs(self) -> tuple[str, ...]:
        """Record keys this stage writes (``"clips.<key>"`` for clip keys)."""
        return self.writes


@dataclass
class VideoStage(Stage):
    """A stage that maps each pending video record on its own.

    Records that are already ``rejected``/``failed`` pass through untouched.
    An exception becomes ``status=FAILED`` with the stage and error type as
    the reason key, so one bad video never stops the run. With ``timeout_s`` set the
    work runs in a supervised child process (:mod:`curate.guard`) that is
    killed when it overruns, which also catches hangs and crashes inside
    native decoders.
    """

    timeout_s: float | None = None
    _guard: Any = field(default=None, init=False, repr=False, compare=False)

    def process_video(self, video: Record) -> Record:
        raise NotImplementedError

    def stream_video(self, video: Record) -> Iterator[Record]:
        """Clip pieces of ``video`` (``records.PIECE``), if the stage streams any, then its record; default :meth:`process_video`."""
        yield self.process_video(video)

    def process(self, batch: list[Record]) -> list[Record]:
        return list(self.process_iter(batch))

    def process_iter(self, batch: list[Record]) -> Iterator[Record]:
        for video in batch:
            yield from self._one(video)

    def start(self) -> None:
        """Set up where the work will run: here, or (guarded) in the child process.

        A guarded stage never loads its models in the parent, which would only
        hold a second copy; starting the child now also keeps its start-up off
        the first video's clock.
        """
        if self.timeout_s is None:
            self.setup()
            return
        from curate.guard import Guard

        self._guard = Guard(self)
        self._guard.start()

    def stop(self) -> None:
        """Tear down where the work ran: here, or in the guard's child (which then exits)."""
        if self._guard is not None:
            self._guard.close()
            self._guard = None
        elif self.timeout_s is None:
            self.teardown()

    def _one(self, video: Record) -> Iterator[Record]:
        """Pieces as they come, then the record with this stage's time added; closed pieces and finished videos pass.

        An analysis piece (``records.OPEN``) is worked on like a video and
        gets its own timings, which its commit adds to the video's. Only time
        spent in the stage counts, not the time a caller spends on what it
        yielded (the local runner takes a piece through every later stage at once).
        """
        if passes(video) or video.get("status", PENDING) != PENDING:
            yield video
            return
        outs = self.stream_captured(video) if self.timeout_s is None else self._guarded(video)
        spent = 0.0
        while True:
            t0 = time.perf_counter()
            out = next(outs, None)
            spent += time.perf_counter() - t0
            if out is None:
                return
            if _carries(video, out):  # the last: the video's record, or the piece worked on
                timings = dict(out.get("timings") or {})
                timings[self.name] = timings.get(self.name, 0.0) + spent
                out["timings"] = timings
            yield out
            del out  # not held while the next piece is made: a long source holds one piece at a time

    def stream_captured(self, video: Record) -> Iterator[Record]:
        """:meth:`stream_video` with any exception recorded on the record as ``failed`` (pieces sent before it are dropped by the writer)."""
        try:
            yield from self.stream_video(video)
        except Exception as e:  # noqa: BLE001 - recorded on the row, the run goes on
            key = f"{self.name}: {type(e).__name__}"
            out = fail(video, key, f"{key}: {e}")
            out["traceback"] = traceback.format_exc(limit=8)
            yield out

    def _guarded(self, video: Record) -> Iterator[Record]:
        from curate.guard import Guard, GuardError

        if self._guard is None:
            self._guard = Guard(self)
        try:
            yield from self._guard.stream(video, float(self.timeout_s or 0))
        except GuardError as e:
            yield fail(video, f"{self.name}: {e.key}", f"{self.name}: {e}")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_guard"] = None
        return state


def _carries(video: Record, out: Record) -> bool:
    """Whether ``out`` is what ``video`` became (its record, or the analysis piece itself), not a piece sent ahead of it."""
    return PARTS in out if is_piece(video) else not is_piece(out)


def run_stages(stages: list[Stage], batch: list[Record]) -> Iterator[Record]:
    """``batch`` through ``stages`` in order, as a stream: a clip piece leaves as soon as the stages are done with it.

    A piece a stage makes goes on through the later stages at once, on its
    own: an analysis piece through every stage up to encode as a video would,
    a closed one untouched except by the latents stage. A video's pieces
    therefore always come out before its record.
    """
    if not stages:
        yield from batch
        return
    rest: list[Record] = []
    for out in stages[0].process_iter(batch):
        if is_piece(out):
            yield from run_stages(stages[1:], [out])
        else:
            rest.append(out)
        del out  # a piece is done with here: not held while the stage makes the next
    yield from run_stages(stages[1:], rest)


def fail(video: Record, key: str, detail: str | None = None) -> Record:
    """Mark a video failed (it could not be read) and return it.

    ``key`` is what the funnel counts (``analyse: VideoOpenFailure``: stage and
    error type); ``detail`` the full sentence, file names and all.
    """
    out = dict(video)
    out.update(status=FAILED, reason_key=key, reason=detail if detail is not None else key)
    return out


def reject(video: Record, why: Reason) -> Record:
    """Mark a video rejected (readable but does not qualify, ``why`` from :mod:`curate.decisions`) and return it."""
    out = dict(video)
    out.update(status=REJECTED, reason_key=why["key"], reason=why["detail"])
    return out
