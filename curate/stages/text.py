"""Text-overlay score per clip from the frames the decode pass already sampled.

Burnt-in subtitles, slides, tickers and title cards teach a video generator
to paint garbled letters; this stage measures how much of each sampled frame
a text detector covers (:mod:`curate.models.text_detector`), so the filter
(``filter.max_text_area``) and ``curate refilter`` can drop such clips. It
decodes nothing: the analysis pass samples each clip's ``_text_frames`` at
the detector's input size (``text.size``) beside the scorers' ``_frames``,
and this stage drops them once scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from curate.config import TextConfig
from curate.models.text_detector import TextDetector
from curate.records import Record
from curate.stages.batched import BatchedVideoStage, clips_of, copy_clips


@dataclass
class TextStage(BatchedVideoStage):
    """Writes ``text_area_max``/``text_area_mean`` (fraction of frame area) and ``text_boxes`` (most boxes in one frame).

    Frames of every clip of a batch go through the detector together. A clip
    without sampled frames gets nulls.
    """

    name: ClassVar[str] = "text"
    reads: ClassVar[tuple[str, ...]] = ("clips", "clips._text_frames")
    writes: ClassVar[tuple[str, ...]] = ("clips.text_area_max", "clips.text_area_mean", "clips.text_boxes")
    text: TextConfig = field(default_factory=TextConfig)
    # Below the Ray runner's cheap-stage line, so it runs in the analysis pool's actors: its input (3 frames a
    # clip at text.size, ~0.75 MB) then never crosses the object store, only three numbers a clip leave, and
    # the text work scales with the analysis actors it is a fixed share of. onnxruntime gets one thread.
    cpus: float = 0.25
    # One video per batch on the CPU: the frames of its clips already batch (``text.batch_frames``), and a
    # pool that waits for four videos scores the last ones only after the analysis pass ends (a serial tail).
    batch_size: int = 1
    _detector: TextDetector | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: Any) -> "TextStage | None":
        return None if config.text is None else cls(text=config.text)

    def setup(self) -> None:
        """Load the ONNX model once per worker, with onnxruntime threads to match the stage's CPUs (at least one)."""
        self._detector = TextDetector(self.text.size, threads=max(1, math.floor(self.cpus)), batch_frames=self.text.batch_frames)

    def teardown(self) -> None:
        self._detector = None

    def process_videos(self, videos: list[Record]) -> list[Record]:
        assert self._detector is not None, "setup() not called"
        out = copy_clips(videos)
        todo = [c for c in clips_of(out) if c.get("_text_frames")]
        found = self._detector.detect([f for c in todo for f in c["_text_frames"]])
        start = 0
        for c in todo:
            mine = found[start : start + len(c["_text_frames"])]
            start += len(c["_text_frames"])
            areas = np.array([t.area for t in mine], dtype=np.float64)
            c["text_area_max"] = float(areas.max())
            c["text_area_mean"] = float(areas.mean())
            c["text_boxes"] = max(t.boxes for t in mine)
        for c in clips_of(out):
            if not c.pop("_text_frames", None):
                c.update(text_area_max=None, text_area_mean=None, text_boxes=None)
        return out
