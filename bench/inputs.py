"""Benchmark inputs: real footage looped with stream copy, cached under ``bench/out/inputs/``.

Nothing is re-encoded: the source's own video packets are repeated with PyAV,
timestamps continuing across loops, so the decoders see exactly the real
footage, only longer. It is what ``ffmpeg -stream_loop N -i SRC -map 0:v:0 -c
copy -an`` writes (the same frames and timestamps on four of the shared
videos), and runs where there is no ffmpeg CLI (the lent GPU machines). Audio
is dropped: the pipeline ignores it and the ffmpeg references should time
video only.

Sets (sources from ``../shared/media/videos``, see ``../shared/MANIFEST.md``):

* ``speed_inputs()`` – the throughput set, 720p and 1080p, >= 5 minutes in all:
  ``cockatoo.mp4`` (1280x720, 20 fps, handheld, high motion) x17 = 238 s,
  ``big_buck_bunny_5s.mp4`` (1280x720, 25 fps, animation) x24 = 127 s,
  ``slides_talk_1080p.mp4`` (1920x1080, 30 fps, slide talk) x2 = 245 s.
* ``memory_inputs()`` – one real clip looped to 2 and to 20 minutes:
  ``chaplin.mp4`` (640x360, 25 fps, 9.64 s) x13 = 125 s and x125 = 1205 s.
  360p keeps the 20-minute pipeline run to a couple of minutes on two cores.

When ``../shared`` is absent, :class:`SharedMissing` is raised; the benchmark
prints its message and skips (no synthetic stand-in: the point is real footage).

    python bench/inputs.py          # build (or reuse) every input and list them
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CURATE_SHARED", ROOT.parent / "shared"))
MEDIA = SHARED / "media" / "videos"
OUT = ROOT / "bench" / "out" / "inputs"

# (source file, plays) — plays = 1 + the -stream_loop count
# ~10 minutes: fixed costs (Ray actor start-up, ~3 s) are amortised as in real batch jobs,
# and reported on their own line.
SPEED_SET = [("cockatoo.mp4", 17), ("big_buck_bunny_5s.mp4", 24), ("slides_talk_1080p.mp4", 2)]
MEMORY_SOURCE = "chaplin.mp4"
MEMORY_SET = {"2min": 120.0, "20min": 1200.0}  # target seconds (rounded up to whole plays)
MIN_SPEED_TOTAL_S = 300.0


class SharedMissing(RuntimeError):
    """The shared real media is not there; benchmarks skip with this message."""


@dataclass(frozen=True)
class Input:
    name: str  # file name under bench/out/inputs
    path: str
    source: str  # shared file it loops
    plays: int
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float

    @property
    def label(self) -> str:
        return f"{self.height}p"

    def describe(self) -> str:
        return (f"{self.name:<34} {self.width}x{self.height:<5} {self.fps:5.2f} fps {self.frames:6d} frames "
                f"{self.duration_s:7.1f} s  ({self.source} x{self.plays}, stream copy)")


def _require_shared() -> None:
    if not MEDIA.is_dir():
        raise SharedMissing(f"shared media not found at {MEDIA} (set CURATE_SHARED or check out ../shared); "
                            "the pipeline benchmark needs real footage and is skipped")


def _probe(path: Path) -> dict:
    """Size, average frame rate, frame count and duration as the container states them (ffprobe's fields, read with PyAV)."""
    import av

    with av.open(str(path)) as c:
        st = c.streams.video[0]
        rate = st.average_rate
        return {"width": st.codec_context.width, "height": st.codec_context.height, "fps": float(rate) if rate else 0.0,
                "frames": int(st.frames or 0), "duration_s": float(c.duration or 0) / 1e6}


def looped(source: str, plays: int, name: str | None = None) -> Input:
    """``source`` played ``plays`` times in a row (stream copy), built once and cached."""
    _require_shared()
    src = MEDIA / source
    if not src.is_file():
        raise SharedMissing(f"{src} not found")
    OUT.mkdir(parents=True, exist_ok=True)
    name = name or f"{Path(source).stem}_x{plays}.mp4"
    dst, meta = OUT / name, OUT / (name + ".json")
    key = {"source": str(src), "size": src.stat().st_size, "plays": plays}
    if dst.is_file() and meta.is_file():
        cached = json.loads(meta.read_text())
        if cached.get("key") == key:
            return Input(**cached["input"])
    tmp = dst.with_name(f".{name}.tmp.mp4")
    _stream_loop(src, tmp, plays)
    tmp.replace(dst)
    inp = Input(name=name, path=str(dst), source=source, plays=plays, **_probe(dst))
    meta.write_text(json.dumps({"key": key, "input": asdict(inp)}, indent=1))
    return inp


def _stream_loop(src: Path, dst: Path, plays: int) -> None:
    """``src``'s video packets ``plays`` times into ``dst`` (MP4, faststart), each play shifted by the one before's end."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "+faststart"}) as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        shift = 0
        for _ in range(plays):
            inp.seek(0)
            end = 0
            for packet in inp.demux(stream):
                if packet.dts is None:  # the demuxer's empty flush packet
                    continue
                end = max(end, packet.pts + (packet.duration or 0))
                packet.pts, packet.dts, packet.stream = packet.pts + shift, packet.dts + shift, copy
                out.mux(packet)
            shift += end


def speed_inputs() -> list[Input]:
    """The 720p + 1080p throughput set (>= 5 minutes of video in all)."""
    out = [looped(src, plays) for src, plays in SPEED_SET]
    total = sum(i.duration_s for i in out)
    if total < MIN_SPEED_TOTAL_S:
        raise RuntimeError(f"speed set holds only {total:.0f} s < {MIN_SPEED_TOTAL_S:.0f} s")
    return out


def memory_inputs() -> dict[str, Input]:
    """``{"2min": ..., "20min": ...}``: ``MEMORY_SOURCE`` looped to about 2 and 20 minutes."""
    _require_shared()
    dur = _probe(MEDIA / MEMORY_SOURCE)["duration_s"]
    return {k: looped(MEMORY_SOURCE, math.ceil(target / dur), name=f"{Path(MEMORY_SOURCE).stem}_{k}.mp4")
            for k, target in MEMORY_SET.items()}


def main() -> int:
    try:
        speed, memory = speed_inputs(), memory_inputs()
    except SharedMissing as e:
        print(f"SKIP: {e}")
        return 0
    print("speed set:")
    for i in speed:
        print("  " + i.describe())
    print(f"  total {sum(i.duration_s for i in speed):.1f} s")
    print("memory set:")
    for k, i in memory.items():
        print(f"  {k:>5}: " + i.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
