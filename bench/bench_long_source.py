"""Long-source benchmark (issue 12, clip pieces): memory of the analysis pass, and of the encode stage and its writer, on one long video.

A synthetic 1-minute video (shots of moving texture, pans, zooms) is played
``--minutes`` times in a row (stream copy), then each phase runs in a fresh
process so its peak RSS (``ru_maxrss``) is its own:

  analyse  probe + analyse (one decode pass) in-process, once with ``piece_mb``
           so large that nothing streams (the behaviour before analysis
           pieces: every clip's sampled frames in the one record it hands on)
           and once with ``--analyse-piece-mb`` (its default, 64): peak RSS,
           clips found, pieces, and the pickled size of the largest object
           it hands on (counted, not copied);
  encode   the encode stage over that record (no filter: every clip the
           analysis kept is encoded) with its output going to a
           :class:`~curate.output.writer.ShardWriter`, as on a Ray node,
           once with ``piece_mb`` so large that nothing streams
           (the behaviour before clip pieces: every clip's MP4 in one record,
           then in the writer's buffer) and once with ``--piece-mb``. Printed:
           peak RSS above the process's RSS before the first clip, the
           biggest object the stage hands on, and the clips' total bytes.

    python bench/bench_long_source.py [--minutes 20] [--size 320x180] [--piece-mb 8] [--analyse-piece-mb 64] [--skip-encode] [--real]

``--real`` takes real footage instead: ``chaplin.mp4`` from ``../shared/media``
looped to about ``--minutes`` (at 20, the memory input of ``bench_pipeline.py``);
synthetic textures compress to about 70 kbit/s, old film to several times that.

Results go to ``bench/out/long_source-{source}.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).resolve().parent / "out"
NO_PIECES_MB = 1e9  # a piece bigger than any video: the whole video's clips in its record, as before pieces
PIPELINE: dict[str, Any] = {"clips": {"min_s": 2.0, "max_s": 6.0}, "encode": {"max_height": None}}
SHOTS = [(250, "moving"), (250, "pan_left"), (250, "zoom_in"), (250, "tilt_up"), (250, "pan_right"), (250, "moving")]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def make_source(minutes: int, size: tuple[int, ...]) -> Path:
    """``bench/out/long-inputs/long{minutes}m-{W}x{H}.mp4``: one synthetic minute played ``minutes`` times (built once)."""
    from curate.synth import make_video

    root = OUT / "long-inputs"
    root.mkdir(parents=True, exist_ok=True)
    one = root / f"one-{size[0]}x{size[1]}.mp4"
    if not one.exists():
        make_video(one, SHOTS, size=size, seed=7, options={"preset": "veryfast", "crf": "23"})
    dst = root / f"long{minutes}m-{size[0]}x{size[1]}.mp4"
    if not dst.exists():
        tmp = dst.with_name(f".{dst.name}.tmp.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(minutes - 1), "-i", str(one),
                        "-c", "copy", "-an", str(tmp)], check=True)
        tmp.replace(dst)
    return dst


def _config() -> Any:
    from curate.config import PipelineConfig

    return PipelineConfig.model_validate(PIPELINE)


class _Counter:
    """A file that only counts what is written: an object's pickled size without a second copy of it in memory."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, b: Any) -> int:
        self.n += memoryview(b).nbytes
        return self.n


def _pickled_size(obj: Any) -> int:
    sink = _Counter()
    pickle.Pickler(sink, protocol=5).dump(obj)
    return sink.n


def phase_analyse(source: Path, record_out: Path, piece_mb: float) -> dict[str, Any]:
    """Probe + analyse in this process with ``piece_mb``; writes every clip, without sampled frames, for the encode phase.

    Each object the stage hands on (analysis pieces, then the record) is
    measured, its clips appended to ``record_out`` (:func:`_read_record`), and
    dropped, as an actor hands it on to the next pool.
    """
    import dataclasses

    from curate.discover import discover
    from curate.records import is_piece
    from curate.stages.analyse import AnalyseStage
    from curate.stages.probe import ProbeStage

    config = _config()
    (video,) = discover([str(source)])
    base = _rss_mb()
    t0 = time.perf_counter()
    probe = ProbeStage.from_config(config)
    analyse = dataclasses.replace(AnalyseStage.from_config(config), piece_mb=piece_mb, timeout_s=None)
    probe.timeout_s = None
    (video,) = probe.process([video])
    largest = pieces = n = kept = 0
    with record_out.open("wb") as f:
        for out in analyse.process_iter([video]):
            largest = max(largest, _pickled_size(out))
            pieces += is_piece(out)
            # no thresholds: every clip the analysis kept is encoded (more bytes per minute than a filtered run)
            clips = [{k: v for k, v in c.items() if k != "_frames"} for c in out.get("clips") or []]
            n, kept = n + len(clips), kept + sum(not c.get("reject_reasons") for c in clips)
            pickle.dump(clips, f, protocol=5)
            if not is_piece(out):
                video = dict(out, clips=[])
            del out, clips
        pickle.dump(video, f, protocol=5)
    seconds = time.perf_counter() - t0
    peak = _peak_mb() - base
    return {"piece_mb": piece_mb, "status": video["status"], "frames": (video.get("decoded") or {}).get("num_frames"), "clips": n,
            "kept": kept, "pieces": pieces, "seconds": seconds,
            "peak_above_start_mb": peak, "largest_object_mb": largest / 2**20}


def _read_record(path: Path) -> dict[str, Any]:
    """The record :func:`phase_analyse` wrote, with every clip in it (as the encode stage got a long source before pieces)."""
    clips: list[dict[str, Any]] = []
    with path.open("rb") as f:
        while True:
            obj = pickle.load(f)
            if isinstance(obj, dict):
                video = {k: v for k, v in obj.items() if k != "_streamed"}
                return dict(video, clips=clips)
            clips += obj


def phase_encode(record: Path, piece_mb: float) -> dict[str, Any]:
    """The encode stage with ``piece_mb`` feeding a shard writer (an OUTPUT in a temp dir), in this process."""
    import dataclasses

    from curate.output.rows import RowMaker
    from curate.output.writer import ShardWriter, WriterSpec
    from curate.records import is_piece
    from curate.stages.encode import EncodeStage

    config = _config()
    video = _read_record(record)
    stage = dataclasses.replace(EncodeStage.from_config(config), piece_mb=piece_mb, timeout_s=None)
    with tempfile.TemporaryDirectory() as root:
        for table in ("clips", "review", "rejected"):
            Path(root, table).mkdir()
        writer = ShardWriter(WriterSpec(root=root, tag="bench", rows=RowMaker("bench", "bench", {}),
                                        target_bytes=int(config.output.shard_size_mb * 2**20), row_group_rows=config.output.row_group_rows))
        base = _rss_mb()
        t0 = time.perf_counter()
        largest = pieces = clip_bytes = 0
        for out in stage.process_iter([video]):  # what an actor hands on, one object at a time
            largest = max(largest, len(pickle.dumps(out, protocol=5)))
            pieces += is_piece(out)
            clip_bytes += sum(len(c.get("video") or b"") for c in out.get("clips") or [])
            writer.add([out])
        staged = writer.flush()
        seconds = time.perf_counter() - t0
    return {"piece_mb": piece_mb, "status": staged.ledger_rows[0]["status"] if staged else None, "pieces": pieces,
            "clip_bytes_mb": clip_bytes / 2**20, "largest_object_mb": largest / 2**20, "seconds": seconds,
            "peak_above_start_mb": _peak_mb() - base}


def _sub(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, default=20)
    ap.add_argument("--size", default="320x180")
    ap.add_argument("--piece-mb", type=float, default=8.0, help="the encode stage's piece_mb (MP4)")
    ap.add_argument("--analyse-piece-mb", type=float, default=64.0, help="the analysis stage's piece_mb (sampled frames; its default)")
    ap.add_argument("--skip-encode", action="store_true", help="measure the analysis pass only")
    ap.add_argument("--real", action="store_true", help="chaplin.mp4 looped to ~--minutes (needs ../shared/media)")
    ap.add_argument("--phase", choices=("analyse", "encode"), help=argparse.SUPPRESS)
    ap.add_argument("--arg", action="append", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "analyse":
        print(json.dumps(phase_analyse(Path(args.arg[0]), Path(args.arg[1]), float(args.arg[2]))))
        return
    if args.phase == "encode":
        print(json.dumps(phase_encode(Path(args.arg[0]), float(args.arg[1]))))
        return
    if args.real:
        from inputs import MEDIA, MEMORY_SOURCE, _probe, looped

        plays = math.ceil(args.minutes * 60 / _probe(MEDIA / MEMORY_SOURCE)["duration_s"])
        source = Path(looped(MEMORY_SOURCE, plays, name=f"{Path(MEMORY_SOURCE).stem}_{args.minutes}min.mp4").path)
    else:
        source = make_source(args.minutes, tuple(int(v) for v in args.size.split("x")))
    print(f"source {source.name} ({source.stat().st_size / 2**20:.1f} MB)", flush=True)
    res: dict[str, Any] = {"source": source.name, "pipeline": PIPELINE, "analyse": []}
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "record.pkl"
        for piece_mb in (NO_PIECES_MB, args.analyse_piece_mb):
            a = _sub("--phase", "analyse", "--arg", str(source), "--arg", str(record), "--arg", str(piece_mb))
            res["analyse"].append(a)
            label = "no pieces (before)" if piece_mb == NO_PIECES_MB else f"piece_mb {piece_mb:g}"
            print(f"analyse, {label}: {a['frames']} frames, {a['clips']} clips ({a['kept']} kept), {a['pieces']} pieces in "
                  f"{a['seconds']:.0f} s; peak +{a['peak_above_start_mb']:.0f} MB; largest object {a['largest_object_mb']:.1f} MB", flush=True)
        res["encode"] = []
        for piece_mb in () if args.skip_encode else (NO_PIECES_MB, args.piece_mb):
            e = _sub("--phase", "encode", "--arg", str(record), "--arg", str(piece_mb))
            res["encode"].append(e)
            label = "no pieces (before)" if piece_mb == NO_PIECES_MB else f"piece_mb {piece_mb:g}"
            print(f"encode + writer, {label}: {e['pieces']} pieces, clips {e['clip_bytes_mb']:.1f} MB, largest object "
                  f"{e['largest_object_mb']:.1f} MB, peak +{e['peak_above_start_mb']:.0f} MB, {e['seconds']:.0f} s", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"long_source-{source.stem}.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
