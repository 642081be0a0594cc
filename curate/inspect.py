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
from rich.console import Group
from rich.table import Table
from rich.text import Text

from curate.output import manifest as mf
from curate.output.shards import Location, read_table
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
    doc = mf.read(loc)
    if doc is None:
        raise FileNotFoundError(f"{output}: no {mf.MANIFEST}; not a curate output")
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
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"


def _counts(title: str, counts: dict[str, int], of: int | None = None) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("reason")
    t.add_column("count", justify="right")
    t.add_column("%", justify="right")
    for reason, n in counts.items():
        t.add_row(reason, _fmt(n), f"{100 * n / of:.1f}" if of else "-")
    return t


def render(summary: dict[str, Any]) -> Group:
    """Rich tables for a :func:`summarize` result: overview, funnel, reasons, scores, timings."""
    f = summary["funnel"]
    header = Text(f"{summary['output']}: run {summary['run_id']} ({summary['status']}), {len(summary['runs'])} run(s), "
                  f"config {summary['config_hash']}, curate {summary['curate_version']}, updated {summary['updated']}", style="bold")
    overview = Table(title="committed shards", title_justify="left")
    for col in ("table", "files", "rows", "MiB"):
        overview.add_column(col, justify="left" if col == "table" else "right")
    for table, s in summary["shards"].items():
        overview.add_row(table, _fmt(s["files"]), _fmt(s["rows"]), f"{s['bytes'] / 2**20:.1f}")

    funnel = Table(title="funnel", title_justify="left")
    funnel.add_column("stage")
    funnel.add_column("count", justify="right")
    for group in ("videos", "clips"):
        for key, n in f[group].items():
            funnel.add_row(f"{group} {key}", _fmt(n))
    for name, ok in f["checks"].items():
        funnel.add_row(name, "ok" if ok else "[red]MISMATCH[/red]")

    parts: list[Any] = [header, overview, funnel]
    parts.append(_counts("videos rejected", f["videos_rejected"], f["videos"]["rejected"]))
    parts.append(_counts("videos failed", f["videos_failed"], f["videos"]["failed"]))
    parts.append(_counts("clips rejected (a clip counts under each of its reasons)", f["clips_rejected"], f["clips"]["rejected"]))
    for table, cols in summary["scores"].items():
        t = Table(title=f"scores: {table}", title_justify="left")
        t.add_column("column")
        t.add_column("unit")
        for k in ("count", "min", *_QUANTILES, "max"):
            t.add_column(k, justify="right")
        for col, s in cols.items():
            t.add_row(col, s["unit"], *(_fmt(s[k]) for k in ("count", "min", *_QUANTILES, "max")))
        parts.append(t)
    timings = Table(title="stage timings (every attempt)", title_justify="left")
    for col in ("stage", "total s", "videos", "mean s"):
        timings.add_column(col, justify="left" if col == "stage" else "right")
    for stage, s in summary["timings"].items():
        timings.add_row(stage, _fmt(s["total_s"]), _fmt(s["videos"]), _fmt(s["mean_s"]))
    parts.append(timings)
    return Group(*parts)
