"""A video stage that runs its model once over the clips of a whole batch of videos.

Model stages gain most from large forward passes, so they see every pending
video of a batch at once. If the batched call fails, the batch is redone one
video at a time so the error lands on the video that caused it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from curate.records import PENDING, Record, passes
from curate.stage import VideoStage

log = logging.getLogger(__name__)


@dataclass
class BatchedVideoStage(VideoStage):
    """Subclasses implement :meth:`process_videos` over pending videos only."""

    def process_videos(self, videos: list[Record]) -> list[Record]:
        raise NotImplementedError

    def process_video(self, video: Record) -> Record:
        return self.process_videos([video])[0]

    def process_iter(self, batch: list[Record]) -> Iterator[Record]:
        yield from self.process(batch)

    def process(self, batch: list[Record]) -> list[Record]:
        # analysis pieces are scored like videos (with them, when a batch holds both)
        pending = [i for i, v in enumerate(batch) if v.get("status", PENDING) == PENDING and not passes(v)]
        if len(pending) < 2 or self.timeout_s is not None:
            return list(super().process_iter(batch))
        t0 = time.perf_counter()
        try:
            outs = self.process_videos([batch[i] for i in pending])
        except Exception as e:  # noqa: BLE001 - retried per video, where the error is recorded
            log.warning("%s: batched call failed (%s: %s); retrying video by video", self.name, type(e).__name__, e)
            return list(super().process_iter(batch))
        share = (time.perf_counter() - t0) / len(pending)
        result = list(batch)
        for i, out in zip(pending, outs):
            timings = dict(out.get("timings") or {})
            timings[self.name] = timings.get(self.name, 0.0) + share
            result[i] = dict(out, timings=timings)
        return result

    def __getstate__(self) -> dict:
        """Private attributes hold loaded models; a worker rebuilds them in ``setup()``."""
        return {k: (None if k.startswith("_") else v) for k, v in super().__getstate__().items()}


@dataclass
class ClipModelStage(BatchedVideoStage):
    """A batched stage that runs the pipeline's CLIP model (loaded once per worker)."""

    # Share of a GPU the stage asks Ray for where the cluster has GPUs: fractions, so
    # the CLIP stages and a captioner can share one GPU.
    gpu_share: ClassVar[float] = 0.0
    clip: Any = None  # ClipModelConfig; typed loosely so this module imports no model code
    models: Any = None  # ModelsConfig
    batch_size: int = 8
    gpu_batch_size: int | None = 32  # a GPU forward pass takes the sampled frames of 32 videos at little more cost
    _model: Any = field(default=None, init=False, repr=False, compare=False)

    def setup(self) -> None:
        from curate.models.clip import shared_clip
        from curate.models.settings import ClipModelConfig, ModelsConfig

        self._model = shared_clip(self.clip or ClipModelConfig(), self.models or ModelsConfig())


def gpus_for(share: float, device: str) -> float:
    """The GPU fraction a model stage declares: ``share`` unless its model is pinned to the CPU.

    Declared whatever the driver has: the GPUs are on the cluster's nodes, and
    the Ray runner's pool planning gives them only where the cluster has some.
    """
    return 0.0 if device == "cpu" else share


def clips_of(videos: list[Record]) -> list[Record]:
    """Every clip dict of ``videos``, in order (the same objects, for in-place updates)."""
    return [c for v in videos for c in v.get("clips") or []]


def copy_clips(videos: list[Record]) -> list[Record]:
    """Shallow copies of ``videos`` and their clips, so a stage never mutates its input."""
    return [dict(v, clips=[dict(c) for c in v.get("clips") or []]) for v in videos]
