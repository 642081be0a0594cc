"""What is in an output, at a glance (``curate inspect OUTPUT``).

Reads only what the manifest lists as committed, and of the shards only the
float columns, so it is cheap on large outputs and safe during a run.
:func:`summarize` returns plain data (JSON-able, for ``--json`` or tests);
:func:`render` turns it into rich tables.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from curate.output import manifest as mf
from curate.output.shards import Location, read_table
from curate.output.store import VIDEOS_FILE
from curate.schema import load_schema

# Positions within the source, not qualities: their distribution says nothing.
_NOT_SCORES = {"start_s", "end_s"}
_QUANTILES = {"p10": 0.1, "median": 0.5, "p90": 0.9}


def _score_columns(schema_name: str) -> dict[str, str]:
    """Float column -> unit, from the schema's field metadata."""
    return {f.name: (f.metadata or {}).get(b"unit", b"").decode() for f in load_schema(schema_name)
            if pa.types.is_floating(f.type) and f.name not in _NOT_SCORES}


def _stats(values: pa.ChunkedArray) -> dict[str, float | int | None]:
    values = values.cast(pa.float64()).filter(pc.invert(pc.is_nan(values.cast(pa.float64()))))
    out: dict[str, float | int | None] = {"count": len(values) - values.null_count}
    if not out["count"]:
        return out | {k: None for k in ("min", *_QUANTILES, "max")}
    mm = pc.min_max(values).as_py()
    qs = pc.quantile(values, q=list(_QUANTILES.values())).to_pylist()
    return out | {"min": mm["min"], **dict(zip(_QUANTILES, qs, strict=True)), "max": mm["max"]}


def summarize(output: str) -> dict[str, Any]:
    """Counts, funnel, reasons, score distributions and timings of ``output`` (path or fsspec URI).

    Raises:
        FileNotFoundError: ``output`` has no ``manifest.json``.
    """
    loc = Location.of(output)
    doc = mf.read_output(loc, output)
    shards, scores = {}, {}
    for table, schema_name in doc["tables"].items():
        entries = doc["shards"].get(table, [])
        shards[table] = {"files": len(entries), "rows": sum(e["rows"] for e in entries), "bytes": sum(e["bytes"] for e in entries)}
        units = _score_columns(schema_name)
        data = [read_table(loc, e["path"], list(units)) for e in entries]
        merged = pa.concat_tables(data) if data else None
        scores[table] = {c: {"unit": u, **_stats(merged.column(c) if merged else pa.chunked_array([], pa.float64()))}
                         for c, u in units.items()}
    last = doc["runs"][-1] if doc.get("runs") else {}
    versions = doc.get("versions") or []
    shot_list = _shot_list(loc)
    from curate.report import report_freshness

    fresh = report_freshness(output)
    return {
        "output": output,
        "run_id": doc.get("run_id"),
        "status": last.get("status"),
        "runs": doc.get("runs", []),
        "created": doc.get("created"),
        "updated": doc.get("updated"),
        "config_hash": doc.get("config_hash"),
        "curate_version": doc.get("curate_version"),
        "shards": shards,
        "funnel": doc["funnel"],
        "scores": scores,
        "timings": doc.get("timings", {}),
        "version": {"number": len(versions), "kind": versions[-1].get("kind") if versions else "run",
                    "created": versions[-1].get("created") if versions else doc.get("created"),
                    "config_hash": doc.get("config_hash")},
        "thresholds": thresholds_in_force(doc.get("config") or {}),
        "report": None if fresh is None else {"stale": fresh[0], "message": fresh[1]},
        "latents": latents_summary(doc),
        "text_embeddings": text_embeddings_summary(doc),
        "shot_list": shot_list,
    }


def latents_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Per ``VAE/bucket`` set of the manifest's latents: rows, class, latent shape and dtype, random weights; files and bytes."""
    section = doc.get("latents") or {}
    if not section:
        return {}
    accepted = (doc.get("funnel") or {}).get("clips", {}).get("accepted", 0)
    sets = {key: {"rows": s["rows"], "class": s["class"], "shape": s["shape"], "dtype": s["dtype"],
                  "posterior": s["posterior"], "random_init": s["random_init"], "scaling_factor": s.get("scaling_factor"),
                  "of_accepted": accepted}
            for key, s in sorted((section.get("sets") or {}).items())}
    entries = section.get("shards") or []
    return {"files": len(entries), "bytes": sum(e["bytes"] for e in entries), "rows": section.get("rows", 0), "sets": sets}


def text_embeddings_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Per encoder of the manifest's text_embeddings: rows, class, (max_length, hidden) shape and dtype, random weights; files and bytes."""
    section = doc.get("text_embeddings") or {}
    if not section:
        return {}
    accepted = (doc.get("funnel") or {}).get("clips", {}).get("accepted", 0)
    sets = {key: {"rows": s["rows"], "class": s["class"], "shape": s["shape"], "dtype": s["dtype"], "revision": s["revision"],
                  "random_init": s["random_init"], "of_accepted": accepted}
            for key, s in sorted((section.get("sets") or {}).items())}
    entries = section.get("shards") or []
    return {"files": len(entries), "bytes": sum(e["bytes"] for e in entries), "rows": section.get("rows", 0), "sets": sets}


def _shot_list(loc: Location) -> dict[str, int] | None:
    """Shots and transitions (by kind) in ``videos.parquet``'s per-video shot lists; None before it exists.

    Only the list lengths and kinds are read: a few values per video.
    """
    if not loc.fs.exists(loc.path(VIDEOS_FILE)):
        return None
    t = read_table(loc, VIDEOS_FILE, ["shots", "transitions"])
    out = {"videos": t.num_rows - t.column("shots").null_count,
           "shots": int(pc.sum(pc.list_value_length(t.column("shots"))).as_py() or 0)}
    kinds = pc.list_flatten(t.column("transitions")).combine_chunks()
    kinds = kinds.field("kind") if len(kinds) else pa.array([], pa.string())
    for kind in ("cut", "gradual", "flash_suppressed"):
        out[kind] = int(pc.sum(pc.equal(kinds, kind)).as_py() or 0)
    return out


def thresholds_in_force(config: dict[str, Any]) -> dict[str, Any]:
    """The decision settings of the manifest's config: filter checks that are on, caption-check bands, dedup."""
    out: dict[str, Any] = {k: v for k, v in (config.get("filter") or {}).items() if v not in (None, False)}
    cc = config.get("caption_check")
    if cc:
        out.update({f"caption_check.{k}": cc[k] for k in ("statistic", "reject_below", "pass_min") if k in cc})
    d = config.get("dedup") or {}
    if d.get("enabled"):
        out.update({f"dedup.{k}": d[k] for k in ("phash_max_distance", "cosine_threshold", "score") if d.get(k) is not None})
    return out


def _fmt(v: Any) -> str:
    """At most 8 characters: counts with separators, floats to 3 significant digits."""
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.1e}"
    if abs(v) >= 1000:
        return f"{v:,.0f}" if abs(v) < 1e7 else f"{v:.2e}"
    return f"{v:.3g}"


# Rates of the source and the output, not qualities: the report leaves them out too.
_NOT_SHOWN = {"fps", "source_fps"}
_OUTCOME = {"clips": "kept", "review": "flagged", "rejected": "dropped"}


def _table(title: str, *columns: str) -> Table:
    """A compact table (no vertical rules) whose first column is left-aligned and never truncated."""
    t = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
              show_edge=False, padding=(0, 1))
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right", no_wrap=True, overflow="fold")
    return t


def _pct(n: int, of: int | None) -> str:
    return f"{100 * n / of:.1f}" if of else ""


def thresholds_text(thresholds: dict[str, Any]) -> str:
    """:func:`thresholds_in_force` as one readable line."""
    def val(x: Any) -> str:
        return f"{x:g}" if isinstance(x, float) else str(x)

    plain = [f"{k} {val(x)}" for k, x in thresholds.items() if "." not in k]
    cc = {k.split(".", 1)[1]: x for k, x in thresholds.items() if k.startswith("caption_check.")}
    if cc:
        plain.append(f"caption_check clip_sim_{cc.get('statistic')}: reject_below {val(cc.get('reject_below'))}, "
                     f"pass_min {val(cc.get('pass_min'))}")
    d = {k.split(".", 1)[1]: x for k, x in thresholds.items() if k.startswith("dedup.")}
    if d:
        plain.append("dedup " + ", ".join(
            [f"phash ≤ {d['phash_max_distance']}"] * ("phash_max_distance" in d) + [f"cosine ≥ {val(d['cosine_threshold'])}"] * ("cosine_threshold" in d)
            + [f"best {d['score']} kept"] * ("score" in d)))
    return " · ".join(plain) or "none"


def _header(summary: dict[str, Any]) -> Text:
    runs = summary["runs"]
    last = runs[-1] if runs else {}
    v = summary.get("version") or {}
    text = Text(f"{summary['output']}\n", style="bold")
    text.append(f"{summary['status']} · {len(runs)} run{'s' if len(runs) != 1 else ''}, last {last.get('run_id')}"
                f" ({last.get('command', 'run')}) · curate {summary['curate_version']}\n")
    when = (v.get("created") or "")[:16].replace("T", " ")
    text.append(f"shard version {v.get('number', 0)} ({v.get('kind', 'run')}, {when} UTC) · config {v.get('config_hash')}\n")
    text.append(f"thresholds: {thresholds_text(summary.get('thresholds') or {})}")
    report = summary.get("report")
    if report:
        text.append("\n" + report["message"], style="yellow" if report["stale"] else "")
    return text


def render(summary: dict[str, Any]) -> Group:
    """Rich tables for a :func:`summarize` result that fit 80 columns.

    Only what has data is shown: reasons tables when something was rejected
    or failed, score tables of tables that hold rows, score columns with values.
    """
    f = summary["funnel"]
    v, c = f["videos"], f["clips"]
    funnel = _table("funnel", "", "count", "%", "files", "MiB")
    funnel.add_row("videos in", _fmt(v["inputs"]), "", "", "")
    for key, reasons in (("done", None), ("rejected", f.get("videos_rejected")), ("failed", f.get("videos_failed"))):
        if v.get(key) or key == "done":
            funnel.add_row(f"  {key}", _fmt(v[key]), _pct(v[key], v["inputs"]), "", "")
        for reason, n in (reasons or {}).items():
            funnel.add_row(f"    {reason}", _fmt(n), _pct(n, v["inputs"]), "", "")
    funnel.add_row("clips produced", _fmt(c["produced"]), "", "", "")
    rows = {"clips": c.get("accepted", 0), "review": c.get("flagged", 0), "rejected": c.get("rejected", 0)}
    for table, n in rows.items():
        s = summary["shards"].get(table, {"files": 0, "bytes": 0})
        if n or s["files"] or table == "clips":
            funnel.add_row(f"  {_OUTCOME[table]} ({table}/)", _fmt(n), _pct(n, c["produced"]), _fmt(s["files"]),
                           f"{s['bytes'] / 2**20:.1f}")
        if table == "rejected":
            for reason, k in f.get("clips_rejected", {}).items():
                funnel.add_row(f"    {reason}", _fmt(k), _pct(k, c["produced"]), "", "")
    bad = [name for name, ok in f["checks"].items() if not ok]
    for name in bad:
        funnel.add_row(f"[red]MISMATCH: {name}[/red]", "", "", "", "")
    note = Text(("counts consistent; " if not bad else "") + "a dropped clip counts under each of its reasons", style="dim")

    parts: list[Any] = [_header(summary), funnel, note]
    shots = summary.get("shot_list")
    if shots and shots["videos"]:
        parts.append(Text(f"shot list (videos.parquet): {shots['shots']} shots in {shots['videos']} videos; transitions: "
                          f"{shots['cut']} cuts, {shots['gradual']} gradual, {shots['flash_suppressed']} flashes suppressed "
                          f"(per video, and re-planned with other clip lengths: curate shots OUTPUT)"))
    units: dict[str, str] = {}
    for table, cols in summary["scores"].items():
        shown = {col: st for col, st in cols.items() if st["count"] and col not in _NOT_SHOWN}
        if not shown:
            continue
        t = _table(f"scores of {_OUTCOME.get(table, table)} clips ({table}/)", "score", "n", "min", *_QUANTILES, "max")
        for col, st in shown.items():
            t.add_row(col, *(_fmt(st[k]) for k in ("count", "min", *_QUANTILES, "max")))
            if st["unit"]:
                units[col] = st["unit"]
        parts.append(t)
    if units:
        by_unit: dict[str, list[str]] = {}
        for col, unit in units.items():
            by_unit.setdefault(unit, []).append(col)
        parts.append(Text("units: " + "; ".join(f"{', '.join(cols)}: {unit}" for unit, cols in by_unit.items()), style="dim"))
    lat = summary.get("latents") or {}
    if lat:
        t = _table(f"latents (latents/: {lat['files']} files, {lat['bytes'] / 2**20:.1f} MiB)", "VAE/bucket", "clips", "class",
                   "shape", "dtype")
        for key, st in lat["sets"].items():
            t.add_row(key + (" [red](random weights)[/red]" if st["random_init"] else ""), _fmt(st["rows"]), st["class"],
                      "x".join(map(str, st["shape"])), st["dtype"] + (" +logvar" if st["posterior"] else ""))
        parts.append(t)
    te = summary.get("text_embeddings") or {}
    if te:
        t = _table(f"caption embeddings (text_embeddings/: {te['files']} files, {te['bytes'] / 2**20:.1f} MiB)", "encoder", "clips",
                   "class", "tokens x hidden", "dtype")
        for key, st in te["sets"].items():
            t.add_row(key + (" [red](random weights)[/red]" if st["random_init"] else ""), _fmt(st["rows"]), st["class"],
                      "x".join(map(str, st["shape"])), st["dtype"])
        parts.append(t)
    if summary["timings"]:
        from curate.pipeline import in_pipeline_order

        timings = _table("stage timings (every attempt)", "stage", "total s", "videos", "mean s")
        for stage in in_pipeline_order(summary["timings"]):
            st = summary["timings"][stage]
            timings.add_row(stage, _fmt(float(st["total_s"])), _fmt(st["videos"]), _fmt(float(st["mean_s"])))
        parts.append(timings)
    return Group(*parts)
