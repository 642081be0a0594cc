"""Hard split-test material: composites of real clips with ground truth.

:func:`curate.synth.concat_segments` joins segments with hard cuts, dissolves
and fades to black. This module builds the material that breaks simple shot
detectors (issue 8), still from segments of real videos and with exact ground
truth:

* boundaries: hard cuts; **jump cuts** (two segments of the same source far
  apart in time; with a locked-off camera such as ``vtest.avi`` or
  ``chaplin.mp4`` only the people move); ffmpeg ``xfade`` **wipes and slides**
  (``wipeleft``, ``slideright``, ...; from seed 400 on also irises, clock and
  diagonal wipes, slices, squeezes, zooms, pixelation; from seed 900 on only
  shapes held out of development, such as barn doors and random dissolves); **short dissolves** (4-8 frames);
  **fades through white**;
* events inside a shot that are NOT boundaries: **flashes** (1-3 overexposed
  frames, ``eq`` with a timeline ``enable``) and **whip pans** (the segment is
  shown 1.6x enlarged and the crop window sweeps across most of it in 5-9
  frames, with horizontal blur); high-motion sources (``cockatoo.mp4``,
  ``fire2.mp4``, ``box.mp4`` ...) are shots like any other.

Ground truth follows ``shared/media/annotations``: a cut at ``N`` means frame
``N`` starts the new shot; a gradual transition is the inclusive span of
frames that mix the two shots. For an ``xfade`` over ``d`` frames from
``offset`` that span is measured (:func:`mixed_frames`), not assumed to be
``offset .. offset + d - 1``: the first of those frames shows the first shot
untouched for most shapes, and irises and slices show the second one whole
before their last. It is written beside each video as ``<name>.gt.json``.

:func:`build_hard_set` plans composites from a seed (``random.Random(seed)``
only, so the same seed gives the same plan everywhere) and caches them under a
directory: the tests and ``bench/bench_split.py`` call the same function.
Videos are never committed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

BUILDER_VERSION = 1
# The ground truth's own version, apart from the video's: a composite whose video is current but whose ground truth
# is older gets its ground truth again from its plan, without encoding. 2: gradual spans measured (mixed_frames).
GT_VERSION = 2

# Sources without cuts of their own: (usable start s, usable end s)
SOURCES: dict[str, tuple[float, float]] = {
    "vtest.avi": (0.0, 79.0),  # fixed surveillance camera, 10 fps: the hard jump-cut case
    "chaplin.mp4": (0.0, 9.5),  # locked camera, old film
    "box.mp4": (0.0, 15.0),  # handheld
    "cup.mp4": (0.0, 8.0),
    "cockatoo.mp4": (0.0, 13.9),  # high motion, 720p
    "flipping_a_pancake.mkv": (0.0, 10.3),
    "carphone_pristine.mp4": (0.0, 3.9),
    "big_buck_bunny_5s.mp4": (0.0, 5.2),
    "fire2.mp4": (0.0, 2.3),  # fire, 10.5 fps, only 2.3 s
}
JUMP_SOURCES = ("vtest.avi", "chaplin.mp4", "vtest.avi", "chaplin.mp4", "box.mp4", "cockatoo.mp4", "flipping_a_pancake.mkv")
WIPES = ("wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "slideup", "slidedown")
# More xfade shapes (irises, a clock wipe, soft and diagonal wipes, slices, squeezes, zooms, pixelation). Drawn with
# the wipes from seed MORE_FROM on only, so the plans (and the reported figures) of earlier seeds stay as they were.
MORE = ("circleopen", "circleclose", "radial", "smoothleft", "smoothup", "diagtl", "hlslice", "squeezeh", "zoomin", "pixelize")
MORE_FROM = 400
# xfade shapes no detector or purity test was developed or tuned on. From seed UNSEEN_FROM on the wipes are drawn from
# these only (everything else in the plan is drawn as before), so those seeds say how the splitter does on transitions
# it has not seen: corner and barn-door wipes, crops, other slice directions, blurs, greys, eased fades, and xfade's
# own per-pixel random dissolve ("randomdissolve"; "dissolve" here is xfade's linear "fade").
UNSEEN = ("circlecrop", "rectcrop", "distance", "smoothright", "smoothdown", "vertopen", "vertclose", "horzopen", "horzclose",
          "diagtr", "diagbl", "diagbr", "hrslice", "vuslice", "vdslice", "hblur", "fadegrays", "wipetl", "wipetr", "wipebl",
          "wipebr", "squeezev", "fadefast", "fadeslow", "randomdissolve")
UNSEEN_FROM = 900
GRADUAL = (*WIPES, *MORE, *UNSEEN, "dissolve", "fadewhite", "fadeblack")
_XFADE = {"dissolve": "fade", "fadewhite": "fadewhite", "fadeblack": "fadeblack", "randomdissolve": "dissolve",
          **{w: w for w in (*WIPES, *MORE, *UNSEEN) if w != "randomdissolve"}}


@dataclass(frozen=True)
class Segment:
    """``n`` frames of ``source`` from ``start_s``; ``flash``/``whip``: (first local frame, length) or None."""

    source: str
    start_s: float
    n: int
    flash: tuple[int, int] | None = None
    whip: tuple[int, int, int] | None = None  # (first local frame, length, direction +1/-1)


@dataclass(frozen=True)
class Event:
    """A ground-truth event; ``start .. end`` inclusive (a cut: ``start == end`` = first frame of the new shot)."""

    kind: str  # cut | jump | <xfade name> (gradual) | flash | whip
    start: int
    end: int

    @property
    def is_boundary(self) -> bool:
        return self.kind not in ("flash", "whip")

    @property
    def is_cut(self) -> bool:
        return self.kind in ("cut", "jump")


@dataclass
class Composite:
    path: str
    num_frames: int
    fps: int
    events: list[Event] = field(default_factory=list)

    @property
    def cuts(self) -> list[int]:
        return [e.start for e in self.events if e.is_cut]

    @property
    def spans(self) -> list[tuple[int, int]]:
        return [(e.start, e.end) for e in self.events if e.is_boundary and not e.is_cut]

    @property
    def flashes(self) -> list[tuple[int, int]]:
        return [(e.start, e.end) for e in self.events if e.kind == "flash"]

    @property
    def whips(self) -> list[tuple[int, int]]:
        return [(e.start, e.end) for e in self.events if e.kind == "whip"]

    def to_gt(self) -> dict:
        """The annotation format of ``shared/media/annotations`` plus in-shot events."""
        tr = []
        for e in self.events:
            if e.is_cut:
                tr.append({"type": "jump_cut" if e.kind == "jump" else "cut", "frame": e.start})
            elif e.is_boundary:
                tr.append({"type": e.kind, "start": e.start, "end": e.end})
        return {
            "video": Path(self.path).name, "fps": self.fps, "num_frames": self.num_frames,
            "note": "0-based frames; a cut at N: frame N starts the new shot; spans inclusive. "
                    "flashes and whip_pans are inside shots: NOT boundaries.",
            "transitions": tr,
            "flashes": [{"start": s, "end": e} for s, e in self.flashes],
            "whip_pans": [{"start": s, "end": e} for s, e in self.whips],
            "events": [asdict(e) for e in self.events],
        }

    @classmethod
    def from_gt(cls, path: Path, gt: dict) -> "Composite":
        return cls(str(path), gt["num_frames"], gt["fps"], [Event(**e) for e in gt["events"]])


def _chain(k: int, seg: Segment, size: tuple[int, int], fps: int) -> str:
    w, h = size
    parts = [f"[{k}:v]trim=start={seg.start_s:.3f}", "setpts=PTS-STARTPTS", f"fps={fps}"]
    if seg.whip is None:
        parts.append(f"scale={w}:{h}")
    else:
        a, n, d = seg.whip
        big_w, big_h = 2 * round(w * 0.8), 2 * round(h * 0.8)  # 1.6x, even
        # smoothstep 0..1 over frames a .. a+n-1; the crop window sweeps (big_w - w) px
        p = f"clip((n-{a})/{n - 1}\\,0\\,1)"
        s = f"({p}*{p}*(3-2*{p}))"
        x = f"({big_w - w})*{s}" if d > 0 else f"({big_w - w})*(1-{s})"
        parts += [f"scale={big_w}:{big_h}", f"crop={w}:{h}:x='{x}':y={(big_h - h) // 2}",
                  f"avgblur=sizeX={max(w // 24, 2)}:sizeY=1:enable='between(n\\,{a}\\,{a + n - 1})'"]
    parts += ["setsar=1", "format=yuv420p", f"trim=start_frame=0:end_frame={seg.n}", "setpts=PTS-STARTPTS", f"settb=1/{fps}"]
    if seg.flash is not None:
        a, n = seg.flash
        parts.append(f"eq=brightness=0.45:contrast=1.3:saturation=0.4:enable='between(n\\,{a}\\,{a + n - 1})'")
    return ",".join(parts) + f"[v{k}]"


def concat_with_transitions(
    out: str | Path,
    segments: Sequence[Segment],
    transitions: Sequence[tuple[str, int] | None],
    media: str | Path,
    size: tuple[int, int] = (320, 180),
    fps: int = 25,
) -> Composite:
    """Encode ``segments`` (sources under ``media``) joined by ``transitions`` and return the ground truth.

    ``transitions[k]`` joins segments ``k`` and ``k + 1``: None is a hard cut
    (a jump cut when both segments come from the same source), ``(name, d)``
    an ``xfade`` over ``d`` frames (``dissolve``, ``fadewhite``, ``fadeblack``
    or one of :data:`WIPES`), overlapping the two segments by ``d`` frames.
    """
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg CLI not found")
    if len(transitions) != len(segments) - 1:
        raise ValueError("need one transition (or None) between each two segments")
    args = ["ffmpeg", "-v", "error", "-y"]
    chains = []
    for k, seg in enumerate(segments):
        args += ["-i", str(Path(media) / seg.source)]
        chains.append(_chain(k, seg, size, fps))
    starts = _starts(segments, transitions)
    cur = "v0"
    for k, tr in enumerate(transitions, start=1):
        if tr is None:
            chains.append(f"[{cur}][v{k}]concat=n=2:v=1:a=0,settb=1/{fps}[x{k}]")
        else:
            name, d = tr
            chains.append(f"[{cur}][v{k}]xfade=transition={_XFADE[name]}:duration={d / fps:.6f}:offset={starts[k] / fps:.6f}[x{k}]")
        cur = f"x{k}"
    args += ["-filter_complex", ";".join(chains), "-map", f"[{cur}]", "-c:v", "libx264", "-preset", "ultrafast",
             "-crf", "20", "-g", "50", "-an", str(out)]
    subprocess.run(args, check=True)
    return Composite(str(out), starts[-1] + segments[-1].n, fps, ground_truth(segments, transitions, size, fps))


def _starts(segments: Sequence[Segment], transitions: Sequence[tuple[str, int] | None]) -> list[int]:
    """The composite's first frame of each segment: an ``xfade`` over ``d`` frames starts the next one ``d`` early."""
    starts = [0]
    for k, tr in enumerate(transitions, start=1):
        starts.append(starts[-1] + segments[k - 1].n - (tr[1] if tr else 0))
    return starts


def ground_truth(segments: Sequence[Segment], transitions: Sequence[tuple[str, int] | None],
                 size: tuple[int, int] = (320, 180), fps: int = 25) -> list[Event]:
    """The events of the composite :func:`concat_with_transitions` makes of this plan, in frame order."""
    starts = _starts(segments, transitions)
    events: list[Event] = []
    for k, tr in enumerate(transitions, start=1):
        if tr is None:
            events.append(Event("jump" if segments[k].source == segments[k - 1].source else "cut", starts[k], starts[k]))
        else:
            first, last = mixed_frames(tr[0], tr[1], fps, size)
            events.append(Event(tr[0], starts[k] + first, starts[k] + last))
    for k, seg in enumerate(segments):
        if seg.flash is not None:
            events.append(Event("flash", starts[k] + seg.flash[0], starts[k] + seg.flash[0] + seg.flash[1] - 1))
        if seg.whip is not None:
            events.append(Event("whip", starts[k] + seg.whip[0], starts[k] + seg.whip[0] + seg.whip[1] - 1))
    return sorted(events, key=lambda e: (e.start, e.end))


@functools.cache
def mixed_frames(name: str, d: int, fps: int = 25, size: tuple[int, int] = (320, 180)) -> tuple[int, int]:
    """The first and last frame of an ``xfade`` over ``d`` frames that show neither picture untouched, from its offset.

    ``xfade`` gives its first frame progress 1 and frame ``d`` progress 0, but what a shape draws there varies. Over
    the 44 shapes, 4-20 frames, 25 and 30 fps at 320x180: 33 leave the first frame the first picture untouched, and
    irises and slices 2-4 frames; 11 (slides, squeezes, corner wipes) alter it already. Irises and slices show the
    second picture whole 1-3 frames before the end. So the span is measured: the same ``xfade``, in the composites'
    pixel format and size, over two still noise pictures (the first ending with it, as in a composite), byte for byte.
    """
    w, h = size
    lead, tail = 2, 6  # frames of each picture alone before and after
    n = lead + d + tail
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        args = ["ffmpeg", "-v", "error", "-nostdin"]
        for k, length in enumerate((lead + d, d + tail)):  # the first shot ends with the xfade, as in a composite
            pic = Path(tmp) / f"{k}.yuv"
            pic.write_bytes(rng.integers(0, 256, w * h * 3 // 2, dtype=np.uint8).tobytes())  # yuv420p: Y, then U and V at half size
            args += ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-framerate", str(fps), "-stream_loop", "-1",
                     "-t", f"{length / fps:.6f}", "-i", str(pic)]
        graph = (f"[0]settb=1/{fps}[a];[1]settb=1/{fps}[b];"
                 f"[a][b]xfade=transition={_XFADE[name]}:duration={d / fps:.6f}:offset={lead / fps:.6f},format=yuv420p")
        raw = subprocess.run([*args, "-filter_complex", graph, "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                             capture_output=True, check=True).stdout
    step = w * h * 3 // 2
    frames = [raw[i : i + step] for i in range(0, len(raw) - step + 1, step)]
    if len(frames) < n or frames[lead - 1] != frames[0] or frames[-2] != frames[-1]:
        raise RuntimeError(f"xfade {name} over {d} frames: no still picture before and after it in {len(frames)} frames")
    first = next(i for i, f in enumerate(frames) if f != frames[0])
    last = max(i for i, f in enumerate(frames) if f != frames[-1])
    return first - lead, last - lead


def _wipe(seed: int, k: int, rng: random.Random) -> str:
    """The shape of transition ``k``; an UNSEEN one is drawn from its own generator, so the plan's draws stay as they were."""
    name = rng.choice(WIPES if seed < MORE_FROM else WIPES + MORE)
    return name if seed < UNSEEN_FROM else random.Random(seed * 1000 + k).choice(UNSEEN)


def plan_composite(seed: int, n_transitions: int = 8) -> tuple[list[Segment], list[tuple[str, int] | None]]:
    """A random but reproducible plan: which segments, which transitions, where flashes and whip pans go.

    Of ``n_transitions``: one or two jump cuts (locked-off sources first), one
    or two hard cuts, and the rest drawn from wipes/slides (6-20 frames),
    dissolves (4-8 frames) and fades through white (6-16 frames), at least one
    of each; from seed :data:`MORE_FROM` on the wipes include the :data:`MORE`
    shapes, from :data:`UNSEEN_FROM` on they are the :data:`UNSEEN` ones only. About a third of the segments get a flash, a quarter a whip pan.
    """
    rng = random.Random(seed)
    n_jumps = rng.choice([1, 2])
    n_cuts = rng.choice([1, 2])
    kinds = ["jump"] * n_jumps + ["cut"] * n_cuts + ["wipe", "dissolve", "fadewhite"]
    while len(kinds) < n_transitions:
        kinds.append(rng.choice(["wipe", "wipe", "dissolve", "fadewhite"]))
    kinds = kinds[:n_transitions]
    rng.shuffle(kinds)
    while any(a == b == "jump" for a, b in zip(kinds, kinds[1:])):  # a jump cut needs its own source halves
        rng.shuffle(kinds)

    names = list(SOURCES)
    segments: list[Segment] = []
    transitions: list[tuple[str, int] | None] = []
    prev: str | None = None
    prev_end = 0.0
    for k in range(n_transitions + 1):
        kind_in = kinds[k - 1] if k > 0 else None
        n = rng.randint(62, 95)
        if kind_in == "jump":  # the second half: same source, at least 2 s after the first half ends
            src = prev
            lo = prev_end + 2.0
            n = min(n, int((SOURCES[src][1] - lo) * 25))
            start = rng.uniform(lo, max(lo, SOURCES[src][1] - n / 25))
        else:
            nxt_jump = k < n_transitions and kinds[k] == "jump"
            choices = [s for s in (JUMP_SOURCES if nxt_jump else names) if s != prev]
            src = rng.choice(choices)
            if src == "fire2.mp4":
                n = min(n, 55)
            lo, hi = SOURCES[src]
            hi = hi - n / 25 - (2.0 + 62 / 25 if nxt_jump else 0)  # leave room for the jump's second half
            start = rng.uniform(lo, max(lo, hi))
        start = round(start, 2)
        flash = whip = None
        if n >= 60:
            r = rng.random()
            if r < 0.35:
                flash = (rng.randint(25, n - 30), rng.randint(1, 3))
            elif r < 0.6 and src not in ("fire2.mp4",):
                whip = (rng.randint(25, n - 35), rng.randint(5, 9), rng.choice([1, -1]))
        segments.append(Segment(src, start, n, flash, whip))
        if kind_in is not None:
            if kind_in in ("jump", "cut"):
                transitions.append(None)
            elif kind_in == "wipe":
                transitions.append((_wipe(seed, k, rng), rng.randint(6, 20)))
            elif kind_in == "dissolve":
                transitions.append(("dissolve", rng.randint(4, 8)))
            else:
                transitions.append(("fadewhite", rng.randint(6, 16)))
        prev, prev_end = src, start + n / 25
    return segments, transitions


def retimed(segments: Sequence[Segment], transitions: Sequence[tuple[str, int] | None],
            fps: int) -> tuple[list[Segment], list[tuple[str, int] | None]]:
    """A plan made for 25 fps with every frame count scaled to ``fps``: the same edit, shot at another rate."""
    f = lambda n: max(1, round(n * fps / 25))  # noqa: E731
    segs = [Segment(s.source, s.start_s, f(s.n), s.flash and (f(s.flash[0]), f(s.flash[1])),
                    s.whip and (f(s.whip[0]), f(s.whip[1]), s.whip[2])) for s in segments]
    return segs, [t and (t[0], f(t[1])) for t in transitions]


# Black bars a composite can be re-encoded with (``bench_split.py --bars``): ffmpeg filters on the 320x180 composites.
BARS = {"pillar": "scale=iw*3/4:ih,pad=iw*4/3:ih:(ow-iw)/2:0:black",  # 4:3 in 16:9: 40 px left and right
        "letter": "pad=iw:ih*4/3:0:(oh-ih)/2:black"}  # 16:9 in 4:3: 30 px top and bottom


def reencode(src: str | Path, dst: str | Path, crf: int, bars: str | None = None) -> Path:
    """``src`` re-encoded by x264 at ``crf`` into ``dst``, with the black bars of ``BARS[bars]`` if given: the same
    frames and ground truth. A high ``crf`` (38) is web video's compression: blocking, keyframe pops, smeared motion."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *(["-vf", BARS[bars]] if bars else []), "-c:v", "libx264",
                    "-preset", "veryfast", "-crf", str(crf), str(dst)], check=True)
    return Path(dst)


def build_hard_set(out_dir: str | Path, seeds: Sequence[int], media: str | Path,
                   size: tuple[int, int] = (320, 180), n_transitions: int = 8, fps: int = 25) -> list[Composite]:
    """One composite per seed under ``out_dir`` (``hard_<seed>.mp4`` + ``.gt.json``), reused while the plan is unchanged
    (its ground truth made again from the plan where it predates :data:`GT_VERSION`).

    ``fps`` other than 25 re-times each plan (:func:`retimed`; ``hard_<seed>_<fps>fps.mp4``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = []
    for seed in seeds:
        segs, trs = plan_composite(seed, n_transitions)
        name = f"hard_{seed}"
        if fps != 25:
            segs, trs = retimed(segs, trs, fps)
            name += f"_{fps}fps"
        key = hashlib.sha256(json.dumps([BUILDER_VERSION, size, [asdict(s) for s in segs], trs]).encode()).hexdigest()[:16]
        path, gt_path = out_dir / f"{name}.mp4", out_dir / f"{name}.gt.json"
        gt = json.loads(gt_path.read_text()) if path.is_file() and gt_path.is_file() else {}
        if gt.get("key") == key and gt.get("gt_version") == GT_VERSION:
            result.append(Composite.from_gt(path, gt))
            continue
        if gt.get("key") == key:  # the video as it was, its ground truth from the plan again
            comp = Composite(str(path), gt["num_frames"], fps, ground_truth(segs, trs, size, fps))
        else:
            tmp = out_dir / f".{name}.tmp.mp4"
            comp = concat_with_transitions(tmp, segs, trs, media, size, fps)
            tmp.replace(path)
            comp.path = str(path)
        gt_path.write_text(json.dumps({**comp.to_gt(), "key": key, "gt_version": GT_VERSION, "seed": seed,
                                       "plan": {"segments": [asdict(s) for s in segs], "transitions": trs}}, indent=1))
        result.append(comp)
    return result
