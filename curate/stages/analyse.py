"""The analysis stage: one streaming decode feeds every per-frame consumer.

Each decoded frame is shrunk once (no swscale on full frames, see
:mod:`curate.media.decode`) and handed to the shot detector, the technical
stats, the optical flow (every ``motion_every``-th frame) and, on a fixed
grid, the frame sampler.

Bounded memory. Per frame only a few floats are kept (times, brightness...).
Pixels are kept only as sample *candidates*: a small RGB frame at
``sample_width`` every ``grid`` frames, with ``grid`` chosen from the header
frame rate so that even a ``clips.min_s`` clip holds two candidates per
sample it needs. Clip boundaries are only known once the detectors have
seen past them, so a :class:`~curate.analysis.clips.ClipPlanner` emits each
clip as soon as it is final: when a shot ends, or when a ``clips.max_s``
window of a long shot is complete and the detectors' ``settled()`` frontier
has passed it. The clip then picks its samples, thumbnail and pHash from the
candidates, and candidates before the next clip's first frame are dropped.
The buffer therefore spans one window plus the detector latency, never the
whole video.

Finished clips keep their sampled frames (for the model stages) until they
leave: in the record at the end for a short source, and for a long one in
analysis pieces (``curate.records``) as soon as they hold ``piece_mb`` of
frames, so the pass holds one piece, not the video. A piece takes ``fps``
and ``decoded.irregular`` as known when it leaves (see :meth:`AnalyseStage._piece`).
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import av
import cv2
import numpy as np

from curate.analysis.borders import MotionWithoutBars, PurityWithoutBars
from curate.analysis.clips import ClipPlanner, ClipSpan, at_rate, shot_ranges
from curate.analysis.motion import MIN_SIDE, MotionStats, flow_size
from curate.analysis.phash import phash
from curate.analysis.purity import purify
from curate.analysis.detectors import build_detector, build_purity
from curate.analysis.shots import Boundary, ShotDetector, merge_boundaries
from curate.analysis.technical import FROZEN_LEVEL, TechnicalStats, sharpness
from curate.config import AnalysisConfig, ClipsConfig, DetectorConfig, ProbeConfig, split_settings
from curate.decisions import duration_rejection, transition_rejection
from curate.media.geometry import display_size, rotated
from curate.media.decode import FALLBACK_FPS, DecodedFrame, Timeline, iter_frames, rotate_image, small_luma, small_rgb
from curate.records import STREAMED, Record, analysis_piece, clip_id
from curate.stage import VideoStage, fail, reject
from curate.stages.batched import gpus_for

# The GPU share an analysis actor asks for where TransNetV2 runs in its pass: a token (one
# 100-frame window is ~4 ms on an H200, bench/bench_split_gpu.py), so Ray's pool planning
# sizes the pool by its CPUs and places it on the GPU nodes (LIGHT_GPU_SHARE, curate/runners/pools.py).
GPU_SHARE = 0.01

MAX_GRID = 8  # sample candidates at least every 8th frame
THUMBNAIL_JPEG_QUALITY = 85


class FrameSampler:
    """Sample candidates on a fixed frame grid, dropped once no clip can use them.

    With ``text_side`` (the text detector's input, its longer side) it also
    keeps text candidates at that size, on every other grid point (a clip
    of ``clips.min_s`` still holds one per sample), shrunk once from the
    decoded picture: a 256 px sample scaled back up loses small text that
    the detector finds at its own size.
    """

    def __init__(self, grid: int, width: int, rotation: int, text_side: int | None = None):
        self.grid, self.width, self.rotation, self.text_side = grid, width, rotation, text_side
        self._buf: deque[tuple[int, np.ndarray]] = deque()
        self._text: deque[tuple[int, np.ndarray]] = deque()
        self._latest: tuple[int, np.ndarray] | None = None  # survives drops: a fallback
        self._latest_text: tuple[int, np.ndarray] | None = None

    def consume(self, df: DecodedFrame) -> None:
        if df.index % self.grid == 0:
            self._latest = (df.index, self._small(df.frame, self.width))
            self._buf.append(self._latest)
            if self.text_side and df.index % (2 * self.grid) == 0:
                disp_w, disp_h = rotated(df.frame.width, df.frame.height, self.rotation)
                width = round(self.text_side * disp_w / max(disp_w, disp_h))
                self._latest_text = (df.index, self._small(df.frame, width))
                self._text.append(self._latest_text)

    def _small(self, f: av.VideoFrame, width: int) -> np.ndarray:
        """RGB at ``width`` displayed pixels wide (a quarter turn makes it the coded height), displayed orientation."""
        disp_w = rotated(f.width, f.height, self.rotation)[0]
        coded_w = width if disp_w == f.width else round(width * f.width / disp_w)
        return rotate_image(small_rgb(f, coded_w), self.rotation)

    def pick(self, start: int, end: int, n: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray] | None]:
        """``n`` candidates spread evenly over ``start .. end-1``, the one nearest the middle, and with
        ``text_side`` the ``n`` text candidates nearest the same points.

        A clip without a candidate inside (only when the header frame rate was
        far too high) falls back to the nearest candidates still held.
        """
        targets = start + (np.arange(n) + 0.5) * (end - start) / n
        picks = _nearest(self._buf, self._latest, start, end, targets)
        middle = _nearest(self._buf, self._latest, start, end, np.array([(start + end - 1) / 2]))[0]
        text = _nearest(self._text, self._latest_text, start, end, targets) if self.text_side else None
        return picks, middle, text

    def drop_before(self, index: int) -> None:
        for buf in (self._buf, self._text):
            while buf and buf[0][0] < index:
                buf.popleft()

    def __len__(self) -> int:
        return len(self._buf)


def _nearest(buf: deque, latest: tuple[int, np.ndarray] | None, start: int, end: int, targets: np.ndarray) -> list[np.ndarray]:
    """Per target frame index, the candidate of ``start .. end-1`` nearest it (else of all held, else the latest)."""
    inside = [c for c in buf if start <= c[0] < end] or list(buf) or [latest]
    idx = np.array([c[0] for c in inside])
    return [inside[int(np.abs(idx - t).argmin())][1] for t in targets]


@dataclass
class _Pass:
    """Everything one decode pass accumulates."""

    detector: ShotDetector
    planner: ClipPlanner
    tech: TechnicalStats
    motion: MotionWithoutBars
    sampler: FrameSampler
    starts: list[float]
    ends: list[float]
    boundaries: list[Boundary]
    clips: list[Record]
    split_key: str
    purity: PurityWithoutBars
    transitions: list[dict[str, Any]] = field(default_factory=list)
    held: int = 0  # bytes of sampled frames the clips in ``clips`` hold (``_frame_bytes``)
    pieces: int = 0  # analysis pieces sent
    seen_dropped: int = 0  # proposals the detector dropped that are already in ``transitions``
    coded: tuple[int, int] | None = None  # coded size of the first frame
    size: tuple[int, int] | None = None  # small frame size, fixed by the first frame
    key: np.ndarray | None = None  # 48 px luma of the last frame, to spot repeats
    small: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # last (rgb, grey, bgr)
    moved: bool = True  # a frame changed since the last optical-flow frame


# Clip keys the analysis writes (the columns of ``schemas/clip`` it measures, see ``_clip``).
CLIP_KEYS = (
    "clip_id", "video_id", "source_uri", "shot_index", "window_index", "start_frame", "end_frame", "num_frames",
    "start_s", "end_s", "duration_s", "width", "height", "fps", "source_fps", "source_width", "source_height",
    "source_rotation", "source_codec", "source_pix_fmt", "caption", "caption_source", "motion_score", "camera_motion",
    "camera_pan", "camera_tilt", "camera_zoom", "brightness", "contrast", "black_fraction", "frozen_fraction",
    "sharpness", "phash", "thumbnail", "input_meta", "_frames", "_text_frames",
)


@dataclass
class AnalyseStage(VideoStage):
    """Decode each source once: shots, clip spans, motion, quality, samples (see module docstring).

    Its sections: ``detector``, ``clips`` and ``analysis`` (they decide the
    clips), and ``probe`` for ``min_duration_s`` (judged on decoded frames).
    """

    name: ClassVar[str] = "analyse"
    reads: ClassVar[tuple[str, ...]] = ("uri", "video_id", "probe")
    writes: ClassVar[tuple[str, ...]] = ("decoded", "boundaries", "shots", "transitions", "shots_too_short", "clips",
                                         *(f"clips.{k}" for k in CLIP_KEYS), "clips.reject_reasons")
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    clips: ClipsConfig = field(default_factory=ClipsConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    text_side: int | None = None  # ``text.size`` when the pipeline scores text: ``_text_frames`` are sampled at it
    cpus: float = 1.0
    piece_mb: float = 64.0  # sampled frames (MiB) finished clips hold before they leave as an analysis piece (``resources.analyse.piece_mb``)

    @classmethod
    def from_config(cls, config: Any) -> "AnalyseStage":
        return cls(detector=config.detector, clips=config.clips, analysis=config.analysis, probe=config.probe,
                   text_side=config.text.size if config.text is not None else None, timeout_s=config.limits.video_timeout_s,
                   gpus=gpus_for(GPU_SHARE, config.detector.device) if config.detector.uses_transnet else 0.0)

    def setup(self) -> None:
        """Import and build the detector once (TransNetV2 loads its weights here); OpenCV on one thread.

        The pass's OpenCV calls work on frames a few hundred pixels wide, where
        OpenCV's thread pool costs more CPU (waking and spinning threads) than
        it saves, and the decoder's threads already keep the cores busy: on 2
        cores the pass ran 2-5 % faster on one (bench/README.md, split).
        """
        cv2.setNumThreads(1)
        build_detector(self.detector.kind, dict(self.detector.params), self.detector.fades, FALLBACK_FPS, self.detector.device)

    def stream_video(self, video: Record) -> Iterator[Record]:
        """Analysis pieces of a long source as its finished clips' sampled frames reach ``piece_mb``, then its record."""
        yield from self._run(video, self.piece_mb * 2**20)

    def process_video(self, video: Record) -> Record:
        """The record with every clip in it, however long the source (what a short source gets either way)."""
        *_, out = self._run(video, math.inf)
        return out

    def _run(self, video: Record, piece_bytes: float) -> Iterator[Record]:
        probe = video.get("probe") or {}
        rotation = int(probe.get("rotation") or 0)
        fps = float(probe.get("fps") or FALLBACK_FPS)
        a = self.analysis
        grid = max(1, min(MAX_GRID, int(self.clips.min_s * fps / (2 * a.sample_frames))))
        st = _Pass(
            detector=build_detector(self.detector.kind, dict(self.detector.params), self.detector.fades, fps, self.detector.device),
            planner=ClipPlanner(at_rate(self.clips, fps)),
            tech=TechnicalStats(),
            motion=MotionWithoutBars(MotionStats(a.motion_width, a.motion_every)),
            sampler=FrameSampler(grid, a.sample_width, rotation, self.text_side),
            starts=[], ends=[], boundaries=[], clips=[],
            split_key=json.dumps(split_settings(self.detector, self.clips, self.analysis), sort_keys=True),
            purity=build_purity(self.clips.purity, fps),
        )
        errors: list[str] = []
        warning = None
        timeline: list[Timeline] = []
        frames = iter_frames(video["uri"], errors=errors, analysis=True, timeline=timeline)
        while True:
            try:
                df = next(frames)
            except StopIteration:
                break
            except Exception as e:  # noqa: BLE001 - any decode error: a truncated file keeps what decoded
                if not st.starts:
                    yield fail(video, f"analyse: {type(e).__name__}", f"analyse: nothing decodes: {type(e).__name__}: {e}")
                    return
                warning = f"decoding stopped after {len(st.starts)} frames: {type(e).__name__}: {e}"
                break
            self._consume(st, df, video, rotation)
            # never before the decode is past min_duration_s: a video whose pieces left is not rejected as too short
            if st.held >= piece_bytes and st.ends[-1] - st.starts[0] >= max(self.probe.min_duration_s, 1e-6):
                yield self._piece(st, video, timeline[0])
        if not st.starts:
            yield fail(video, "analyse: no video frames decoded")
            return
        last = len(st.starts) - 1
        self._found(st, st.detector.post_process(last))
        self._emit(st, st.planner.finish(st.starts, st.ends), video, rotation)
        yield self._finish(video, st, warning, errors, timeline[0])

    @staticmethod
    def _piece(st: _Pass, video: Record, timeline: Timeline) -> Record:
        """The finished clips held so far as an analysis piece, with the two values that are otherwise only known at the end.

        ``fps``: the decoded rate so far (frames / span), which for a constant
        rate is the video's; ``irregular``: the timeline's verdict so far, which
        covers every frame of these clips (it never turns back to regular), so
        the encode stage may seek for them exactly when it is ``None``.
        """
        clips, st.clips, st.held = st.clips, [], 0
        rate = len(st.starts) / (st.ends[-1] - st.starts[0])
        for c in clips:
            c["fps"] = c["source_fps"] = rate
        st.pieces += 1
        return analysis_piece(video, clips, {"fps": rate, "irregular": timeline.irregular})

    def _consume(self, st: _Pass, df: DecodedFrame, video: Record, rotation: int) -> None:
        i = len(st.starts)  # == df.index: iter_frames without start_s counts from 0
        st.starts.append(df.time_s)
        st.ends.append(df.end_s)
        changed = self._shrink(st, df)
        _, gray, bgr = st.small
        st.tech.consume(gray, frozen=i > 0 and not changed)
        st.moved |= changed
        if st.motion.wants(i):
            st.motion.consume(i, self._motion_luma(gray, df, rotation), st.moved)
            st.moved = False
        st.sampler.consume(df)
        st.purity.consume(i, bgr)
        self._found(st, st.detector.process_frame(i, bgr))
        frontier = min(st.detector.settled(), i + 1)
        if frontier > st.planner.keep_from:
            self._emit(st, st.planner.advance(frontier, st.starts, st.ends), video, rotation)

    def _shrink(self, st: _Pass, df: DecodedFrame) -> bool:
        """Set ``st.small`` to (rgb, grey, bgr) at ``analysis.width``; False if the frame repeats the last.

        A repeat (48 px luma within ``FROZEN_LEVEL`` of the previous frame's:
        still shots, slides, frame-rate conversion) reuses the previous small
        frames, which skips the colour conversion and the optical flow.
        """
        if st.coded is None:
            st.coded = (df.frame.width, df.frame.height)
        key = small_luma(df.frame, 48)
        repeat = st.key is not None and key.shape == st.key.shape and cv2.norm(key, st.key, cv2.NORM_L1) < FROZEN_LEVEL * key.size
        st.key = key
        if repeat:
            return False
        rgb = small_rgb(df.frame, self.analysis.width)
        if st.size is None:
            st.size = (rgb.shape[1], rgb.shape[0])
        elif (rgb.shape[1], rgb.shape[0]) != st.size:  # resolution changed mid-stream
            rgb = cv2.resize(rgb, st.size, interpolation=cv2.INTER_AREA)
        st.small = (rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        return True

    def _motion_luma(self, gray: np.ndarray, df: DecodedFrame, rotation: int) -> np.ndarray:
        """The grey frame for optical flow, displayed orientation.

        Normally the analysis frame; for very wide or tall sources (1280x96 is
        192x14 at the analysis width) the luma is cut from the decoded frame
        at the size the flow needs instead, so the flow never sees upscaled
        slivers (see :func:`~curate.analysis.motion.flow_size`).
        """
        g = rotate_image(gray, rotation)
        if min(g.shape) >= MIN_SIDE:  # every ordinary aspect (portrait too): as always
            return g
        need_w, need_h = flow_size(g.shape[1], g.shape[0], self.analysis.motion_width)
        return rotate_image(small_luma(df.frame, rotated(need_w, need_h, rotation)[0]), rotation)

    @staticmethod
    def _found(st: _Pass, boundaries: list[Boundary]) -> None:
        st.boundaries += boundaries
        st.planner.add(boundaries)
        for b in boundaries:
            _transition(st, b, "cut" if b.is_cut else "gradual")
        dropped = getattr(st.detector, "dropped", [])  # the combined detector's rejected proposals: (why, boundary)
        for why, b in dropped[st.seen_dropped:]:
            if why == "flash":
                _transition(st, b, "flash_suppressed")
        st.seen_dropped = len(dropped)

    def _emit(self, st: _Pass, spans: list[ClipSpan], video: Record, rotation: int) -> None:
        for span in spans:
            clips = self._purified(st, span, video, rotation)
            st.clips += clips
            st.held += sum(map(_frame_bytes, clips))
        if spans:
            keep = st.planner.keep_from
            st.sampler.drop_before(keep)
            st.motion.drop_before(keep)
            st.purity.drop_before(keep)

    def _purified(self, st: _Pass, span: ClipSpan, video: Record, rotation: int) -> list[Record]:
        """The clip, or what is left of it once the purity check cut out transitions the detector missed.

        Each left-over piece of at least ``clips.min_s`` is a clip (keeping the
        span's shot and window index); with none, the whole span is one
        rejected clip whose reason names the frames (``contains_transition``).
        """
        if not self.clips.purity.enabled:
            return [self._clip(st, span, video, rotation)]
        kept, found = purify(st.purity, span.start, span.end, st.planner.cfg.trim_frames,
                             lambda a, b: st.ends[b - 1] - st.starts[a] >= self.clips.min_s - 1e-6)
        for f in found:
            if not f.edge:  # a judged transition joins the shot list; an edge trim is only a trim
                st.boundaries.append(f.boundary)
                _transition(st, f.boundary, "cut" if f.boundary.is_cut else "gradual")
        if kept:
            return [self._clip(st, ClipSpan(span.shot_index, span.window_index, a, b), video, rotation) for a, b in kept]
        detail = "; ".join(f.describe() for f in found) + f"; nothing of at least clips.min_s {self.clips.min_s:g} s left"
        return [{**self._clip(st, span, video, rotation), "reject_reasons": [transition_rejection(detail)]}]

    def _clip(self, st: _Pass, span: ClipSpan, video: Record, rotation: int) -> Record:
        a = self.analysis
        probe = video.get("probe") or {}
        frames, middle, text_frames = st.sampler.pick(span.start, span.end, a.sample_frames)
        start_s, end_s = st.starts[span.start], st.ends[span.end - 1]
        w, h = st.coded
        disp_w, disp_h = display_size(w, h, rotation, probe.get("sar"))  # what the encode stage stores, before max_height
        thumb_h = max(1, round(middle.shape[0] * a.thumbnail_width / middle.shape[1]))
        thumb = cv2.resize(middle, (a.thumbnail_width, thumb_h), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_JPEG_QUALITY])
        return {
            "clip_id": clip_id(video["video_id"], st.split_key, span.start, span.end),
            "video_id": video["video_id"],
            "source_uri": video["uri"],
            "shot_index": span.shot_index,
            "window_index": span.window_index,
            "start_frame": span.start,
            "end_frame": span.end,
            "num_frames": span.end - span.start,
            "start_s": start_s,
            "end_s": end_s,
            "duration_s": end_s - start_s,
            "width": disp_w,
            "height": disp_h,
            "source_width": w,
            "source_height": h,
            "source_rotation": rotation,
            "source_codec": probe.get("codec"),
            "source_pix_fmt": probe.get("pix_fmt"),
            "caption": video.get("caption"),
            "caption_source": video.get("caption_source"),
            **st.motion.clip(span.start, span.end),
            **st.tech.clip(span.start, span.end),
            "sharpness": float(np.mean([sharpness(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)) for f in frames])),
            "phash": phash(middle),
            "thumbnail": jpeg.tobytes() if ok else b"",
            "input_meta": video.get("input_meta"),
            "reject_reasons": [],  # the purity check's ``contains_transition``; later stages add theirs
            "_frames": frames,
            **({"_text_frames": text_frames} if text_frames is not None else {}),
        }

    def _finish(self, video: Record, st: _Pass, warning: str | None, errors: list[str], timeline: Timeline) -> Record:
        n = len(st.starts)
        duration = st.ends[-1] - st.starts[0]
        fps = n / duration if duration > 0 else float((video.get("probe") or {}).get("fps") or 0.0)
        out = dict(video)
        # ``irregular``: why seeking cannot find a frame by its time (the encode stage then cuts by index)
        out["decoded"] = {"num_frames": n, "duration_s": duration, "fps": fps, "irregular": timeline.irregular}
        if warning or errors:
            out["decode_warning"] = warning or f"{len(errors)} undecodable packet(s) skipped: {errors[0]}"
        merged = merge_boundaries(st.boundaries, st.planner.cfg.trim_frames)
        # the shot list (videos.parquet), also for a video rejected as too short: it was analysed
        out["shots"] = [{"start_frame": a, "end_frame": b} for a, b, _, _ in shot_ranges(merged, n)]
        out["transitions"] = sorted(st.transitions, key=lambda t: (t["start_frame"], t["end_frame"], t["kind"]))
        why = duration_rejection(duration, self.probe)
        if why is not None:
            return reject(out, why)
        for c in st.clips:
            c["fps"] = c["source_fps"] = fps
        out["clips"] = st.clips
        if st.pieces:  # the writer waits for them; the rows the video's own clips are then stored as wait with them
            out[STREAMED] = {"analysed": st.pieces, "pieces": 0}
        out["boundaries"] = [[b.start, b.end] for b in merged]
        out["shots_too_short"] = st.planner.too_short
        return out


def _frame_bytes(clip: Record) -> int:
    """Bytes of the sampled frames ``clip`` holds (``_frames``, and ``_text_frames`` when text is scored), each array once."""
    arrays = {id(f): f for f in [*clip["_frames"], *clip.get("_text_frames", ())]}
    return sum(f.nbytes for f in arrays.values())


def _transition(st: _Pass, b: Boundary, kind: str) -> None:
    """Note a transition for the video's shot list; its score is how much the picture changes across it."""
    st.transitions.append({"start_frame": b.start, "end_frame": b.end, "kind": kind, "score": st.purity.change(b)})
