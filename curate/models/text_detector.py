"""Burnt-in text detection: PP-OCRv4's DBNet detector from the ``rapidocr-onnxruntime`` wheel.

Only detection runs (no recognition): the text-overlay score needs where text
is, not what it says. The ONNX model file ships inside the wheel (about 5 MB,
no download), onnxruntime runs it on the CPU, and the library's own
:class:`~rapidocr_onnxruntime.ch_ppocr_det.utils.DBPostProcess` turns the
probability map into boxes with the thresholds rapidocr ships in its
``config.yaml``. The graph is simplified first (:mod:`curate.models.text_graph`:
exact folds that make it about 1.5x faster). What curate adds over rapidocr's ``TextDetector`` (one
image per call, sized by its shorter side): a fixed input size, so the cost
per frame does not grow with the source, and batches of frames of equal
shape (a clip's samples share one).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from curate.models.text_graph import simplified

STRIDE = 32  # DBNet's input sides must be multiples of this
# A line of burnt-in text (subtitle, caption, slide line, ticker) is longer than it is tall and at most a quarter
# of the frame tall. DBNet also marks blobs of text-like texture (a pixelated face, a printed cup, a bookshelf,
# a grid of thumbnails): one thick, squarish box each. Those are not counted.
MAX_LINE_HEIGHT = 0.25  # a box's shorter side, as a fraction of the frame's height
MIN_LINE_ASPECT = 1.5  # a box's longer side over its shorter side
# Frames whose every 16x16 block differs from an already scored frame's by less than this (mean absolute
# difference, 0..255) reuse its result: static content (slides, talking heads, screencasts) samples the
# same picture many times, while a subtitle or even one word appearing moves its blocks by tens.
SAME_PICTURE_LEVEL = 4.0
SAME_PICTURE_BLOCK = 16
SAME_PICTURE_LOOKBACK = 8  # scored frames a frame is compared with (the latest; repeats are consecutive)


@dataclass(frozen=True)
class FrameText:
    """What the detector found in one frame."""

    area: float  # fraction of the frame covered by the union of the text boxes, 0..1
    boxes: int


def check_installed() -> None:
    """Raise :class:`ConfigError` before any input is read when the detector cannot load.

    ``rapidocr-onnxruntime`` is installed without its dependencies (its metadata
    pulls ``opencv-python``, which would replace the headless OpenCV curate
    uses), so a plain ``pip install curate`` lacks it.
    """
    from curate.config import ConfigError

    missing = [m for m in ("rapidocr_onnxruntime", "onnxruntime", "onnx", "pyclipper", "shapely") if find_spec(m) is None]
    if missing or not model_path().is_file():
        raise ConfigError(
            f"the pipeline's text section needs the PP-OCRv4 text detector, but {', '.join(missing) or model_path()} "
            "is missing; install it with `pip install --no-deps rapidocr-onnxruntime==1.4.4` and "
            "`pip install onnxruntime onnx pyclipper shapely` (`make install` does both), or remove the `text:` section "
            "and `filter.max_text_area` from the pipeline")


def model_path() -> Path:
    """The PP-OCRv4 detection model inside the installed ``rapidocr-onnxruntime`` wheel."""
    spec = find_spec("rapidocr_onnxruntime")
    package = Path(spec.origin).parent if spec and spec.origin else Path("rapidocr_onnxruntime")
    return package / "models" / "ch_PP-OCRv4_det_infer.onnx"


def _rapidocr_det_settings() -> dict[str, Any]:
    """The ``Det`` section of rapidocr's shipped ``config.yaml`` (normalisation and post-process thresholds)."""
    import rapidocr_onnxruntime
    from rapidocr_onnxruntime.utils import read_yaml

    return read_yaml(Path(rapidocr_onnxruntime.__file__).parent / "config.yaml")["Det"]


def input_size(width: int, height: int, size: int) -> tuple[int, int]:
    """The network input ``(w, h)`` for a ``width`` x ``height`` frame: longer side ``size``, aspect kept, sides multiples of 32."""
    scale = size / max(width, height)
    return (max(STRIDE, round(width * scale / STRIDE) * STRIDE), max(STRIDE, round(height * scale / STRIDE) * STRIDE))


class TextDetector:
    """PP-OCRv4 text detection on RGB frames at a fixed input size, batched by frame shape.

    ``size`` is the longer side of the network input in pixels: frames are
    resized to it (up or down), so the cost per frame is the same for every
    source, portrait ones included.
    ``threads`` bounds onnxruntime's intra-op pool (a stage's CPU share);
    ``batch_frames`` is how many frames of one shape share a forward pass.
    """

    def __init__(self, size: int = 512, threads: int = 1, batch_frames: int = 1) -> None:
        import onnxruntime as ort
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess

        settings = _rapidocr_det_settings()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(simplified(model_path()), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._mean = np.array(settings["mean"], dtype=np.float32) * 255.0
        self._std = np.array(settings["std"], dtype=np.float32) * 255.0
        self._post = DBPostProcess(thresh=settings["thresh"], box_thresh=settings["box_thresh"],
                                   max_candidates=settings["max_candidates"], unclip_ratio=settings["unclip_ratio"],
                                   score_mode=settings["score_mode"], use_dilation=settings["use_dilation"])
        self.size, self.batch_frames = size, batch_frames

    def detect(self, frames: list[np.ndarray]) -> list[FrameText]:
        """One :class:`FrameText` per HxWx3 uint8 RGB frame, in order.

        A frame that is the same picture as an earlier one of the call
        (:func:`same_picture`) is not run again: it gets that frame's result.
        """
        out: list[FrameText | None] = [None] * len(frames)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, f in enumerate(frames):
            by_shape.setdefault(f.shape[:2], []).append(i)
        for (h, w), idx in by_shape.items():
            size = input_size(w, h, self.size)
            copies = _copies([frames[i] for i in idx])
            run = [i for i, c in zip(idx, copies) if c is None]
            for start in range(0, len(run), self.batch_frames):
                chunk = run[start : start + self.batch_frames]
                for i, found in zip(chunk, self._batch([frames[i] for i in chunk], size)):
                    out[i] = found
            for i, c in zip(idx, copies):
                if c is not None:
                    out[i] = out[idx[c]]
        return out  # type: ignore[return-value]  # every index was filled

    def _batch(self, frames: list[np.ndarray], size: tuple[int, int]) -> list[FrameText]:
        w, h = size
        down = frames[0].shape[1] > w
        x = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA if down else cv2.INTER_LINEAR) for f in frames])
        x = ((x.astype(np.float32) - self._mean) / self._std).transpose(0, 3, 1, 2)
        probs = self._session.run(None, {self._input: np.ascontiguousarray(x)})[0]  # (N, 1, h, w)
        return [self._boxes(p[None], (h, w)) for p in probs]

    def _boxes(self, prob: np.ndarray, shape: tuple[int, int]) -> FrameText:
        """Boxes of one probability map that are shaped like text lines (:func:`is_line`); the area is their union,
        rasterised at the network's size."""
        boxes, _ = self._post(prob, shape)
        boxes = [b for b in boxes if is_line(b, shape[0])]
        mask = np.zeros(shape, dtype=np.uint8)
        if len(boxes):
            cv2.fillPoly(mask, [b.astype(np.int32) for b in boxes], 1)
        return FrameText(area=float(mask.mean()), boxes=len(boxes))


def is_line(box: np.ndarray, frame_height: int) -> bool:
    """A detected quadrilateral is shaped like a line of text (``MAX_LINE_HEIGHT``, ``MIN_LINE_ASPECT``)."""
    _, (w, h), _ = cv2.minAreaRect(box.astype(np.float32))
    short, long = min(w, h), max(w, h)
    return short <= MAX_LINE_HEIGHT * frame_height and long >= MIN_LINE_ASPECT * short


def same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Two equally sized frames show the same picture: no 16x16 block differs by ``SAME_PICTURE_LEVEL`` or more."""
    h, w = a.shape[:2]
    blocks = (max(1, w // SAME_PICTURE_BLOCK), max(1, h // SAME_PICTURE_BLOCK))
    return float(cv2.resize(cv2.absdiff(a, b), blocks, interpolation=cv2.INTER_AREA).max()) < SAME_PICTURE_LEVEL


def _copies(frames: list[np.ndarray]) -> list[int | None]:
    """Per frame, the position of one of the last scored frames showing the same picture, else None."""
    scored: list[int] = []
    out: list[int | None] = []
    for i, f in enumerate(frames):
        match = next((k for k in reversed(scored[-SAME_PICTURE_LOOKBACK:]) if same_picture(frames[k], f)), None)
        out.append(match)
        if match is None:
            scored.append(i)
    return out
