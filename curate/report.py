"""``curate report OUTPUT``: one self-contained HTML page to tune thresholds from.

It shows the funnel (clips in, kept, flagged, dropped per reason), a
histogram of every score over all clips — kept, flagged and dropped stacked
— with the pipeline's thresholds drawn, contact sheets of stored thumbnails
per outcome and drop reason, stage timings and the versions of the shards.
Everything is inline (CSS, SVG, base64 JPEGs), so the file can be mailed or
opened offline. It reads only what the manifest lists, and of the shards
only score and reason columns, plus the thumbnails of the clips it shows.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curate.output import manifest as mf
from curate.output.funnel import threshold_key
from curate.output.shards import TABLES, Location, read_table
from curate.report_svg import COLOURS, bars, histogram
from curate.schema import load_schema

SHEET_CAP = 24  # thumbnails per contact sheet
OUTCOME = {"clips": "kept", "review": "flagged", "rejected": "dropped"}
_NOT_SCORES = {"start_s", "end_s", "fps", "source_fps"}  # positions and rates, not qualities
# Funnel keys of the dedup reasons, as a reader knows them.
_KEY_LABEL = {"phash_max_distance": "exact duplicate (phash_max_distance)", "cosine_threshold": "near duplicate (cosine_threshold)"}
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px;margin:18px 0 6px}
.muted{color:#777}.warn{background:#fdecea;border:1px solid #c0392b;padding:8px;border-radius:4px}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left}.num{text-align:right;font-variant-numeric:tabular-nums}
.bars td.bar{width:420px}.bars td.bar div{height:14px;border-radius:2px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.hist{border:1px solid #eee;padding:6px;border-radius:4px}
.hist b{display:block;font-size:13px}.tick{font-size:10px;fill:#555}.thr{font-size:10px;fill:#c0392b}
.sheet{display:flex;flex-wrap:wrap;gap:6px}.tile{width:160px;font-size:11px;color:#444}
.tile img{width:160px;height:auto;display:block;border-radius:3px;background:#eee}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
"""


def _columns(doc: dict[str, Any]) -> list[str]:
    params = (doc.get("schema_params") or {}).get("clip")
    return [f.name for f in load_schema("clip", params=params) if pa.types.is_floating(f.type) and f.name not in _NOT_SCORES]


def load_rows(loc: Location, doc: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """Column -> numpy/list over every committed clip row, plus ``outcome``, ``file`` and ``reasons``."""
    data: dict[str, list[Any]] = defaultdict(list)
    for table, entries in (doc.get("shards") or {}).items():
        names = load_schema(TABLES.get(table, "clip")).names
        want = [c for c in ["clip_id", "caption", "flag_reasons", "reject_reasons", "duplicate_of", *columns] if c in names]
        for e in entries:
            t = read_table(loc, e["path"], want)
            for c in {"clip_id", "caption", "flag_reasons", "reject_reasons", "duplicate_of", *columns}:
                data[c] += t.column(c).to_pylist() if c in t.column_names else [None] * t.num_rows
            data["outcome"] += [OUTCOME.get(table, table)] * t.num_rows
            data["file"] += [e["path"]] * t.num_rows
    return data


def thresholds(config: dict[str, Any]) -> dict[str, list[tuple[str, float]]]:
    """Score column -> the ``(name, value)`` thresholds the pipeline applies to it."""
    from curate.stages.filter import CHECKS

    out: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for name, (column, _, _) in CHECKS.items():
        value = (config.get("filter") or {}).get(name)
        if value is not None:
            out[column].append((name, float(value)))
    cc = config.get("caption_check")
    if cc:
        for name in ("reject_below", "pass_min"):
            out[f"clip_sim_{cc.get('statistic', 'mean')}"].append((name, float(cc[name])))
    return out


def _sheets(data: dict[str, Any]) -> dict[str, tuple[list[int], int]]:
    """Sheet title -> (first :data:`SHEET_CAP` row indices by clip id, rows in all): kept, flagged, each drop reason."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, outcome in enumerate(data["outcome"]):
        if outcome == "dropped":
            for key in sorted({threshold_key(r) for r in data["reject_reasons"][i] or []}):
                groups[f"dropped: {_KEY_LABEL.get(key, key)}"].append(i)
        else:
            groups[outcome].append(i)
    order = ["kept", "flagged", *sorted(k for k in groups if k.startswith("dropped"))]
    return {k: (sorted(groups[k], key=lambda i: data["clip_id"][i])[:SHEET_CAP], len(groups[k])) for k in order if k in groups}


def _thumbnails(loc: Location, data: dict[str, Any], rows: set[int]) -> dict[str, bytes]:
    by_file: dict[str, set[str]] = defaultdict(set)
    for i in rows:
        by_file[data["file"][i]].add(data["clip_id"][i])
    thumbs = {}
    for rel, ids in by_file.items():
        t = read_table(loc, rel, ["clip_id", "thumbnail"])
        thumbs.update({cid: b for cid, b in zip(t["clip_id"].to_pylist(), t["thumbnail"].to_pylist()) if cid in ids})
    return thumbs


def _tile(data: dict[str, Any], i: int, thumb: bytes | None, score: str | None) -> str:
    reasons = data["reject_reasons"][i] or data["flag_reasons"][i] or []
    tip = "\n".join([data["clip_id"][i], data["caption"][i] or "(no caption)", *reasons])
    img = f'<img src="data:image/jpeg;base64,{base64.b64encode(thumb).decode()}" alt="">' if thumb else "<div>(no thumbnail)</div>"
    value = data[score][i] if score else None
    line = f"{score} {value:.3g}" if value is not None else data["clip_id"][i][:12]
    return f'<div class="tile" title="{escape(tip)}">{img}{escape(line)}<br>{escape((data["caption"][i] or "")[:60])}</div>'


def render(output: str) -> str:
    """The report of ``output`` as an HTML string.

    Raises:
        FileNotFoundError: ``output`` has no manifest.
    """
    loc = Location.of(output)
    doc = mf.read(loc)
    if doc is None:
        raise FileNotFoundError(f"{output}: no {mf.MANIFEST}; not a curate output")
    config, funnel = doc.get("config") or {}, doc["funnel"]
    columns = _columns(doc)
    data = load_rows(loc, doc, columns)
    thr = thresholds(config)
    c = funnel["clips"]
    dedup_score = (config.get("dedup") or {}).get("score")
    score = dedup_score if dedup_score in columns and any(v is not None for v in data[dedup_score]) else None
    head = f"<!doctype html><html><head><meta charset=utf-8><title>curate report: {escape(output)}</title><style>{_CSS}</style>"
    html = [head + "</head><body><h1>curate report</h1>",
            (f"<p class=muted>{escape(output)} · pipeline {escape(str(config.get('name')))} · config {doc.get('config_hash')} · "
             f"curate {doc.get('curate_version')} · updated {doc.get('updated')}</p>")]
    if doc.get("random_init"):
        html.append("<p class=warn>Models ran on RANDOM weights (random_init): scores, captions and embeddings are meaningless.</p>")
    html.append("<h2>Funnel</h2>")
    v = funnel["videos"]
    html.append(bars([("videos in", v["inputs"], "#5b7db1"), ("done", v["done"], "#5b7db1"), ("rejected", v["rejected"], COLOURS["dropped"]),
                      ("failed", v["failed"], "#c0392b")], v["inputs"]))
    html.append(f"<h3>clips in: {c['produced']:,}</h3>")
    drops = [(f"dropped: {_KEY_LABEL.get(k, k)}", n, COLOURS["dropped"]) for k, n in funnel.get("clips_rejected", {}).items()]
    html.append(bars([("kept", c["accepted"], COLOURS["kept"]), ("flagged", c["flagged"], COLOURS["flagged"]),
                      ("dropped", c["rejected"], COLOURS["dropped"]), *drops], c["produced"]))
    html.append("<p class=muted>A dropped clip counts under each of its reasons; duplicates under the dedup test "
                "(phash_max_distance or cosine_threshold) that matched.</p>")
    for title, counts in (("videos rejected", funnel.get("videos_rejected")), ("videos failed", funnel.get("videos_failed"))):
        if counts:
            html.append(f"<h3>{title}</h3>" + bars([(k, n, "#888") for k, n in counts.items()], max(1, sum(counts.values()))))
    html.append('<h2>Scores</h2><p class="legend">' + "".join(f'<span style="background:{col}"></span>{o}' for o, col in COLOURS.items())
                + " · dashed: thresholds of the pipeline</p><div class=grid>")
    for col in columns:
        values = {o: np.array([x for x, oo in zip(data[col], data["outcome"]) if oo == o and x is not None], float) for o in COLOURS}
        if sum(len(a) for a in values.values()):
            html.append(f"<div class=hist><b>{escape(col)}</b>{histogram(values, thr.get(col, []))}</div>")
    html.append("</div><h2>Contact sheets</h2>")
    sheets = _sheets(data)
    thumbs = _thumbnails(loc, data, {i for rows, _ in sheets.values() for i in rows})
    for title, (rows, total) in sheets.items():
        html.append(f"<h3>{escape(title)} <span class=muted>(showing {len(rows)} of {total:,})</span></h3><div class=sheet>")
        html += [_tile(data, i, thumbs.get(data["clip_id"][i]), score) for i in rows]
        html.append("</div>")
    html.append(_timings(doc))
    html.append("</body></html>")
    return "\n".join(html)


def _timings(doc: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{escape(s)}</td><td class=num>{t['total_s']:.2f}</td><td class=num>{t['videos']}</td>"
                   f"<td class=num>{t['mean_s']:.3f}</td></tr>" for s, t in (doc.get("timings") or {}).items())
    out = ["<h2>Stage timings</h2><table><tr><th>stage</th><th>total s</th><th>videos</th><th>mean s / video</th></tr>", rows, "</table>"]
    versions = doc.get("versions") or []
    if versions:
        out.append("<h2>Versions of the shards</h2><table><tr><th>#</th><th>kind</th><th>part</th><th>created</th>"
                   "<th>config</th><th>moves</th><th>encoded</th></tr>")
        out += [f"<tr><td>{v['version']}</td><td>{escape(v['kind'])}</td><td>{escape(v['part'])}</td><td>{escape(v['created'])}</td>"
                f"<td>{escape(v['config_hash'])}</td><td>{escape(json.dumps(v['moves']))}</td><td class=num>{v['encoded']}</td></tr>"
                for v in versions]
        out.append("</table>")
    if doc.get("models"):
        out.append(f"<h2>Models</h2><pre>{escape(json.dumps(doc['models'], indent=1))}</pre>")
    return "".join(out)


def write_report(output: str, out: Path | None = None) -> str:
    """Write the report (default ``OUTPUT/report.html``) and return where it went."""
    page = render(output).encode()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(page)
        return str(out)
    loc = Location.of(output)
    loc.fs.pipe_file(loc.path("report.html"), page)
    return loc.path("report.html")
