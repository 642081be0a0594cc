"""Issue-15 benchmark: the text-overlay score's accuracy per detector input size, its speed, and its cost in the pipeline.

Needs ``../shared`` (real footage; prints SKIP otherwise). In one run it prints:

  (a) accuracy vs detector size: frames made with ``ffmpeg drawtext`` over real
      footage, set A (no text, a small corner word, bottom subtitles at
      3.5/5/6.5 % of the frame height, a full-frame slide) plus frames of
      ``slides_talk_1080p.mp4``, and set B (other backgrounds, fonts,
      colours and placements: 3 and 4.5 % subtitles, a banner, a ticker, a
      corner logo), each scored (1) at full size (the decoded frame, detector
      input = source size) and (2) as the pipeline scores it: shrunk once to
      the detector size S (longer side; the decode pass samples text frames
      at S), and for comparison as sessions 3-4 did (shrunk to the 256 px
      ``analysis.sample_width``, then resized up to 512). Per S: CPU ms per
      frame (a clip's 3 frames per call, 1 thread), mean |area(S) - area(full
      size)|, and at ``max_text_area`` the share of text frames caught and of
      clean frames dropped, per set. Full size is printed as its own row.
  (b) stage speed: frames/s of ``TextStage`` (the pipeline's stage object,
      1 CPU) on the sampled frames of real clips, at the configured size.
  (c) analysis pass: Probe + Analyse, and Probe + Analyse + Text, through the
      Ray runner, against ``ffmpeg -v error -i X -f null -`` on the same
      files (``ratio = ffmpeg seconds / pass seconds``), rounds in alternating
      order, CPU seconds of the process tree too. Every Ray pass starts its
      actor pools (worker processes, guard children, model loading): a cost
      per run, not per frame, so besides the whole pass it prints the
      throughput once the pools run: the pass over a short warm-up video
      followed by the inputs, minus a pass over the warm-up video alone
      (``steady``; target >= 0.8 with text, as Ray's own start-up is
      excluded from both).
  (d) share of a whole pipeline's stage time: the text stage's seconds over
      all stage seconds (``timings`` of every video) of the model-free
      pipeline with text, local runner.
  (e) the same for ``pipelines/default.yaml`` (TransNetV2, CLIP ViT-B-32,
      aesthetic head, captions, caption check) on the CPU: CLIP randomly
      initialised (the same compute as the real weights, which are not
      redistributable), the shared LAION head, and the aesthetic threshold and
      caption-check bands opened so clips are encoded as a real run would.

Figures go to ``bench/out/text.json``.

    python bench/bench_text.py [--rounds 1] [--sizes 256,320,384,448,512,640] [--skip-pass] [--skip-default]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import cv2
import numpy as np
from bench_pipeline import Usage, analysis_ray, by_kind, ffmpeg_decode, in_tree, load
from inputs import MEDIA, SharedMissing, looped

PIPELINE = ROOT / "pipelines" / "model-free.yaml"
OUT = ROOT / "bench" / "out"
FRAMES = OUT / "text" / "frames"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SAMPLE_WIDTH = 256  # analysis.sample_width of the shipped pipelines
TARGET = 0.8
# Backgrounds: (shared file, seconds into it); none shows text of its own (cup.mp4 does: printing on the cup)
BACKGROUNDS = [("cockatoo.mp4", 3), ("cockatoo.mp4", 10), ("bikes.mp4", 4), ("chaplin.mp4", 3), ("box.mp4", 5),
               ("big_buck_bunny_5s.mp4", 2), ("flipping_a_pancake.mkv", 5), ("vtest.avi", 20),
               ("sintel_30s.mp4", 14)]
SUBTITLE = "I never thought we would see them again"
SLIDE = ["Quarterly results", "- revenue grew in every region", "- costs fell by a tenth",
         "- new offices opened in three cities", "- hiring continues next year"]
# variant -> (label, drawtext filter chain); sizes relative to the frame height
VARIANTS = {
    "none": ("clean", "null"),
    "corner": ("clean", f"drawtext=fontfile={FONT}:text='LOGO':fontsize=h*0.03:fontcolor=white:x=w-tw-20:y=20"),
    **{f"sub{r}": ("text", f"drawtext=fontfile={FONT}:text='{SUBTITLE}':fontsize=h*0.0{r}:fontcolor=white:borderw=2:"
                           f"x=(w-tw)/2:y=h-th-h*0.06") for r in ("35", "5", "65")},
    "slide": ("text", "drawbox=x=0:y=0:w=iw:h=ih:color=white@0.9:t=fill," + ",".join(
        f"drawtext=fontfile={FONT}:text='{line}':fontsize=h*{0.09 if i == 0 else 0.055}:fontcolor=black:x=w*0.06:y=h*{0.08 + 0.14 * i}"
        for i, line in enumerate(SLIDE))),
}
TALK_TIMES = range(5, 121, 10)  # slides_talk_1080p.mp4: a slide or a screen page in every frame
# Set B (added 2026-11-26, after the detector size and shape rule were chosen on set A): other backgrounds,
# fonts, colours and placements. scene_cuts.mp4 is 1280x272: its text is small at any longer-side size.
BACKGROUNDS_B = [("tree.avi", 3), ("tree.avi", 20), ("test.webm", 2), ("fire2.mp4", 1), ("scene_cuts.mp4", 1),
                 ("scene_cuts.mp4", 6), ("big_buck_bunny_0_30.webm", 25), ("sintel_10s.mp4", 6), ("cockatoo.mp4", 7),
                 ("bikes.mp4", 8), ("box.mp4", 2), ("flipping_a_pancake.mkv", 9)]
DEJAVU = Path(FONT).parent
LINE_B = "Where are you going tonight"
VARIANTS_B = {
    "none": ("clean", "null"),
    "logo": ("clean", f"drawtext=fontfile={DEJAVU}/DejaVuSans-Bold.ttf:text='tv':fontsize=h*0.04:fontcolor=white@0.7:"
                      "x=w-tw-15:y=h-th-15"),
    "sub3": ("text", f"drawtext=fontfile={DEJAVU}/DejaVuSans-Bold.ttf:text='{LINE_B}':fontsize=h*0.03:fontcolor=yellow:"
                     "borderw=1:x=(w-tw)/2:y=h-th-h*0.05"),
    "sub45": ("text", f"drawtext=fontfile={DEJAVU}/DejaVuSerif.ttf:text='{LINE_B}':fontsize=h*0.045:fontcolor=white:"
                      "borderw=2:x=(w-tw)/2:y=h-th-h*0.08"),
    "banner": ("text", f"drawtext=fontfile={DEJAVU}/DejaVuSansCondensed.ttf:text='BREAKING  Storm reaches the coast':"
                       "fontsize=h*0.05:fontcolor=white:box=1:boxcolor=red@0.8:x=w*0.05:y=h*0.05"),
    "ticker": ("text", "drawbox=x=0:y=ih*0.88:w=iw:h=ih*0.08:color=black@0.7:t=fill,"
                       f"drawtext=fontfile={DEJAVU}/DejaVuSansMono.ttf:text='MARKETS up 1.2   OIL down 0.4   GOLD up 0.8':"
                       "fontsize=h*0.04:fontcolor=white:x=10:y=h*0.895"),
}


def _frame(src: Path, t: float, vf: str, dst: Path) -> None:
    if not dst.is_file():
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(t), "-i", str(src), "-vf", vf,
                        "-frames:v", "1", str(dst)], check=True, capture_output=True)


def frame_set() -> list[tuple[str, str, np.ndarray]]:
    """``(name, label, full-size RGB frame)``: drawtext variants over real footage, and slide-talk frames (label text);
    set B's names start with ``B/``."""
    FRAMES.mkdir(parents=True, exist_ok=True)
    (FRAMES / "B").mkdir(exist_ok=True)
    out = []
    for prefix, backgrounds, variants in (("", BACKGROUNDS, VARIANTS), ("B/", BACKGROUNDS_B, VARIANTS_B)):
        for src, t in backgrounds:
            for variant, (label, vf) in variants.items():
                dst = FRAMES / f"{prefix}{Path(src).stem}_{t}_{variant}.png"
                _frame(MEDIA / src, t, vf, dst)
                out.append((f"{prefix}{dst.stem}", label, cv2.cvtColor(cv2.imread(str(dst)), cv2.COLOR_BGR2RGB)))
    for t in TALK_TIMES:
        dst = FRAMES / f"slides_talk_{t}.png"
        _frame(MEDIA / "slides_talk_1080p.mp4", t, "null", dst)
        out.append((dst.stem, "text", cv2.cvtColor(cv2.imread(str(dst)), cv2.COLOR_BGR2RGB)))
    return out


def sampled(frame: np.ndarray, size: int | None) -> np.ndarray:
    """The frame as the decode pass hands it to the text stage: shrunk once to the detector's size (longer side),
    or with ``size`` None to the scorers' 256 px (how sessions 3-4 sampled it, before scaling it back up)."""
    h, w = frame.shape[:2]
    width = SAMPLE_WIDTH if size is None else max(SAMPLE_WIDTH, round(size * w / max(w, h)))
    return cv2.resize(frame, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def accuracy(frames: list[tuple[str, str, np.ndarray]], sizes: list[int], threshold: float) -> dict[str, Any]:
    """Part (a): every detector size against full-size detection, and against the construction labels (sets A, B)."""
    from curate.models.text_detector import TextDetector

    full, full_cpu = {}, 0.0
    for name, _, f in frames:  # the detector input = the frame's own size (rounded to 32)
        det = TextDetector(size=max(f.shape[:2]))
        t0 = time.process_time()
        full[name] = det.detect([f])[0].area
        full_cpu += time.process_time() - t0
    full_ms = 1000 * full_cpu / len(frames)
    labels = {name: label for name, label, _ in frames}

    def caught(areas: dict[str, float], in_b: bool) -> tuple[float, float]:
        mine = {n: a for n, a in areas.items() if n.startswith("B/") == in_b}
        text = [a > threshold for n, a in mine.items() if labels[n] == "text"]
        clean = [a > threshold for n, a in mine.items() if labels[n] == "clean"]
        return float(np.mean(text)), float(np.mean(clean))

    def row(areas: dict[str, float], ms: float) -> dict[str, Any]:
        (text_a, clean_a), (text_b, clean_b) = caught(areas, False), caught(areas, True)
        return {"ms_per_frame": ms, "mean_abs_diff": float(np.mean([abs(areas[n] - full[n]) for n in areas])),
                "text_caught": text_a, "clean_dropped": clean_a, "text_caught_b": text_b, "clean_dropped_b": clean_b,
                "per_frame": {n: [round(areas[n], 4), round(full[n], 4)] for n in areas}}

    rows = {"full size": row(full, full_ms)}
    for label, size, sample in [(f"{w} px", w, w) for w in sizes] + [("256 px -> 512", 512, None)]:
        det = TextDetector(size=size)
        small = {name: sampled(f, sample) for name, _, f in frames}
        det.detect([small[frames[0][0]]] * 3)  # warm-up
        areas, t0 = {}, time.process_time()
        names = list(small)
        for i in range(0, len(names), 3):  # a clip's 3 samples per call, as the stage sees them
            for n, ft in zip(names[i : i + 3], det.detect([small[n] for n in names[i : i + 3]])):
                areas[n] = ft.area
        rows[label] = row(areas, 1000 * (time.process_time() - t0) / len(names))
    return rows


def stage_speed(records: list[dict], size: int) -> dict[str, float]:
    """Part (b): frames/s of the TextStage object over the sampled frames of ``records``."""
    from curate.config import TextConfig
    from curate.stages.text import TextStage

    stage = TextStage(text=TextConfig(size=size))
    stage.start()
    try:
        stage.process(records[:1])  # warm-up
        n = sum(len(c["_frames"]) for r in records for c in r.get("clips") or [])
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(records), stage.batch_size):
            stage.process(records[i : i + stage.batch_size])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        stage.stop()
    return {"frames": n, "wall_s": wall, "cpu_s": cpu, "fps": n / wall}


def _share(label: str, stages: list, inputs: list) -> dict[str, Any]:
    """Stage seconds (the videos' ``timings``) of ``stages`` over ``inputs``, local runner, and the text stage's share."""
    from bench_pipeline import discover_all

    from curate.runners.local import run_local

    per: dict[str, float] = {}
    for r in run_local(stages, discover_all(inputs)):
        for k, v in (r.get("timings") or {}).items():
            per[k] = per.get(k, 0.0) + v
    share = per.get("text", 0.0) / sum(per.values())
    print(f"\n{label}, stage seconds (local runner): " + ", ".join(f"{k} {v:.1f}" for k, v in per.items())
          + f"; text share {share:.1%}", flush=True)
    return {"stage_s": per, "text_share": share}


def _default_on_cpu() -> Any:
    """``pipelines/default.yaml`` runnable here: see (e) in the module docstring."""
    from curate.config import load_pipeline

    cfg = load_pipeline(ROOT / "pipelines" / "default.yaml")
    head = MEDIA.parents[1] / "weights" / "laion-aesthetic" / "sa_0_4_vit_b_32_linear.pth"
    return cfg.model_copy(update={
        "clip": cfg.clip.model_copy(update={"random_init": True, "pretrained": None, "device": "cpu"}),
        "aesthetic": cfg.aesthetic.model_copy(update={"head": str(head)}),
        "filter": cfg.filter.model_copy(update={"min_aesthetic": None}),
        "caption_check": cfg.caption_check.model_copy(update={"reject_below": -1.0, "pass_min": -1.0}),
    })


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--sizes", default="256,320,384,448,512,640")
    ap.add_argument("--skip-pass", action="store_true", help="leave out (c) and (d), the Ray and whole-pipeline timings")
    ap.add_argument("--skip-default", action="store_true", help="leave out (e), the default pipeline's stage times")
    ap.add_argument("--text-cpus", type=float, help="the text stage's declared CPUs (resources.text.cpus); 0.5 or more "
                    "gives it a Ray pool of its own instead of the analysis pool's actors")
    ap.add_argument("--json", default=str(OUT / "text.json"))
    args = ap.parse_args()
    try:
        frames = frame_set()
        inputs = [] if args.skip_pass else [looped("cockatoo.mp4", 6), looped("big_buck_bunny_5s.mp4", 8),
                                            looped("slides_talk_1080p.mp4", 1)]
    except (SharedMissing, FileNotFoundError) as e:
        print(f"SKIP: {e}")
        return 0

    from curate.config import TextConfig, load_pipeline
    from curate.pipeline import build_stages

    base = load_pipeline(PIPELINE)
    cfg = base if base.text is not None else base.model_copy(update={"text": TextConfig()})
    if args.text_cpus is not None:
        cfg = cfg.model_copy(update={"resources": {**cfg.resources, "text": {"cpus": args.text_cpus}}})
    size = cfg.text.size
    threshold = cfg.filter.max_text_area if cfg.filter.max_text_area is not None else 0.02
    res: dict[str, Any] = {"cpus": os.cpu_count(), "load_start": load(), "size": size, "threshold": threshold,
                           "text_cpus": args.text_cpus}
    print(f"== text-overlay benchmark (issue 15) — {os.cpu_count()} CPUs, load average {load()} ==")

    sizes = [int(w) for w in args.sizes.split(",")]
    print(f"\n(a) accuracy vs detector size: {len(frames)} frames ({sum(l == 'text' for _, l, _ in frames)} with text: "
          f"set A subtitles 3.5/5/6.5 % of the height, slides, slide talk; set B subtitles 3/4.5 %, a banner, a ticker; "
          f"{sum(l == 'clean' for _, l, _ in frames)} clean: none or a corner word), threshold max_text_area {threshold:g}",
          flush=True)
    rows = accuracy(frames, sizes, threshold)
    print(f"  {'detector input':<18}{'CPU ms/fr':>9}{'|Δarea| vs full':>17}{'A: text caught':>16}{'clean dropped':>15}"
          f"{'B: text caught':>16}{'clean dropped':>15}")
    for k, r in rows.items():
        mark = "  <- configured" if k == f"{size} px" else "  (sessions 3-4: the 256 px sample scaled up)" if "->" in k else ""
        print(f"  {k:<18}{r['ms_per_frame']:9.1f}{r['mean_abs_diff']:17.4f}{r['text_caught']:16.0%}{r['clean_dropped']:15.0%}"
              f"{r['text_caught_b']:16.0%}{r['clean_dropped_b']:15.0%}{mark}")
    res["a"] = rows
    if args.skip_pass:
        return _save(res, args.json)

    import ray

    from curate.runners.local import run_local
    from curate.runners.ray import init_ray

    os.environ["RAY_TMPDIR"] = ray_tmp = tempfile.mkdtemp(prefix="cbt", dir="/tmp")
    os.environ.pop("RAY_ADDRESS", None)
    stages = build_stages(cfg)
    analysis, with_text = stages[:2], stages[:3]
    assert [s.name for s in with_text] == ["probe", "analyse", "text"], [s.name for s in with_text]
    total_f = sum(i.frames for i in inputs)
    warm = looped("bikes.mp4", 1)  # a short real video of its own: the pools start and warm up on it
    print("\ninputs: " + "; ".join(i.describe().split("  (")[0].split()[0] + f" {i.duration_s:.0f} s" for i in inputs)
          + f"; {total_f} frames")

    # (b) on the records of an in-process analysis pass
    from bench_pipeline import discover_all

    records = [r for r in run_local(analysis, discover_all(inputs))]
    sp = stage_speed(records, size)
    print(f"\n(b) TextStage at size {size} on the sampled frames of {sum(len(r['clips']) for r in records)} clips: "
          f"{sp['frames']} frames in {sp['wall_s']:.2f} s = {sp['fps']:.0f} frames/s; {sp['cpu_s']:.2f} CPU s = "
          f"{sp['frames'] / sp['cpu_s']:.0f} frames per CPU second")
    res["b"] = sp

    # (c) analysis pass with and without text, Ray runner, vs ffmpeg
    print(f"\n(c) analysis pass vs `ffmpeg -i X -f null -`, Ray runner, {args.rounds} round(s) in alternating order ...", flush=True)
    ray_init_s = init_ray()
    # Ray's first tasks start its worker processes (about 2 CPU-s of imports): part of Ray's start-up, not of a pass
    t = time.perf_counter()
    analysis_ray(analysis, [warm])
    ray_init_s += time.perf_counter() - t
    print(f"  Ray start-up and a first pass {ray_init_s:.2f} s (excluded); warm-up video {warm.describe().split()[0]} "
          f"({warm.frames} frames)")
    dec = Usage()
    passes = {(name, w): Usage() for name in ("plain", "text") for w in ("whole", "warm")}
    chains = {"plain": analysis, "text": with_text}

    def do_ffmpeg() -> None:
        for i in inputs:
            dec.__iadd__(ffmpeg_decode(i))

    def do_pass(name: str, which: str) -> None:
        videos = [warm, *inputs] if which == "whole" else [warm]
        passes[name, which].__iadd__(in_tree(lambda: analysis_ray(chains[name], videos), ray_tmp)[1])

    steps = [("ffmpeg decode", do_ffmpeg)] + [
        (f"probe+analyse{'+text' if name == 'text' else ''} ({'warm-up + inputs' if which == 'whole' else 'warm-up only'})",
         lambda name=name, which=which: do_pass(name, which)) for name in ("plain", "text") for which in ("whole", "warm")]
    for r in range(args.rounds):
        for label, fn in steps if r % 2 == 0 else steps[::-1]:
            t = time.perf_counter()
            fn()
            print(f"  round {r + 1}: {label:<45}{time.perf_counter() - t:7.1f} s   (load {load()})", flush=True)
    ray.shutdown()
    frames = total_f * args.rounds
    print(f"  {'':<34}{'wall s':>8}{'frames/s':>10}{'CPU s':>8}{'ratio(wall)':>13}{'ratio(CPU)':>12}")
    print(f"  {'ffmpeg decode':<34}{dec.wall_s:8.1f}{frames / dec.wall_s:10.0f}{dec.cpu_s:8.1f}")
    res["c"] = {"rounds": args.rounds, "frames": frames, "ray_init_s": ray_init_s, "warm_up_frames": warm.frames,
                "ffmpeg": {"wall_s": dec.wall_s, "cpu_s": dec.cpu_s}}
    for name, label in (("plain", "probe+analyse"), ("text", "probe+analyse+text")):
        whole, alone = passes[name, "whole"], passes[name, "warm"]
        steady_wall, steady_cpu = whole.wall_s - alone.wall_s, whole.cpu_s - alone.cpu_s
        print(f"  {label:<34}{whole.wall_s:8.1f}{'':>10}{whole.cpu_s:8.1f}   (whole pass, warm-up video and pool start-up included)")
        print(f"    CPU s by process: {by_kind(whole)}")
        print(f"  {'  steady (minus warm-up pass)':<34}{steady_wall:8.1f}{frames / steady_wall:10.0f}{steady_cpu:8.1f}"
              f"{dec.wall_s / steady_wall:13.2f}{dec.cpu_s / steady_cpu:12.2f}")
        res["c"][name] = {"whole": {"wall_s": whole.wall_s, "cpu_s": whole.cpu_s},
                          "warm_up_only": {"wall_s": alone.wall_s, "cpu_s": alone.cpu_s},
                          "steady": {"wall_s": steady_wall, "cpu_s": steady_cpu},
                          "ratio": dec.wall_s / steady_wall, "ratio_cpu": dec.cpu_s / steady_cpu}
    res["c"]["ratio"] = res["c"]["text"]["ratio"]
    res["c"]["ratio_without_text"] = res["c"]["plain"]["ratio"]

    # (d) the text stage's share of a whole pipeline's stage time
    res["d"] = _share("(d) model-free pipeline", stages, inputs)
    if not args.skip_default:
        res["e"] = _share("(e) default pipeline (CPU, CLIP random init)", build_stages(_default_on_cpu()), inputs)

    print("\nsummary")
    print(f"  text stage at {size} px: {sp['fps']:.0f} frames/s on 1 CPU ({sp['frames'] / sp['cpu_s']:.0f} per CPU s); "
          f"steady analysis pass with text / ffmpeg decode {res['c']['ratio']:.2f} (target >= {TARGET}) "
          f"{'PASS' if res['c']['ratio'] >= TARGET else 'FAIL'}; without text {res['c']['ratio_without_text']:.2f}")
    return _save(res, args.json)


def _save(res: dict[str, Any], path: str) -> int:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(res, indent=1, default=float))
    print(f"figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
