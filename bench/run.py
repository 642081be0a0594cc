"""Run the benchmarks one after another, each in its own process (``make bench``).

Each benchmark runs as a subprocess so memory, threads and an embedded Ray
never leak from one into the next; its output streams through as it comes.
The exit status is non-zero only when a benchmark failed to run (crashed or
exited non-zero); a ratio that misses its target is printed, not an error.

    python bench/run.py                 # pipeline, loader, clip, split, latents, run_latents, dedup, text, driver, long
    python bench/run.py --only loader   # one of them; extra args go to it:
    python bench/run.py --only pipeline -- --rounds 1 --skip-memory
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {
    "pipeline": "bench_pipeline.py",  # issue 2: analysis/run vs ffmpeg, split vs scenedetect, TransNetV2, memory
    "loader": "bench_loader.py",  # trainer loader vs raw PyAV and torchcodec decode
    "clip": "bench_clip.py",  # CLIP embedding stage vs a bare forward pass
    "split": "bench_split.py",  # issue 8: split quality on hard composites, detectors' analysis fps
    "latents": "bench_latents.py",  # issue 10: loader from stored latents vs pixels vs pixels + VAE encode
    "run_latents": "bench_run_latents.py",  # issue 10: latents in curate run (frame tap) vs the curate latents pass
    "dedup": "bench_dedup.py",  # issue 12: distributed vs single-machine dedup, identical kept sets
    "text": "bench_text.py",  # issue 15: text score accuracy per detector width, frames/s, cost in the analysis pass
    "driver": "bench_driver.py",  # issue 12: driver memory and overhead at 1k-100k inputs, bytes to the driver, 2 nodes vs 1
    "long": "bench_long_source.py",  # issue 12: memory of analyse and of encode + writer on one long source, with/without clip pieces
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(BENCHES), action="append", help="run just this benchmark (repeatable)")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="after --: arguments for the benchmark (with one --only)")
    args = ap.parse_args()
    names = args.only or list(BENCHES)
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    if extra and len(names) != 1:
        ap.error("extra arguments need exactly one --only")
    failed, took = [], {}
    for name in names:
        print(f"\n######## {name}: {BENCHES[name]} ########", flush=True)
        t = time.perf_counter()
        try:
            rc = subprocess.call([sys.executable, str(HERE / BENCHES[name]), *extra], cwd=HERE.parent)
        except KeyboardInterrupt:
            print(f"\n{name}: interrupted", flush=True)
            return 130
        took[name] = time.perf_counter() - t
        if rc != 0:
            failed.append(name)
            print(f"######## {name}: FAILED TO RUN (exit status {rc}) ########", flush=True)
    print("\n######## benchmarks: " + ", ".join(f"{n} {'failed to run' if n in failed else 'ran'} ({took[n]:.0f} s)" for n in names))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
