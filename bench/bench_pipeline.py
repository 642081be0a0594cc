"""Issue-2 benchmark: the model-free pipeline against ffmpeg/PySceneDetect references, plus peak memory.

Inputs (bench/inputs.py): real 720p and 1080p footage looped with stream copy,
>= 5 minutes in all, and a real 360p clip looped to 2 and to 20 minutes.
In one run it prints:

  (a) analysis pass: the pipeline's Probe + Analyse stage objects (default
      detector of model-free.yaml; shots, motion, technical scores, samples)
      through the Ray runner over the whole set, against
      ``ffmpeg -v error -i X -f null -`` on the same files.
      ratio = ffmpeg time / analysis time (a throughput ratio, aggregate over
      the set); Ray start-up is excluded and printed on its own line.
      The in-process (local runner) pass is shown for reference.
  (b) whole run: ``run_pipeline(..., runner="ray")`` into a fresh OUTPUT
      (wall minus Ray start-up; with it too) against, per input, one ffmpeg
      command that decodes the whole file and encodes the kept frames once
      with the pipeline's encoder settings (libx264, crf/preset of the YAML,
      scale to max_height, yuv420p, no audio); kept frames are the spans of
      the run's ``clips`` table.  ratio = reference time / run time.
  (c) split: shot detection cannot run on its own, so the whole in-process
      analysis pass is compared with ``scenedetect -i X detect-adaptive``
      (CLI, default downscale).  ratio = scenedetect time / ours.
  (d) TransNetV2: frames/s of the analysis pass with ``detector.kind:
      transnetv2`` on ~60 s of the 720p footage.
  memory: ``python -m curate run`` (Ray runner) as a subprocess on the 2- and
      20-minute inputs; peak of the summed PSS (RSS where PSS is unreadable)
      of the subprocess, all its descendants and every process whose command
      line names this run's Ray temp dir.  ratio = peak(20 min) / peak(2 min).

Timings are wall clock (the issue's throughput) and also CPU seconds of the
whole process tree, which other load on the machine barely moves: rounds
alternate their order so load hits every side alike, and the load average is
printed.  Figures go to bench/out/pipeline.json.

    python bench/bench_pipeline.py [--rounds 2] [--skip-memory] [--skip-transnet]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psutil
from inputs import MEDIA, Input, SharedMissing, looped, memory_inputs, speed_inputs

PIPELINE = ROOT / "pipelines" / "model-free.yaml"
OUT = ROOT / "bench" / "out"
TARGETS = {"analysis": 0.8, "run": 0.8, "memory": 1.2}


# --- measuring ----------------------------------------------------------------


@dataclasses.dataclass
class Usage:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_mem: int = 0  # bytes, summed over the tree at the worst sample
    peak_procs: dict[str, int] = dataclasses.field(default_factory=dict)  # kind -> bytes at the peak
    peak_top: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)  # (kind, pid, bytes) at the peak
    cpu_by_kind: dict[str, float] = dataclasses.field(default_factory=dict)
    samples: int = 0
    procs_seen: int = 0
    reparented: int = 0  # matched by Ray temp dir only, not a descendant

    def __iadd__(self, o: Usage) -> Usage:
        self.wall_s += o.wall_s
        self.cpu_s += o.cpu_s
        for k, v in o.cpu_by_kind.items():
            self.cpu_by_kind[k] = self.cpu_by_kind.get(k, 0.0) + v
        self.peak_mem = max(self.peak_mem, o.peak_mem)
        return self


def _kind(p: psutil.Process, cmd: list[str]) -> str:
    """A short label for a process of the tree (for the per-kind breakdowns)."""
    name, line = p.name(), " ".join(cmd)
    if name in ("raylet", "gcs_server"):
        return name
    if "curate.guard" in line:
        return "guard child"
    if name.startswith("ray::"):
        if name.startswith("ray::MapWorker") or "_StageActor" in name:
            return "ray stage actor"
        if name.startswith("ray::IDLE"):
            return "ray idle worker"
        if "Agent" in name or "Tracker" in name:
            return "ray agent"
        return "ray worker"
    if "/ray/" in line:
        return "ray aux"
    if name.startswith("python") or "curate" in line:
        return "driver"
    return name


class TreeMonitor:
    """Samples a process tree in a thread: CPU seconds per process and the peak summed memory.

    The tree is ``root`` and all its descendants, plus every process whose
    command line contains ``match`` (this run's Ray temp dir), in case Ray
    re-parents a process. CPU of a process that exits between two samples is
    counted up to its last sample (interval: ``every`` seconds).
    """

    def __init__(self, root: int, match: str | None = None, every: float = 0.25, memory: bool = True):
        self.root, self.match, self.every, self.memory = root, match, every, memory
        self._cpu0: dict[tuple[int, float], float] = {}
        self._cpu: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.usage = Usage()
        self._kinds: dict[tuple[int, float], str] = {}

    def _procs(self) -> tuple[list[psutil.Process], int]:
        try:
            r = psutil.Process(self.root)
            procs = {p.pid: p for p in [r, *r.children(recursive=True)]}
        except psutil.NoSuchProcess:
            procs = {}
        extra = 0
        if self.match:
            for p in psutil.process_iter(["cmdline"]):
                if p.pid not in procs and any(self.match in a for a in (p.info["cmdline"] or [])):
                    procs[p.pid] = p
                    extra += 1
        return list(procs.values()), extra

    def _sample(self, first: bool = False) -> None:
        procs, extra = self._procs()
        total, by_kind, each = 0, {}, []
        for p in procs:
            try:
                with p.oneshot():
                    key = (p.pid, p.create_time())
                    t = p.cpu_times()
                    cpu = t.user + t.system
                    # re-read every time: a Ray worker renames itself (ray::IDLE, ray::MapWorker...) after
                    # start; an exiting process shows no command line, then its last label stays
                    cmd = p.cmdline()
                    if cmd or key not in self._kinds:
                        self._kinds[key] = _kind(p, cmd)
                    mem = 0
                    if self.memory:
                        try:
                            mem = p.memory_full_info().pss
                        except (psutil.AccessDenied, AttributeError):
                            mem = p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            if first:
                self._cpu0[key] = cpu
            self._cpu[key] = cpu
            total += mem
            k = self._kinds[key]
            each.append((k, p.pid, mem))
            by_kind[k] = by_kind.get(k, 0) + mem
        u = self.usage
        u.samples += 1
        u.reparented = max(u.reparented, extra)
        if total > u.peak_mem:
            u.peak_mem, u.peak_procs, u.peak_top = total, by_kind, sorted(each, key=lambda e: -e[2])

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> TreeMonitor:
        self._sample(first=True)
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.usage.wall_s = time.perf_counter() - self._t0
        self._sample()
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.usage.cpu_s = sum(c - self._cpu0.get(k, 0.0) for k, c in self._cpu.items())
        for k, c in self._cpu.items():
            kind = self._kinds[k]
            self.usage.cpu_by_kind[kind] = self.usage.cpu_by_kind.get(kind, 0.0) + c - self._cpu0.get(k, 0.0)
        self.usage.procs_seen = len(self._cpu)


def run_cmd(cmd: list[str], **kw: Any) -> Usage:
    """Run ``cmd`` to completion: wall seconds and its CPU seconds (from wait4, children included)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    err = proc.stderr.read() if proc.stderr else b""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {' '.join(cmd)}\n{err.decode(errors='replace')[-2000:]}")
    return Usage(wall_s=wall, cpu_s=ru.ru_utime + ru.ru_stime)


def in_tree(fn: Callable[[], Any], match: str | None) -> tuple[Any, Usage]:
    with TreeMonitor(os.getpid(), match=match, memory=False) as m:
        out = fn()
    return out, m.usage


def load() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"


def by_kind(u: Usage) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in sorted(u.cpu_by_kind.items(), key=lambda kv: -kv[1]) if v >= 0.05)


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


# --- the pieces -----------------------------------------------------------------


def ffmpeg_decode(inp: Input) -> Usage:
    return run_cmd(["ffmpeg", "-nostdin", "-v", "error", "-i", inp.path, "-f", "null", "-"])


def scenedetect(inp: Input) -> Usage:
    # -q only silences logging and the progress bar; detection is the CLI default (auto downscale)
    return run_cmd(["scenedetect", "-q", "-i", inp.path, "detect-adaptive"])


def discover_all(inputs: list[Input]) -> list[dict]:
    from curate.discover import discover

    return list(discover([i.path for i in inputs]))


def check(records: list[dict], stage: str) -> list[dict]:
    bad = [r for r in records if r.get("status") not in ("pending", "done")]
    if bad:
        raise RuntimeError(f"{stage}: {len(bad)} video(s) not processed: " + "; ".join(f"{r['uri']}: {r.get('status')} {r.get('reason')}" for r in bad))
    return records


def analysis_local(stages: list, inputs: list[Input]) -> tuple[list[dict], list[float]]:
    """The analysis stages in this process (local runner); per-video wall seconds as they finish."""
    from curate.runners.local import run_local

    videos = discover_all(inputs)
    out, per, t = [], [], time.perf_counter()
    for rec in run_local(stages, videos):
        now = time.perf_counter()
        out.append(rec)
        per.append(now - t)
        t = now
    return check(out, "local analysis"), per


def analysis_ray(stages: list, inputs: list[Input]) -> list[dict]:
    from curate.runners.ray import run_ray

    return check(list(run_ray(stages, discover_all(inputs))), "ray analysis")


def kept_spans(output: str) -> tuple[dict[str, list[tuple[int, int]]], int, int]:
    """``({source_uri: [(start_frame, end_frame), ...]}, n_clips, n_dedup)``: the clips the run encoded.

    That is every row of the ``clips`` table, plus the rows the run-wide dedup
    pass (which runs after the encode stage) moved to ``rejected`` with only a
    ``duplicate_of`` reason: they passed the filter and were encoded too.
    """
    import pyarrow.dataset as ds

    from curate.dedup import DUPLICATE_KEYS

    spans: dict[str, list[tuple[int, int]]] = {}
    n = dup = 0
    for table in ("clips", "rejected"):
        d = Path(output) / table
        if not d.is_dir() or not any(d.glob("*.parquet")):
            continue
        dset = ds.dataset(str(d), format="parquet")
        cols = ["source_uri", "start_frame", "end_frame"] + (["reject_reasons"] if table == "rejected" else [])
        if table == "rejected" and "duplicate_of" not in dset.schema.names:
            continue
        for row in dset.to_table(columns=cols).to_pylist():
            if table == "rejected":
                reasons = row["reject_reasons"] or []
                if not reasons or not all(r["key"] in DUPLICATE_KEYS for r in reasons):
                    continue
                dup += 1
            n += 1
            spans.setdefault(row["source_uri"], []).append((row["start_frame"], row["end_frame"]))
    return {k: sorted(v) for k, v in spans.items()}, n, dup


def reference_cmd(inp: Input, spans: list[tuple[int, int]], cfg: Any, dst: Path) -> list[str]:
    """ffmpeg: decode all of ``inp``, encode its kept frames once with the pipeline's encoder settings."""
    from curate.media.encode import output_size

    if not spans:
        return ["ffmpeg", "-nostdin", "-v", "error", "-i", inp.path, "-f", "null", "-"]
    w, h = output_size(inp.width, inp.height, 0, cfg.encode.max_height)
    sel = "+".join(f"between(n,{a},{b - 1})" for a, b in spans)
    vf = f"select='{sel}'" + (f",scale={w}:{h}" if (w, h) != (inp.width, inp.height) else "") + ",format=yuv420p"
    return ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", inp.path, "-an", "-vf", vf, "-fps_mode", "passthrough",
            "-c:v", "libx264", "-preset", cfg.encode.preset, "-crf", str(cfg.encode.crf), "-pix_fmt", "yuv420p", str(dst)]


def memory_run(inp: Input, out_dir: Path) -> dict[str, Any]:
    """``python -m curate run`` on ``inp`` as a subprocess, sampling its whole process tree."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="cbm", dir="/tmp"))  # short: Ray's socket paths must stay < 108 chars
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "COLUMNS": "250"}  # COLUMNS: rich must not wrap the summary
    env.pop("RAY_ADDRESS", None)
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "curate", "run", str(PIPELINE), "--input", inp.path, "--output", str(out_dir)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with TreeMonitor(proc.pid, match=str(ray_tmp), every=0.25) as mon:
        log = proc.communicate()[0].decode(errors="replace")
    shutil.rmtree(ray_tmp, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"curate run failed ({proc.returncode}) on {inp.name}:\n{log[-3000:]}")
    summary = next((ln.strip() for ln in log.splitlines() if ln.startswith("run ")), "")
    u = mon.usage
    return {"input": inp.name, "duration_s": inp.duration_s, "peak_bytes": u.peak_mem, "wall_s": u.wall_s, "cpu_s": u.cpu_s,
            "samples": u.samples, "processes": u.procs_seen, "reparented_ray_processes": u.reparented,
            "peak_by_kind": dict(sorted(u.peak_procs.items(), key=lambda kv: -kv[1])), "peak_processes": u.peak_top,
            "cpu_by_kind": u.cpu_by_kind, "summary": summary}


# --- main -----------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (a)/(c) and of (b), alternating order")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-transnet", action="store_true")
    ap.add_argument("--json", type=Path, default=OUT / "pipeline.json")
    args = ap.parse_args()

    try:
        inputs = speed_inputs()
        mem_inputs = {} if args.skip_memory else memory_inputs()
        tn_inputs = [] if args.skip_transnet else [looped("cockatoo.mp4", 3), looped("big_buck_bunny_5s.mp4", 4)]
    except SharedMissing as e:
        print(f"SKIP: {e}")
        return 0

    from curate.config import DetectorConfig, load_pipeline
    from curate.pipeline import build_stages
    from curate.run import run_pipeline

    t_start = time.perf_counter()
    cfg = load_pipeline(PIPELINE)
    ray_tmp = tempfile.mkdtemp(prefix="cbp", dir="/tmp")
    os.environ["RAY_TMPDIR"] = ray_tmp  # this process's Ray lives here (and its processes name it)
    os.environ.pop("RAY_ADDRESS", None)
    res: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_start": load()}}
    print(f"== pipeline benchmark (issue 2) — {os.cpu_count()} CPUs, load average {load()} ==")
    print(f"pipeline {PIPELINE.relative_to(ROOT)}: detector {cfg.detector.kind} (fades {cfg.detector.fades}), "
          f"encode libx264 crf {cfg.encode.crf} preset {cfg.encode.preset} max_height {cfg.encode.max_height}")
    print("benchmark inputs (real footage looped with stream copy, bench/out/inputs/):")
    for i in inputs:
        print("  " + i.describe())
    total_s, total_f = sum(i.duration_s for i in inputs), sum(i.frames for i in inputs)
    print(f"  total {total_s:.1f} s, {total_f} frames")
    res["inputs"] = [dataclasses.asdict(i) for i in inputs]

    # ---- (a) analysis pass vs ffmpeg decode, and (c) vs scenedetect ---------------------
    stages = build_stages(cfg)[:2]
    names = [i.name for i in inputs]
    dec = {n: Usage() for n in names}
    sd = {n: Usage() for n in names}
    loc = {n: 0.0 for n in names}
    ray_u, loc_u = Usage(), Usage()
    from curate.runners.ray import init_ray

    ray_init_s = None
    print(f"\n(a)/(c) analysis pass, {args.rounds} round(s) in alternating order ...", flush=True)
    for r in range(args.rounds):
        def do_ffmpeg() -> None:
            for i in inputs:
                dec[i.name] += ffmpeg_decode(i)

        def do_ray() -> None:
            nonlocal ray_init_s
            if ray_init_s is None:
                ray_init_s = init_ray()
                print(f"  Ray start-up (ray.init, embedded): {ray_init_s:.2f} s — excluded from (a)", flush=True)
            recs, u = in_tree(lambda: analysis_ray(stages, inputs), ray_tmp)
            nonlocal ray_u
            ray_u += u
            res.setdefault("analysis_clips", {r["uri"]: len(r.get("clips") or []) for r in recs})

        def do_local() -> None:
            (recs, per), u = in_tree(lambda: analysis_local(stages, inputs), ray_tmp)
            nonlocal loc_u
            loc_u += u
            for rec, s in zip(recs, per):
                loc[Path(rec["uri"]).name] += s

        def do_scenedetect() -> None:
            for i in inputs:
                sd[i.name] += scenedetect(i)

        steps = [("ffmpeg decode", do_ffmpeg), ("analysis (ray)", do_ray), ("analysis (local)", do_local), ("scenedetect", do_scenedetect)]
        for label, fn in steps if r % 2 == 0 else steps[::-1]:
            t = time.perf_counter()
            fn()
            print(f"  round {r + 1}: {label:<17} {time.perf_counter() - t:6.1f} s   (load {load()})", flush=True)

    dec_wall, dec_cpu = sum(u.wall_s for u in dec.values()), sum(u.cpu_s for u in dec.values())
    sd_wall, sd_cpu = sum(u.wall_s for u in sd.values()), sum(u.cpu_s for u in sd.values())
    frames = total_f * args.rounds
    a_ratio = dec_wall / ray_u.wall_s
    print(f"\n(a) analysis pass (probe+analyse, detector {cfg.detector.kind}) vs `ffmpeg -i X -f null -`, {args.rounds} round(s), all inputs:")
    print(f"  Ray start-up time: {ray_init_s:.2f} s (once, not in the figures below)")
    print(f"  {'':<26}{'wall s':>8}{'frames/s':>10}{'CPU s':>8}{'ratio(wall)':>13}{'ratio(CPU)':>12}")
    print(f"  {'ffmpeg decode':<26}{dec_wall:8.1f}{frames / dec_wall:10.0f}{dec_cpu:8.1f}{'':>13}{'':>12}")
    print(f"  {'analysis, Ray runner':<26}{ray_u.wall_s:8.1f}{frames / ray_u.wall_s:10.0f}{ray_u.cpu_s:8.1f}{a_ratio:13.2f}{dec_cpu / ray_u.cpu_s:12.2f}")
    print(f"  {'analysis, local runner':<26}{loc_u.wall_s:8.1f}{frames / loc_u.wall_s:10.0f}{loc_u.cpu_s:8.1f}{dec_wall / loc_u.wall_s:13.2f}{dec_cpu / loc_u.cpu_s:12.2f}")
    print(f"  CPU s by process, Ray runner: {by_kind(ray_u)}")
    print(f"  CPU s by process, local runner: {by_kind(loc_u)}")
    print("  per input (wall s, summed over rounds):  ffmpeg decode | analysis local | ratio")
    for i in inputs:
        print(f"    {i.name:<30} {i.label:>5}  {dec[i.name].wall_s:7.1f} | {loc[i.name]:7.1f} | {dec[i.name].wall_s / loc[i.name]:.2f}")
    res["a"] = {"ray_init_s": ray_init_s, "rounds": args.rounds, "frames": frames,
                "ffmpeg_decode": {"wall_s": dec_wall, "cpu_s": dec_cpu, "per_input_wall_s": {k: v.wall_s for k, v in dec.items()}},
                "analysis_ray": {"wall_s": ray_u.wall_s, "cpu_s": ray_u.cpu_s, "cpu_by_kind": ray_u.cpu_by_kind},
                "analysis_local": {"wall_s": loc_u.wall_s, "cpu_s": loc_u.cpu_s, "per_input_wall_s": loc, "cpu_by_kind": loc_u.cpu_by_kind},
                "ratio": a_ratio, "ratio_cpu": dec_cpu / ray_u.cpu_s, "ratio_local": dec_wall / loc_u.wall_s}

    c_ratio = sd_wall / loc_u.wall_s
    print("\n(c) split: analysis pass (local runner, in-process; shots+motion+scores+samples) vs `scenedetect -i X detect-adaptive`:")
    print(f"  {'scenedetect CLI':<26}{sd_wall:8.1f} s wall {frames / sd_wall:6.0f} frames/s  {sd_cpu:6.1f} CPU s")
    print(f"  {'analysis, local runner':<26}{loc_u.wall_s:8.1f} s wall {frames / loc_u.wall_s:6.0f} frames/s  {loc_u.cpu_s:6.1f} CPU s")
    print(f"  ratio scenedetect/ours: {c_ratio:.2f} (wall), {sd_cpu / loc_u.cpu_s:.2f} (CPU)")
    for i in inputs:
        print(f"    {i.name:<30} scenedetect {sd[i.name].wall_s:6.1f} s | ours {loc[i.name]:6.1f} s | {sd[i.name].wall_s / loc[i.name]:.2f}")
    res["c"] = {"scenedetect": {"wall_s": sd_wall, "cpu_s": sd_cpu, "per_input_wall_s": {k: v.wall_s for k, v in sd.items()}},
                "ours_local": {"wall_s": loc_u.wall_s, "cpu_s": loc_u.cpu_s}, "ratio": c_ratio, "ratio_cpu": sd_cpu / loc_u.cpu_s}

    import ray

    ray.shutdown()  # (b) starts its own Ray, as a real run does

    # ---- (b) whole run vs ffmpeg decode + encode of the kept frames ---------------------
    print(f"\n(b) whole model-free run (Ray runner) vs ffmpeg decode-all + encode-kept, {args.rounds} round(s) ...", flush=True)
    run_wall = run_init = run_cpu = ref_wall = ref_cpu = 0.0
    run_u = Usage()
    spans: dict[str, list[tuple[int, int]]] = {}
    encoded = (0, 0)
    runs = []
    for r in range(args.rounds):
        out_dir = OUT / f"run-{r}"
        shutil.rmtree(out_dir, ignore_errors=True)

        def do_run(out_dir: Path = out_dir, r: int = r) -> None:
            nonlocal run_wall, run_init, run_cpu, spans, encoded
            summary, u = in_tree(lambda: run_pipeline(cfg, [i.path for i in inputs], str(out_dir), runner="ray"), ray_tmp)
            if summary.status.get("done", 0) != len(inputs):
                raise RuntimeError(f"run: not every input done: {summary.status}")
            run_wall += summary.wall_s
            run_init += summary.ray_init_s
            run_cpu += u.cpu_s
            run_u.__iadd__(u)
            spans, *enc = kept_spans(str(out_dir))
            encoded = tuple(enc)
            runs.append({"wall_s": summary.wall_s, "ray_init_s": summary.ray_init_s, "cpu_s": u.cpu_s,
                         "clips": summary.clips, "kept": summary.accepted})
            print(f"  round {r + 1}: run {summary.wall_s:6.1f} s (Ray start-up {summary.ray_init_s:.2f} s), "
                  f"clips kept {summary.accepted}/{summary.clips}   (load {load()})", flush=True)

        def do_ref(r: int = r) -> None:
            nonlocal ref_wall, ref_cpu
            t = time.perf_counter()
            for i in inputs:
                u = run_cmd(reference_cmd(i, spans.get(i.path, []), cfg, OUT / f"ref-{i.name}"))
                ref_wall += u.wall_s
                ref_cpu += u.cpu_s
            print(f"  round {r + 1}: ffmpeg reference {time.perf_counter() - t:6.1f} s   (load {load()})", flush=True)

        # the reference needs the kept spans: round 1 runs first, later rounds alternate
        for fn in ([do_run, do_ref] if r % 2 == 0 or not spans else [do_ref, do_run]):
            fn()
    for i in inputs:
        (OUT / f"ref-{i.name}").unlink(missing_ok=True)
    kept_f = sum(b - a for v in spans.values() for a, b in v)
    b_ratio = ref_wall / (run_wall - run_init)
    print(f"  encoded clips {encoded[0]} ({encoded[1]} of them later dropped by the run-wide dedup), "
          f"frames {kept_f} of {total_f} ({100 * kept_f / total_f:.0f}%); per input: "
          + ", ".join(f"{Path(k).name} {sum(b - a for a, b in v)}" for k, v in spans.items()))
    print(f"  {'':<34}{'wall s':>8}{'CPU s':>8}{'ratio(wall)':>13}{'ratio(CPU)':>12}")
    print(f"  {'ffmpeg decode+encode reference':<34}{ref_wall:8.1f}{ref_cpu:8.1f}")
    print(f"  {'run, without Ray start-up':<34}{run_wall - run_init:8.1f}{run_cpu:8.1f}{b_ratio:13.2f}{ref_cpu / run_cpu:12.2f}")
    print(f"  {'run, with Ray start-up':<34}{run_wall:8.1f}{'':>8}{ref_wall / run_wall:13.2f}")
    print(f"  Ray start-up inside the runs: {run_init:.2f} s")
    print(f"  CPU s by process, runs: {by_kind(run_u)}")
    res["b"] = {"runs": runs, "run_wall_s": run_wall, "ray_init_s": run_init, "run_cpu_s": run_cpu, "ref_wall_s": ref_wall,
                "ref_cpu_s": ref_cpu, "kept_frames": kept_f, "total_frames": total_f, "ratio": b_ratio,
                "ratio_with_ray_init": ref_wall / run_wall, "ratio_cpu": ref_cpu / run_cpu,
                "run_cpu_by_kind": run_u.cpu_by_kind}
    ray.shutdown()

    # ---- (d) TransNetV2 ---------------------------------------------------------------
    if tn_inputs:
        tcfg = cfg.model_copy(update={"detector": DetectorConfig(kind="transnetv2", fades=cfg.detector.fades)})
        tstages = build_stages(tcfg)[:2]
        print(f"\n(d) TransNetV2 analysis pass (local runner) on {', '.join(i.name for i in tn_inputs)} ...", flush=True)
        from curate.discover import discover

        # The stages run guarded: their child process starts and loads the weights on the first
        # video. A warm-up on the 5 s source keeps that out of the timing (run_local would stop
        # the children after each call, so the videos are pushed through the stages here).
        def push(videos: list[dict]) -> list[dict]:
            out = []
            for v in videos:
                batch = [v]
                for s in tstages:
                    batch = s.process(batch)
                out += batch
            return check(out, "transnet")

        try:
            push(discover([str(MEDIA / "big_buck_bunny_5s.mp4")]))
            recs, u = in_tree(lambda: push(discover_all(tn_inputs)), ray_tmp)
        finally:
            for s in tstages:
                s.stop()
        tn_frames = sum(r["decoded"]["num_frames"] for r in recs)
        adaptive = sum(loc[i.name] for i in inputs if i.height == 720) / args.rounds
        adaptive_f = sum(i.frames for i in inputs if i.height == 720)
        print(f"  TransNetV2: {tn_frames} frames in {u.wall_s:.1f} s = {tn_frames / u.wall_s:.0f} frames/s "
              f"({u.cpu_s:.1f} CPU s, {tn_frames / u.cpu_s:.0f} frames per CPU s), "
              f"{sum(len(r.get('clips') or []) for r in recs)} clips")
        print(f"  for comparison, model-free analysis on the 720p inputs: {adaptive_f / adaptive:.0f} frames/s")
        res["d"] = {"inputs": [i.name for i in tn_inputs], "frames": tn_frames, "wall_s": u.wall_s, "cpu_s": u.cpu_s,
                    "fps": tn_frames / u.wall_s, "adaptive_720p_fps": adaptive_f / adaptive}

    # ---- memory -----------------------------------------------------------------------
    if mem_inputs:
        print("\nmemory: `python -m curate run pipelines/model-free.yaml` (Ray runner) as a subprocess, whole process tree ...", flush=True)
        mem = {}
        for k, inp in mem_inputs.items():
            mem[k] = m = memory_run(inp, OUT / f"mem-{k}")
            print(f"  {k:>5} {inp.name} ({inp.duration_s:.0f} s {inp.width}x{inp.height}): peak {mib(m['peak_bytes'])} "
                  f"in {m['processes']} processes ({m['reparented_ray_processes']} outside the tree), "
                  f"{m['wall_s']:.0f} s wall, {m['samples']} samples   (load {load()})", flush=True)
            print("        at the peak: " + ", ".join(f"{kind} {mib(b)}" for kind, b in m["peak_by_kind"].items()))
            print(f"        {m['summary']}")
            shutil.rmtree(OUT / f"mem-{k}", ignore_errors=True)
        m_ratio = mem["20min"]["peak_bytes"] / mem["2min"]["peak_bytes"]
        print(f"  peak 20 min / peak 2 min = {m_ratio:.2f}")
        res["memory"] = {**mem, "ratio": m_ratio}

    # ---- summary ------------------------------------------------------------------------
    for r in range(args.rounds):
        shutil.rmtree(OUT / f"run-{r}", ignore_errors=True)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    res["machine"]["load_end"] = load()
    res["elapsed_s"] = time.perf_counter() - t_start
    rows = [
        ("(a) analysis pass / ffmpeg decode (Ray)", res["a"]["ratio"], ">= 0.8", res["a"]["ratio"] >= TARGETS["analysis"]),
        ("    same, CPU seconds", res["a"]["ratio_cpu"], "", None),
        ("    same, local runner", res["a"]["ratio_local"], "", None),
        ("(b) whole run / ffmpeg decode+encode", res["b"]["ratio"], ">= 0.8", res["b"]["ratio"] >= TARGETS["run"]),
        ("    same, with Ray start-up", res["b"]["ratio_with_ray_init"], "", None),
        ("    same, CPU seconds", res["b"]["ratio_cpu"], "", None),
        ("(c) split: scenedetect CLI / ours", res["c"]["ratio"], "(info)", None),
    ]
    if "d" in res:
        rows.append(("(d) TransNetV2 analysis, frames/s", res["d"]["fps"], "(info)", None))
    if "memory" in res:
        rows.append(("peak memory 20 min / 2 min", res["memory"]["ratio"], "<= 1.2", res["memory"]["ratio"] <= TARGETS["memory"]))
    res["summary"] = [{"name": n.strip(), "value": v, "target": t, "pass": p} for n, v, t, p in rows]
    print(f"\n== summary (Ray start-up {ray_init_s:.2f} s; load average {res['machine']['load_start']} at start, "
          f"{res['machine']['load_end']} at end; {res['elapsed_s'] / 60:.1f} min) ==")
    print(f"  {'figure':<42}{'value':>9}  {'target':<8} result")
    for n, v, t, p in rows:
        print(f"  {n:<42}{v:9.2f}  {t:<8} {'' if p is None else 'PASS' if p else 'FAIL'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1, default=str))
    print(f"figures written to {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
