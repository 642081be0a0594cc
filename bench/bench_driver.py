"""Driver benchmark (issue 12): memory and per-video overhead as inputs grow, bytes the driver receives, two nodes vs one.

  scale    ``run_pipeline(..., runner="ray")`` over a Parquet manifest of N rows
           (N = 1k, 10k, 100k by default), each row a distinct hard link to one
           of four tiny synthetic videos (48x32, below ``probe.min_width``): the
           pipeline still opens and probes every input (guarded child, as in a
           real run) and rejects it, so the run is almost all orchestration.
           Each N runs in a fresh process; printed: the driver's peak RSS
           (``ru_maxrss``) and its RSS once Ray is up and before discovery,
           wall time less Ray start-up per video, stage time per video (from
           the ledger), and bytes the driver received from workers.
           Target: peak RSS at the largest N <= 1.5x at the smallest.
  bytes    a run over small real videos (synthetic shots) that stores clips:
           bytes the driver received per stored clip vs the clip's own bytes.
           Target: metadata only (well under one clip).
  cluster  the same clip-producing inputs on a ``ray.cluster_utils.Cluster``
           of one 1-CPU node, then of two: videos/s (Ray start-up excluded).
  discovery  the driver's share of discovery per input over a manifest of
           ``--discovery`` hard links to one 16 MiB file: ``discover()``
           (a stat each) against the 2 MiB identity hash it made per input
           before the hash moved to the probe stage on the workers (timed on a
           warm page cache: a floor; on an object store each is two ranged GETs).

    python bench/bench_driver.py [--sizes 1000 10000 100000] [--videos 12] [--skip-cluster] [--discovery 2000] [--only-discovery]

Results go to ``bench/out/driver.json`` and ``bench/out/driver.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).resolve().parent / "out"
TINY_SOURCES = 4
CLIP_SHOT_FRAMES = 150  # 6 s shots: enough work per video that the cluster run is not all start-up
SCALE_PIPELINE: dict[str, Any] = {"output": {"shard_size_mb": 8}}
CLIP_PIPELINE: dict[str, Any] = {"clips": {"min_s": 1.0, "max_s": 2.0}, "output": {"shard_size_mb": 8}}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_scale_inputs(root: Path, n: int) -> Path:
    """``root/m{n}.parquet`` naming ``n`` hard links to TINY_SOURCES tiny videos (built once, reused)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.synth import make_video

    manifest = root / f"m{n}.parquet"
    if manifest.exists():
        return manifest
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    sources = []
    for k in range(TINY_SOURCES):
        p = src / f"tiny{k}.mp4"
        if not p.exists():
            make_video(p, [(12, "moving")], size=(48, 32), seed=k)
        sources.append(p)
    uris = []
    for i in range(n):
        link = root / "links" / f"{i // 1000:04d}" / f"v{i:06d}.mp4"
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.link(sources[i % TINY_SOURCES], link)
        uris.append(str(link))
    pq.write_table(pa.table({"uri": uris}), manifest)
    return manifest


def make_clip_inputs(root: Path, n: int) -> Path:
    """``n`` small videos with cuts and motion that give stored clips (built once)."""
    from curate.synth import make_video

    kinds = [["pan_left", "static", "moving"], ["zoom_in", "tilt_up"], ["moving", "pan_right", "static"]]
    d = root / f"clips{n}x{CLIP_SHOT_FRAMES}"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = d / f"v{i:03d}.mp4"
        if not p.exists():
            make_video(p, [(CLIP_SHOT_FRAMES, k) for k in kinds[i % len(kinds)]], size=(192, 144), seed=i)
    return d


def discovery_cost(root: Path, n: int) -> dict[str, Any]:
    """Milliseconds per input: discovery as the driver runs it now, and the identity hash it no longer runs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.discover import discover
    from curate.media.identity import video_identity

    src = root / "discovery" / "big.mp4"
    src.parent.mkdir(parents=True, exist_ok=True)
    if not src.exists():
        src.write_bytes(os.urandom(16 << 20))
    uris = []
    for i in range(n):
        link = root / "discovery" / "links" / f"v{i:06d}.mp4"
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, link)
        uris.append(str(link))
    manifest = root / "discovery" / f"m{n}.parquet"
    pq.write_table(pa.table({"uri": uris}), manifest)
    video_identity(uris[0])  # the file in the page cache
    t0 = time.perf_counter()
    found = sum(1 for _ in discover([str(manifest)]))
    t1 = time.perf_counter()
    for uri in uris:
        video_identity(uri)
    t2 = time.perf_counter()
    return {"inputs": found, "discover_ms": round(1000 * (t1 - t0) / n, 3), "identity_hash_ms": round(1000 * (t2 - t1) / n, 3)}


def _stage_seconds(out: Path) -> float:
    doc = json.loads((out / "manifest.json").read_text())
    return sum(t["total_s"] for t in doc["timings"].values())


def child_run(inputs: str, out: str, pipeline: str, address: str | None) -> dict[str, Any]:
    """One run in this (fresh) process; what it measured, as JSON on stdout."""
    from curate.config import PipelineConfig
    from curate.run import run_pipeline
    from curate.runners.ray import init_ray

    config = PipelineConfig.model_validate(json.loads(pipeline))
    ray_s = init_ray(address)
    base = _rss_mb()
    phases = _Phases()
    t0 = time.perf_counter()
    with phases:
        summary = run_pipeline(config, [inputs], out, runner="ray", ray_address=address)
    wall = time.perf_counter() - t0
    doc = json.loads((Path(out) / "manifest.json").read_text())
    stored = doc["rows"].get("clips", 0) + doc["rows"].get("review", 0)
    clip_bytes = sum(e["bytes"] for t in ("clips", "review") for e in doc["shards"].get(t, []))
    return {
        "inputs": summary.inputs, "processed": summary.processed, "status": summary.status, "clips_stored": stored,
        "wall_s": round(wall, 2), "ray_init_s": round(ray_s, 2), "rss_base_mb": round(base, 1), "peak_rss_mb": round(_peak_mb(), 1),
        "driver_bytes": summary.driver_bytes, "stored_clip_bytes": clip_bytes, "stage_s": round(_stage_seconds(Path(out)), 2),
        "peak_rss_by_phase_mb": phases.peaks,
    }


class _Phases:
    """Peak RSS per phase of a run (discovery + work list, stages on Ray, close), sampled every 50 ms."""

    def __init__(self) -> None:
        import threading

        self.peaks: dict[str, float] = {}
        self._phase, self._stop = "discover", threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peaks[self._phase] = round(max(self.peaks.get(self._phase, 0.0), _rss_mb()), 1)

    def _mark(self, obj: Any, name: str, phase: str) -> None:
        real = getattr(obj, name)

        def marked(*a: Any, **k: Any) -> Any:
            self._phase = phase
            return real(*a, **k)

        setattr(obj, name, marked)

    def __enter__(self) -> "_Phases":
        from curate.output.store import OutputStore
        from curate.output.worklist import WorkList

        self._mark(WorkList, "close", "ray")
        self._mark(OutputStore, "close", "close")
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


def _cluster_child(inputs: str, out: str, pipeline: str, nodes: int) -> dict[str, Any]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        return dict(child_run(inputs, out, pipeline, cluster.address), nodes=nodes)
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()


def _spawn(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--videos", type=int, default=12, help="clip-producing videos for the bytes and cluster runs")
    ap.add_argument("--skip-cluster", action="store_true")
    ap.add_argument("--discovery", type=int, default=2000, help="inputs for the discovery figure")
    ap.add_argument("--only-discovery", action="store_true")
    ap.add_argument("--child", nargs=5, metavar=("KIND", "INPUTS", "OUT", "PIPELINE", "NODES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, inputs, out, pipeline, nodes = args.child
        result = _cluster_child(inputs, out, pipeline, int(nodes)) if kind == "cluster" else child_run(inputs, out, pipeline, None)
        print(json.dumps(result))
        return 0

    OUT.mkdir(parents=True, exist_ok=True)
    inputs_root = OUT / "driver-inputs"
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    d = discovery_cost(inputs_root, args.discovery)
    print(f"discovery: {d['discover_ms']} ms/input on the driver; the identity hash it no longer makes "
          f"{d['identity_hash_ms']} ms/input (now in the probe stage)", flush=True)
    if args.only_discovery:
        (OUT / "driver-discovery.json").write_text(json.dumps(d, indent=1))
        return 0
    results: dict[str, Any] = {"scale": [], "load_avg": os.getloadavg()[0], "discovery": d}
    with tempfile.TemporaryDirectory(prefix="bench-driver-") as tmp:
        for n in sorted(args.sizes):
            manifest = make_scale_inputs(inputs_root, n)
            r = _spawn("--child", "scale", str(manifest), f"{tmp}/scale{n}", json.dumps(SCALE_PIPELINE), "1")
            r["ms_per_video"] = round(1000 * r["wall_s"] / n, 2)
            r["stage_ms_per_video"] = round(1000 * r["stage_s"] / n, 2)
            results["scale"].append(r)
            print(f"scale {n:>7}: peak RSS {r['peak_rss_mb']:.0f} MB (after Ray start {r['rss_base_mb']:.0f} MB), "
                  f"{r['ms_per_video']} ms/video wall, {r['stage_ms_per_video']} ms/video in stages, "
                  f"driver received {r['driver_bytes'] / n:.0f} B/video; peak RSS by phase {r['peak_rss_by_phase_mb']}", flush=True)
        first, last = results["scale"][0], results["scale"][-1]
        ratio = last["peak_rss_mb"] / first["peak_rss_mb"]
        results["memory_ratio"] = round(ratio, 3)
        print(f"driver peak RSS {last['inputs']} / {first['inputs']} inputs: {ratio:.2f}x "
              f"(target <= 1.5x: {'PASS' if ratio <= 1.5 else 'FAIL'})", flush=True)

        clips = make_clip_inputs(inputs_root, args.videos)
        r = _spawn("--child", "bytes", str(clips), f"{tmp}/bytes", json.dumps(CLIP_PIPELINE), "1")
        per_clip = r["driver_bytes"] / max(1, r["clips_stored"])
        clip_size = r["stored_clip_bytes"] / max(1, r["clips_stored"])
        results["bytes"] = dict(r, driver_bytes_per_clip=round(per_clip), shard_bytes_per_clip=round(clip_size))
        print(f"bytes: {r['clips_stored']} clips stored, driver received {per_clip:.0f} B per clip "
              f"(a stored clip is {clip_size:.0f} B of shard): {'PASS' if per_clip < clip_size / 10 else 'FAIL'} metadata only", flush=True)

        if not args.skip_cluster:
            runs = {}
            for nodes in (1, 2):
                r = _spawn("--child", "cluster", str(clips), f"{tmp}/cluster{nodes}", json.dumps(CLIP_PIPELINE), str(nodes))
                r["videos_per_s"] = round(r["inputs"] / r["wall_s"], 3)
                runs[nodes] = r
                print(f"cluster {nodes} node(s) x 1 CPU: {r['inputs']} videos in {r['wall_s']:.1f} s "
                      f"({r['videos_per_s']} videos/s; Ray start {r['ray_init_s']:.1f} s excluded)", flush=True)
            results["cluster"] = {"one_node": runs[1], "two_nodes": runs[2],
                                  "speedup": round(runs[2]["videos_per_s"] / runs[1]["videos_per_s"], 2)}
            print(f"cluster: two nodes / one node throughput {results['cluster']['speedup']}x", flush=True)
    (OUT / "driver.json").write_text(json.dumps(results, indent=1))
    (OUT / "driver.md").write_text(_markdown(results))
    print(f"wrote {OUT / 'driver.json'} and {OUT / 'driver.md'}")
    return 0


def _markdown(res: dict[str, Any]) -> str:
    lines = ["| inputs | driver peak RSS MB | RSS after Ray start MB | wall ms/video | stage ms/video | driver B/video |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in res["scale"]:
        lines.append(f"| {r['inputs']} | {r['peak_rss_mb']:.0f} | {r['rss_base_mb']:.0f} | {r['ms_per_video']} | "
                     f"{r['stage_ms_per_video']} | {r['driver_bytes'] / r['inputs']:.0f} |")
    lines.append(f"\nPeak RSS largest/smallest: {res['memory_ratio']}x (target <= 1.5x). Load average {res['load_avg']:.1f}.")
    if "bytes" in res:
        b = res["bytes"]
        lines.append(f"\nBytes: {b['clips_stored']} stored clips; the driver received {b['driver_bytes_per_clip']} B per clip; "
                     f"a clip is {b['shard_bytes_per_clip']} B of shard.")
    if "cluster" in res:
        c = res["cluster"]
        lines.append(f"\nCluster ({c['one_node']['inputs']} videos): one 1-CPU node {c['one_node']['videos_per_s']} videos/s, "
                     f"two 1-CPU nodes {c['two_nodes']['videos_per_s']} videos/s: {c['speedup']}x.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
