"""Split-quality benchmark (issue 8): hard cuts, jump cuts, wipes, short dissolves, white fades, flashes.

For each detector (``adaptive`` + fades, the model-free default until now;
``transnetv2``; ``combined``), on

* the hard composites of :mod:`curate.synth_transitions` (real clips from
  ``../shared/media/videos`` joined by wipes/slides, 4-8-frame dissolves,
  fades through white, hard and jump cuts, with in-shot flashes and whip
  pans), built once and cached under ``bench/out/split/``. Seeds 1-4 are the
  set the combined detector was developed on ("tuning"); seeds 101-108 are
  held out ("held-out") and are the reported figures;
* the shared ground truth (``bikes.mp4``, ``composite_cuts_dissolve_fade.mp4``),

it prints hard-cut F1 (jump cuts included) and jump cuts found, gradual F1,
boundaries placed at in-shot flashes and at whip pans, and clips (planned as
the analysis stage plans them, ``ClipsConfig`` defaults) that hold a
ground-truth cut or any frame of a gradual transition. Scoring is
:mod:`curate.analysis.shot_eval` (the shot tests' matching, 2 frames of slack).

Each video is decoded once (192 px wide, as ``analysis.width``) and the same
frames go to every detector; each detector's own frames/s is printed.
TransNetV2's raw outputs are cached by window content
(``bench/out/split/transnet/``) so that ``transnetv2`` and ``combined``, which
build identical windows, pay for a window once; ``--no-cache`` turns that off.

Throughput (``--skip-speed`` to leave out): the analysis stage (probe +
analyse, local runner, in this process) with each detector on real 720p
footage (cockatoo.mp4 x2, big_buck_bunny_5s.mp4 x4, stream-copied loops from
``bench/inputs.py``) against ``ffmpeg -i X -f null -`` on the same files;
``ratio = ffmpeg seconds / analysis seconds`` (target >= 0.8).

    python bench/bench_split.py [--seeds 101-108] [--skip-speed] [--detectors adaptive,combined]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from inputs import MEDIA, SHARED, SharedMissing, looped  # noqa: E402

OUT = ROOT / "bench" / "out" / "split"
TUNING, HELD_OUT = list(range(1, 5)), list(range(101, 109))
TARGETS = {"cut_f1": 0.95, "gradual_f1": 0.85, "at_flash": 0, "bad_clips": 0, "speed": 0.8}


class CachedModel:
    """TransNetV2 with its raw outputs cached on disk by the window's bytes (same windows, same answer)."""

    def __init__(self, model, folder: Path):
        self.model, self.folder = model, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def predict_raw(self, x):
        import torch

        key = hashlib.sha256(x.numpy().tobytes()).hexdigest()[:24]
        f = self.folder / f"{key}.npz"
        if f.is_file():
            self.hits += 1
            z = np.load(f)
            return torch.from_numpy(z["s"]), torch.from_numpy(z["m"])
        self.misses += 1
        s, m = self.model.predict_raw(x)
        np.savez(f, s=s.numpy(), m=m.numpy())
        return s, m


def decode(path: str | Path, width: int = 192) -> list[np.ndarray]:
    from curate.media.decode import iter_frames, small_rgb

    return [cv2.cvtColor(small_rgb(df.frame, width), cv2.COLOR_RGB2BGR) for df in iter_frames(str(path))]


def spec(name: str) -> tuple[str, dict]:
    """``combined:never`` -> ("combined", {"transnet": "never"}); other names have no params."""
    kind, _, mode = name.partition(":")
    return kind, ({"transnet": mode} if mode else {})


def detect(name: str, frames: list[np.ndarray], fps: float, cache: CachedModel | None):
    from curate.analysis.detectors import build_detector
    from curate.analysis.shots import merge_boundaries

    kind, params = spec(name)
    det = build_detector(kind, params, True, fps)
    for d in getattr(det, "detectors", [det]):
        if cache is not None and getattr(d, "model", None) is not None:
            d.model = cache
    t = time.perf_counter()
    found = []
    for i, f in enumerate(frames):
        found += det.process_frame(i, f)
    found += det.post_process(len(frames) - 1)
    return merge_boundaries(found, 2), time.perf_counter() - t


def videos(seeds: list[int], shared_gt: bool) -> list[dict]:
    """Ground truth per video: path, cuts, spans, jumps, flashes, whips, frames."""
    from curate.synth_transitions import build_hard_set

    out = []
    for c in build_hard_set(OUT / "composites", seeds, MEDIA):
        out.append({"name": Path(c.path).name, "path": c.path, "cuts": c.cuts, "spans": c.spans, "n": c.num_frames,
                    "jumps": [e.start for e in c.events if e.kind == "jump"], "flashes": c.flashes, "whips": c.whips})
    if shared_gt:
        ann = SHARED / "media" / "annotations"
        gt = json.loads((ann / "bikes.gt.json").read_text())
        out.append({"name": "bikes.mp4", "path": str(MEDIA / "bikes.mp4"), "cuts": gt["cuts"], "spans": [], "n": gt["num_frames"],
                    "jumps": [], "flashes": [], "whips": []})
        gt = json.loads((ann / "composite_cuts_dissolve_fade.gt.json").read_text())
        tr = gt["transitions"]
        out.append({"name": "composite_cuts_dissolve_fade.mp4", "path": str(MEDIA / "composite_cuts_dissolve_fade.mp4"),
                    "cuts": [t["frame"] for t in tr if t["type"] == "cut"], "spans": [(t["start"], t["end"]) for t in tr if t["type"] != "cut"],
                    "n": gt["num_frames"], "jumps": [], "flashes": [], "whips": []})
    return out


def quality(detectors: list[str], vids: list[dict], cache: CachedModel | None, verbose: bool) -> dict:
    from curate.analysis.shot_eval import SplitQuality, split_quality

    res = {k: {"q": SplitQuality(), "s": 0.0, "frames": 0} for k in detectors}
    for v in vids:
        frames = decode(v["path"])
        for k in detectors:
            pred, took = detect(k, frames, 25.0, cache)
            q = split_quality(pred, v["cuts"], v["spans"], len(frames), 25.0, jumps=v["jumps"], flashes=v["flashes"], whips=v["whips"])
            r = res[k]
            r["q"], r["s"], r["frames"] = r["q"] + q, r["s"] + took, r["frames"] + len(frames)
            if verbose:
                print(f"    {v['name']:<36} {k:<14} cut {q.cut} gradual {q.gradual} flash {q.at_flash} whip {q.at_whip} "
                      f"bad clips {q.bad_clips}/{q.clips}", flush=True)
    return res


def table(title: str, res: dict) -> None:
    print(f"\n  {title}")
    print(f"  {'detector':<15}{'cut F1':>7} {'(tp,fp,fn)':<13}{'jumps':>7}{'gradual F1':>11} {'(tp,fp,fn)':<13}"
          f"{'at flash':>9}{'at whip':>8}{'bad clips':>10}{'det fps':>9}")
    for k, r in res.items():
        q = r["q"]
        print(f"  {k:<15}{q.cut_f1:7.3f} {str(tuple(q.cut)):<13}{q.jumps_found:>4}/{q.jumps:<2}{q.gradual_f1:11.3f} {str(tuple(q.gradual)):<13}"
              f"{q.at_flash:>5}/{q.flashes:<3}{q.at_whip:>4}/{q.whips:<3}{q.bad_clips:>5}/{q.clips:<4}{r['frames'] / max(r['s'], 1e-9):9.0f}")


def speed(detectors: list[str], rounds: int) -> dict:
    """Analysis stage (probe + analyse, local runner) per detector vs ffmpeg decode, wall seconds."""
    from curate.config import DetectorConfig, load_pipeline
    from curate.discover import discover
    from curate.pipeline import build_stages
    from curate.runners.local import run_local

    inputs = [looped("cockatoo.mp4", 2), looped("big_buck_bunny_5s.mp4", 4)]
    frames = sum(i.frames for i in inputs)
    base = load_pipeline(ROOT / "pipelines" / "model-free.yaml")
    t_ff, t_an = 0.0, {k: 0.0 for k in detectors}
    warm = looped("big_buck_bunny_5s.mp4", 1)
    for k in detectors:  # warm-up: weights, guard children
        kind, params = spec(k)
        cfg = base.model_copy(update={"detector": DetectorConfig(kind=kind, params=params)})
        list(run_local(build_stages(cfg)[:2], list(discover([warm.path]))))
    for r in range(rounds):
        order = ["ffmpeg", *detectors]
        for what in order if r % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            if what == "ffmpeg":
                for i in inputs:
                    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", i.path, "-f", "null", "-"], check=True)
                t_ff += time.perf_counter() - t
            else:
                kind, params = spec(what)
                cfg = base.model_copy(update={"detector": DetectorConfig(kind=kind, params=params)})
                recs = list(run_local(build_stages(cfg)[:2], list(discover([i.path for i in inputs]))))
                bad = [x.get("reason") for x in recs if x.get("status") == "failed"]
                if bad:
                    raise RuntimeError(f"analysis failed: {bad}")
                t_an[what] += time.perf_counter() - t
    print(f"\n  throughput on {', '.join(i.name for i in inputs)} ({frames} frames, 720p), {rounds} round(s):")
    print(f"  {'ffmpeg decode':<39}{frames * rounds / t_ff:8.0f} frames/s")
    out = {"ffmpeg_fps": frames * rounds / t_ff}
    for k, s in t_an.items():
        ratio = t_ff / s
        label = {"transnetv2": "TransNetV2", "combined": "combined detector",
                 "combined:never": "combined, no TransNetV2"}.get(k, k)
        print(f"  analysis pass, {label:<24}{frames * rounds / s:8.0f} frames/s   ratio {ratio:.2f} "
              f"({'PASS' if ratio >= TARGETS['speed'] else 'FAIL'} >= {TARGETS['speed']})")
        out[k] = {"fps": frames * rounds / s, "ratio": ratio}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", default="adaptive,transnetv2,combined,combined:never",
                    help="kinds; combined:never is the combined detector without TransNetV2")
    ap.add_argument("--seeds", default="", help="held-out seeds, e.g. 101-108 (default) or 101,102")
    ap.add_argument("--skip-tuning", action="store_true", help="leave out the tuning composites (seeds 1-4)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-cache", action="store_true", help="run TransNetV2 on every window, no cached outputs")
    ap.add_argument("--verbose", action="store_true", help="per-video figures")
    ap.add_argument("--json", type=Path, default=OUT / "split.json")
    args = ap.parse_args()
    if not MEDIA.is_dir():
        print(f"SKIP: shared media not found at {MEDIA}")
        return 0
    detectors = args.detectors.split(",")
    held = HELD_OUT
    if args.seeds:
        held = sorted({x for part in args.seeds.split(",") for x in (range(int(part.split("-")[0]), int(part.split("-")[1]) + 1) if "-" in part else [int(part)])})
    cache = None
    if not args.no_cache and any(k == "transnetv2" or (k == "combined" and p.get("transnet") != "never") for k, p in map(spec, detectors)):
        from curate.analysis.transnet import load_model

        cache = CachedModel(load_model(2), OUT / "transnet")
    print(f"== split-quality benchmark (issue 8) — {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} ==")
    report: dict = {}
    t0 = time.perf_counter()
    sets = [("held-out composites (seeds " + ",".join(map(str, held)) + ")", held, False), ("shared ground truth", [], True)]
    if not args.skip_tuning:
        sets.append(("tuning composites (seeds 1-4; the combined detector was developed on these)", TUNING, False))
    for title, seeds, shared in sets:
        vids = videos(seeds, shared)
        n_tr = sum(len(v["cuts"]) + len(v["spans"]) for v in vids)
        print(f"\n{title}: {len(vids)} videos, {n_tr} transitions ({sum(len(v['cuts']) for v in vids)} cuts of which "
              f"{sum(len(v['jumps']) for v in vids)} jump cuts, {sum(len(v['spans']) for v in vids)} gradual), "
              f"{sum(len(v['flashes']) for v in vids)} flashes, {sum(len(v['whips']) for v in vids)} whip pans", flush=True)
        res = quality(detectors, vids, cache, args.verbose)
        table(title, res)
        report[title] = {k: {**r["q"].__dict__, "cut_f1": r["q"].cut_f1, "gradual_f1": r["q"].gradual_f1,
                             "detector_fps": r["frames"] / max(r["s"], 1e-9)} for k, r in res.items()}
    if cache is not None:
        print(f"\n  TransNetV2 windows: {cache.misses} computed, {cache.hits} from the cache (detector fps above include cache hits)")
    if not args.skip_speed:
        try:
            report["speed"] = speed(detectors, args.rounds)
        except SharedMissing as e:
            print(f"  speed: SKIP ({e})")
    print(f"\n  targets: hard-cut F1 >= {TARGETS['cut_f1']}, gradual F1 >= {TARGETS['gradual_f1']}, no cut at a flash, "
          f"no clip holding a boundary, analysis >= {TARGETS['speed']}x ffmpeg decode ({time.perf_counter() - t0:.0f} s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
