"""Each video's shot list, read back from ``videos.parquet`` (``curate shots OUTPUT``).

The analysis pass stores every video's shots and transitions (issue 8) so a
split can be audited and redone without decoding. :func:`summarize` reads
them and re-plans the clips from the stored transitions with the run's
``clips`` settings, or with other clip lengths (``min_s``/``max_s``): the
windows :func:`~curate.analysis.clips.plan_clips` cuts from them, before the
filters. With the run's own settings they are the clips the run cut, less
those the purity check split or rejected (its findings are among the stored
transitions, the pieces it kept are not windows). Frame times are taken as
``frame / fps``: exact for constant-rate video; variable-rate video was
planned on its decoded timestamps, so its plan may differ by a frame.
:func:`render` turns the summary into rich tables.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from curate.analysis.shot_eval import planned_clips
from curate.analysis.shots import Boundary
from curate.config import ClipsConfig
from curate.output import manifest as mf
from curate.output.shards import Location, read_table
from curate.output.store import VIDEOS_FILE

COLUMNS = ["video_id", "uri", "status", "num_frames", "fps", "num_clips", "shots", "transitions"]
KINDS = ("cut", "gradual", "flash_suppressed")


def clips_config(doc: dict[str, Any], min_s: float | None = None, max_s: float | None = None) -> ClipsConfig:
    """The run's ``clips`` settings (from the manifest), with ``min_s``/``max_s`` replaced where given.

    Raises:
        ValueError: the lengths are inconsistent (``max_s`` below ``min_s``, not positive).
    """
    stored = dict((doc.get("config") or {}).get("clips") or {})
    stored.update({k: v for k, v in (("min_s", min_s), ("max_s", max_s)) if v is not None})
    try:
        return ClipsConfig.model_validate(stored)
    except ValidationError as e:  # one sentence, as the CLI prints it
        first = e.errors()[0]
        where = "".join(f".{p}" for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise ValueError(msg if msg.startswith("clips.") else f"clips{where}: {msg}") from None


def replan(transitions: list[dict[str, Any]], num_frames: int, fps: float, cfg: ClipsConfig) -> list[tuple[int, int]]:
    """The clip windows ``[start, end)`` (frames) that the stored cuts and gradual transitions give with ``cfg``."""
    bounds = [Boundary(t["start_frame"], t["end_frame"]) for t in transitions if t["kind"] != "flash_suppressed"]
    return planned_clips(bounds, num_frames, fps, cfg)


def summarize(output: str, video: str | None = None, min_s: float | None = None, max_s: float | None = None) -> dict[str, Any]:
    """Per analysed video of ``output``: shots, transitions by kind, clips the run made and clips re-planned.

    ``video`` keeps the videos whose id or path contains it, and adds their
    transitions and re-planned clips one by one.

    Raises:
        FileNotFoundError: ``output`` is no curate output, or has no ``videos.parquet`` yet.
        ValueError: inconsistent clip lengths, or ``video`` matches no analysed video.
    """
    loc = Location.of(output)
    doc = mf.read_output(loc, output)
    if not loc.fs.exists(loc.path(VIDEOS_FILE)):
        raise FileNotFoundError(f"{output}: no {VIDEOS_FILE} yet (no video has finished)")
    cfg = clips_config(doc, min_s, max_s)
    rows = [r for r in read_table(loc, VIDEOS_FILE, COLUMNS).to_pylist() if r["shots"] is not None]
    if video is not None:
        rows = [r for r in rows if video in r["video_id"] or video in r["uri"]]
        if not rows:
            raise ValueError(f"no analysed video of {output} has {video!r} in its id or path")
    videos = []
    for r in sorted(rows, key=lambda r: r["uri"]):
        fps = r["fps"] or 0.0
        plan = replan(r["transitions"], r["num_frames"], fps, cfg) if fps > 0 else []
        v = {"video_id": r["video_id"], "uri": r["uri"], "status": r["status"], "num_frames": r["num_frames"], "fps": fps,
             "shots": len(r["shots"]), **{k: sum(t["kind"] == k for t in r["transitions"]) for k in KINDS},
             "clips_run": r["num_clips"], "clips_planned": len(plan),
             "planned_s": sum(b - a for a, b in plan) / fps if fps > 0 else 0.0}
        if video is not None:
            v["transitions"] = r["transitions"]
            v["planned"] = [{"start_frame": a, "end_frame": b, "start_s": a / fps, "end_s": b / fps} for a, b in plan]
        videos.append(v)
    return {"output": output, "clips": {"min_s": cfg.min_s, "max_s": cfg.max_s, "trim_frames": cfg.trim_frames},
            "videos": videos}


def render(summary: dict[str, Any]) -> Group:
    """The per-video table and, for each video listed one by one, its transitions."""
    if not summary["videos"]:
        return Group(Text(f"no video of {summary['output']} has a shot list: none was analysed, or the output was "
                          "written before videos.parquet held them (schema v4)"))
    c = summary["clips"]
    table = Table(title=f"shot lists of {summary['output']}", title_justify="left", caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption=f"grad: gradual transitions; flash: changes suppressed as flashes; clips: what the run made (kept and "
                          f"rejected); plan, plan s: the clips and seconds the stored cuts and transitions give with min_s "
                          f"{c['min_s']:g} s, max_s {c['max_s']:g} s, before the filters")
    table.add_column("video", overflow="fold", min_width=16)  # a narrow terminal folds names, never the figures
    for name in ("frames", "fps", "shots", "cut", "grad", "flash", "clips", "plan", "plan s"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    vs = summary["videos"]
    for v in vs:
        table.add_row(PurePosixPath(v["uri"]).name, str(v["num_frames"]), f"{v['fps']:.1f}", str(v["shots"]), str(v["cut"]),
                      str(v["gradual"]), str(v["flash_suppressed"]), str(v["clips_run"]), str(v["clips_planned"]), f"{v['planned_s']:.1f}")
    if len(vs) > 1:
        table.add_row("total", str(sum(v["num_frames"] for v in vs)), "",
                      *(str(sum(v[k] for v in vs)) for k in ("shots", "cut", "gradual", "flash_suppressed", "clips_run", "clips_planned")),
                      f"{sum(v['planned_s'] for v in vs):.1f}", style="bold")
    parts: list[Any] = [table]
    for v in (v for v in vs if "transitions" in v):
        t = Table(title=f"{v['uri']} ({v['video_id']}): transitions", title_justify="left")
        for name in ("frames", "seconds", "kind", "score"):
            t.add_column(name, justify="right" if name != "kind" else "left")
        fps = v["fps"] or 1.0
        for x in v["transitions"]:
            a, b = x["start_frame"], x["end_frame"]
            frames = str(a) if a == b else f"{a}-{b - 1}"
            t.add_row(frames, f"{a / fps:.2f}" if a == b else f"{a / fps:.2f}-{b / fps:.2f}", x["kind"],
                      "-" if x["score"] is None else f"{x['score']:.3f}")
        parts.append(t)
        parts.append(Text("planned clips (frames): " + (", ".join(f"{p['start_frame']}-{p['end_frame'] - 1}" for p in v["planned"]) or "none")))
    return Group(*parts)
