"""Synthetic videos with known shot boundaries, for tests, benchmarks and the demo.

Real encoded files (PyAV, libx264 by default) so tests exercise the same
demux/decode paths as production, kept small (<= 320x240, a few seconds).

Each shot shows its own textured pattern (blurred noise + edges, its own tint
and seed), so hard cuts are unambiguous and sharpness/motion are non-trivial.
Shot kinds (camera-motion names, matching the ``camera_motion`` labels):

    "moving"     content drifts right and down (2, 1 px/frame)
    "pan_left"   camera pans left  -> content moves right (+x), 3 px/frame
    "pan_right"  camera pans right -> content moves left  (-x)
    "tilt_up"    camera tilts up   -> content moves down  (+y)
    "tilt_down"  camera tilts down -> content moves up    (-y)
    "zoom_in" / "zoom_out"   content grows / shrinks about the centre
    "static"     one still image (no motion, frozen frames)
    "smooth"     soft colour blobs without fine detail, drifting like "moving"
                 (resamplers agree on it: for colour/geometry checks)
    "black"      black frames

Gradual transitions are list items of their own between two shots:
``("dissolve", n)`` crossfades over n frames, ``("fade", n)`` fades through
black over n frames; both shots keep moving during the transition.

Example::

    truth = make_video(p, [(40, "pan_left"), ("dissolve", 10), (40, "static"), (30, "black")])
    truth        # [90]        hard cuts: first frame of each new shot
    truth.transitions  # [(40, 49)]  inclusive frame spans of gradual transitions
    truth.num_frames   # 120
"""

from __future__ import annotations

import colorsys
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Sequence, Union

import av
import cv2
import numpy as np

Shot = Union[tuple[int, str], tuple[str, int]]

_SPEED = 3  # px/frame for pans and tilts
_MOTION = {
    "moving": (2, 1),
    "smooth": (2, 1),
    "pan_left": (_SPEED, 0),
    "pan_right": (-_SPEED, 0),
    "tilt_up": (0, _SPEED),
    "tilt_down": (0, -_SPEED),
}
_ZOOM = {"zoom_in": 1.012, "zoom_out": 1 / 1.012}  # scale factor per frame


class Truth(list):
    """Hard-cut frame indices (a plain list) plus the rest of the ground truth."""

    def __init__(self, cuts: Sequence[int], transitions: Sequence[tuple[int, int]], num_frames: int, fps: float):
        super().__init__(cuts)
        self.transitions = list(transitions)
        self.num_frames = num_frames
        self.fps = fps


def _texture(h: int, w: int, seed: int, smooth: bool = False) -> np.ndarray:
    """A tinted, detailed RGB texture: coarse blobs + fine noise + a grid of edges."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.random((max(h // 24, 2), max(w // 24, 2), 3), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    if smooth:
        return np.clip(cv2.GaussianBlur(coarse, (0, 0), 8) * 255, 0, 255).astype(np.uint8)
    fine = cv2.GaussianBlur(rng.random((h, w, 3), dtype=np.float32), (0, 0), 1.2)
    img = 0.6 * coarse + 0.4 * fine
    # hues spread by the golden ratio so consecutive shots differ in colour
    tint = np.float32(colorsys.hsv_to_rgb((seed * 0.618034) % 1.0, 0.8, 1.0)) * 0.8 + 0.2
    img = img * tint + rng.uniform(0.0, 0.2)
    step = int(rng.integers(14, 30))
    img[::step, :, :] *= 0.3
    img[:, ::step, :] *= 0.3
    return np.clip(img * 255, 0, 255).astype(np.uint8)


class _ShotRenderer:
    """Renders frame ``i`` of one shot of a given kind."""

    def __init__(self, kind: str, n: int, size: tuple[int, int], seed: int):
        if kind not in (*_MOTION, *_ZOOM, "static", "black"):
            raise ValueError(f"unknown shot kind {kind!r}")
        self.kind, self.w, self.h = kind, size[0], size[1]
        dx, dy = _MOTION.get(kind, (0, 0))
        self.dx, self.dy = dx, dy
        self.pad = max(abs(dx), abs(dy)) * n + 8
        self.canvas = _texture(self.h + 2 * self.pad, self.w + 2 * self.pad, seed, smooth=kind == "smooth")

    def frame(self, i: int) -> np.ndarray:
        if self.kind == "black":
            return np.zeros((self.h, self.w, 3), np.uint8)
        p = self.pad
        if self.kind in _ZOOM:
            s = _ZOOM[self.kind] ** i  # visible region shrinks as s grows (zoom in)
            cw, ch = self.w / s, self.h / s
            cx, cy = self.canvas.shape[1] / 2, self.canvas.shape[0] / 2
            m = np.float32([[1 / s, 0, cx - cw / 2], [0, 1 / s, cy - ch / 2]])
            return cv2.warpAffine(self.canvas, m, (self.w, self.h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        # content moving by +dx means the crop window moves by -dx
        x, y = p - self.dx * i, p - self.dy * i
        return self.canvas[y : y + self.h, x : x + self.w]


def _parse(shots: Sequence[Shot]) -> list[tuple[str, str, int]]:
    """``[(tag, kind, n)]`` with tag "S" (shot) or "T" (transition), validated."""
    plan = [("T", item[0], int(item[1])) if isinstance(item[0], str) else ("S", item[1], int(item[0])) for item in shots]
    for k, (tag, kind, _) in enumerate(plan):
        if tag == "T":
            if kind not in ("dissolve", "fade"):
                raise ValueError(f"unknown transition {kind!r}")
            if not (0 < k < len(plan) - 1 and plan[k - 1][0] == plan[k + 1][0] == "S"):
                raise ValueError("a transition must sit between two shots")
    return plan


def _render(shots: Sequence[Shot], size: tuple[int, int], seed: int, fps: float):
    """All RGB frames of the video and its ground truth.

    A shot keeps moving through the transitions on either side of it: the
    frames it shows inside a transition are the ones just before/after its own.
    """
    plan = _parse(shots)
    before = [plan[k - 1][2] if k > 0 and plan[k - 1][0] == "T" else 0 for k in range(len(plan))]
    after = [plan[k + 1][2] if k + 1 < len(plan) and plan[k + 1][0] == "T" else 0 for k in range(len(plan))]
    rend = {k: _ShotRenderer(kind, before[k] + n + after[k], size, seed * 1000 + k) for k, (tag, kind, n) in enumerate(plan) if tag == "S"}
    frames: list[np.ndarray] = []
    cuts: list[int] = []
    transitions: list[tuple[int, int]] = []
    for k, (tag, kind, n) in enumerate(plan):
        if tag == "S":
            if k > 0 and plan[k - 1][0] == "S":
                cuts.append(len(frames))
            frames.extend(rend[k].frame(before[k] + i) for i in range(n))
            continue
        a, b, a_off = rend[k - 1], rend[k + 1], before[k - 1] + plan[k - 1][2]
        start = len(frames)
        for i in range(n):
            t = (i + 1) / (n + 1)
            fa, fb = a.frame(a_off + i).astype(np.float32), b.frame(i).astype(np.float32)
            if kind == "dissolve":
                f = (1 - t) * fa + t * fb
            else:
                f = fa * max(0.0, 1 - 2 * t) + fb * max(0.0, 2 * t - 1)
            frames.append(np.clip(f, 0, 255).astype(np.uint8))
        transitions.append((start, len(frames) - 1))
    return frames, Truth(cuts, transitions, len(frames), fps)


def make_video(
    path: str | Path,
    shots: Sequence[Shot] = ((50, "moving"), (50, "pan_left")),
    size: tuple[int, int] = (320, 240),
    fps: float = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    frame_times: Sequence[float] | None = None,
    audio: bool = False,
    seed: int = 0,
    options: dict[str, str] | None = None,
) -> Truth:
    """Encode a video of the given shots and return its ground truth.

    Args:
        path: output file; the container follows the extension (.mp4, .mkv, .avi, .webm).
        shots: ``(n_frames, kind)`` shots and ``("dissolve"|"fade", n_frames)`` transitions.
        size: (width, height), coded size before rotation.
        fps: nominal frame rate (the stream's time base is 1/(fps*1000) unless VFR).
        codec, pix_fmt: encoder and its pixel format (e.g. ``"libx264", "yuv420p10le"``,
            ``"ffv1", "yuv444p"``, ``"mpeg4", "yuv420p"``).
        rotation: display rotation in degrees counter-clockwise (display matrix side data).
        frame_times: presentation time in seconds of each frame (VFR); length must
            equal the number of frames. Stored with a 1/1000 s time base.
        audio: add a quiet AAC sine track of the same length.
        seed: changes every shot's texture.
        options: encoder options (libx264 default: ``preset=ultrafast, crf=20``).
    """
    frames, truth = _render(shots, size, seed, fps)
    if frame_times is not None and len(frame_times) != len(frames):
        raise ValueError(f"frame_times has {len(frame_times)} entries for {len(frames)} frames")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], pix_fmt
        if codec == "libx264":
            vs.options = {"preset": "ultrafast", "crf": "20", **(options or {})}
        elif options:
            vs.options = options
        tb = Fraction(1, 1000) if frame_times is not None else 1 / rate
        vs.codec_context.time_base = tb
        if rotation:
            vs.set_display_rotation(rotation)
        aus = _add_audio(out) if audio else None
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts = round(frame_times[i] * 1000) if frame_times is not None else i
            f.time_base = tb
            out.mux(vs.encode(f))
        out.mux(vs.encode())
        if aus is not None:
            _write_audio(out, aus, len(frames) / fps)
    return truth


def _add_audio(out: av.container.OutputContainer):
    s = out.add_stream("aac", rate=16000)
    s.layout = "mono"
    return s


def _write_audio(out: av.container.OutputContainer, s, seconds: float) -> None:
    sr, n = 16000, 1024
    t0 = 0
    total = int(seconds * sr)
    while t0 < total:
        t = (np.arange(t0, t0 + n) / sr).astype(np.float32)
        f = av.AudioFrame.from_ndarray((0.1 * np.sin(2 * np.pi * 440 * t))[None, :], format="fltp", layout="mono")
        f.sample_rate, f.pts = sr, t0
        out.mux(s.encode(f))
        t0 += n
    out.mux(s.encode())


def make_audio_only(path: str | Path, seconds: float = 2.0) -> None:
    """An audio-only file (AAC in .m4a/.mp4, no video stream)."""
    with av.open(str(path), "w") as out:
        _write_audio(out, _add_audio(out), seconds)


def make_vfr_video(path: str | Path, n_frames: int = 60, seed: int = 0) -> list[float]:
    """A two-shot VFR video whose frame gaps alternate 40 ms and 80 ms; returns the frame times."""
    times = list(np.cumsum([0.0] + [0.04 if i % 2 else 0.08 for i in range(n_frames - 1)]))
    make_video(path, [(n_frames // 2, "pan_left"), (n_frames - n_frames // 2, "tilt_up")], fps=25, frame_times=times, seed=seed)
    return [float(t) for t in times]


def write_garbage(path: str | Path, n_bytes: int = 4096, seed: int = 0) -> None:
    """Random bytes with a video extension: not a container at all."""
    Path(path).write_bytes(np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes())


def truncate_copy(src: str | Path, dst: str | Path, fraction: float) -> None:
    """Copy the first ``fraction`` of ``src`` (a file cut short mid-download)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])


def lie_about_duration(src: str | Path, dst: str | Path, seconds: float) -> None:
    """Copy ``src`` (MP4/MOV or MKV/WebM) with headers claiming ``seconds`` of video; every frame stays.

    MP4: the duration fields of ``mvhd``, ``tkhd`` and ``mdhd`` (sample tables
    untouched, so a decoder still finds every frame). MKV: the segment's
    ``Duration`` element (float, in ``TimestampScale`` units).
    """
    import struct

    data = bytearray(Path(src).read_bytes())
    if data[4:8] == b"ftyp":
        timescale = None
        for box in (b"mvhd", b"tkhd", b"mdhd"):
            start = 0
            while (i := data.find(box, start)) >= 0:
                start = i + 4
                body = i + 4  # version (1) + flags (3) follow the type
                v1 = data[body] == 1
                if box == b"tkhd":  # created, modified, track id, reserved, duration (movie timescale)
                    off, scale = body + 4 + (16 if v1 else 8) + 8, timescale
                else:  # created, modified, timescale, duration
                    off = body + 4 + (16 if v1 else 8)
                    scale = struct.unpack(">I", data[off : off + 4])[0]
                    if box == b"mvhd":
                        timescale = scale
                    off += 4
                value = round(seconds * scale)
                data[off : off + (8 if v1 else 4)] = struct.pack(">Q" if v1 else ">I", value)
    elif data[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska/WebM
        i = data.find(b"\x44\x89")  # Duration, a float of TimestampScale units (default 1 ms)
        if i < 0:
            raise ValueError(f"{src}: no Duration element")
        size = data[i + 2] & 0x7F  # a 1-byte size: 0x84 (float32) or 0x88 (float64)
        data[i + 3 : i + 3 + size] = struct.pack(">f" if size == 4 else ">d", seconds * 1000.0)
    else:
        raise ValueError(f"{src}: not MP4 or Matroska")
    Path(dst).write_bytes(bytes(data))


def concat_segments(
    out: str | Path,
    segments: Sequence[tuple[str | Path, float, int]],
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    transitions: Sequence[tuple[str, int] | None] | None = None,
) -> Truth:
    """Re-encode ``(source, start_s, n_frames)`` segments of real videos into one clip.

    Every segment is resampled to ``fps``, scaled to ``size`` and cut to
    exactly ``n_frames`` frames. ``transitions[k]`` joins segment ``k`` and
    ``k + 1``: None is a hard cut, ``("dissolve", n)`` a crossfade over n
    frames and ``("fade", n)`` a fade through black (ffmpeg ``xfade``; both
    overlap the two segments by n frames). Needs the ffmpeg CLI.
    """
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg CLI not found")
    transitions = list(transitions or [None] * (len(segments) - 1))
    if len(transitions) != len(segments) - 1:
        raise ValueError("need one transition (or None) between each two segments")
    args = ["ffmpeg", "-v", "error", "-y"]
    chains = []
    for k, (src, start, n) in enumerate(segments):
        # trim in the filter graph (decoding from the start) rather than -ss input
        # seeking: some sources (cockatoo.mp4) flag non-IDR frames as keyframes
        args += ["-i", str(src)]
        chains.append(
            f"[{k}:v]trim=start={start:.3f},setpts=PTS-STARTPTS,fps={fps},scale={size[0]}:{size[1]},"
            f"setsar=1,format=yuv420p,trim=start_frame=0:end_frame={n},setpts=PTS-STARTPTS,settb=1/{fps}[v{k}]"
        )
    cuts, spans, length, cur = [], [], segments[0][2], "v0"
    for k, tr in enumerate(transitions, start=1):
        n = segments[k][2]
        if tr is None:
            chains.append(f"[{cur}][v{k}]concat=n=2:v=1:a=0,settb=1/{fps}[x{k}]")
            cuts.append(length)
            length += n
        else:
            kind, d = tr
            name = {"dissolve": "fade", "fade": "fadeblack"}[kind]
            chains.append(f"[{cur}][v{k}]xfade=transition={name}:duration={d / fps:.6f}:offset={(length - d) / fps:.6f}[x{k}]")
            spans.append((length - d, length - 1))
            length += n - d
        cur = f"x{k}"
    args += ["-filter_complex", ";".join(chains), "-map", f"[{cur}]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-an", str(out)]
    subprocess.run(args, check=True)
    return Truth(cuts, spans, length, fps)
