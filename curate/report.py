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
import hashlib
import json
import re
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curate.output import manifest as mf
from curate.decisions import CHECKS, thresholds_by_column
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
.sheet{display:flex;flex-wrap:wrap;gap:6px}.tile{width:160px;height:146px;overflow:hidden;font-size:11px;color:#444}
.tile img,.tile .noimg{width:160px;height:90px;object-fit:contain;display:block;border-radius:3px;background:#eee}
.tile .score{font-weight:600;color:#222;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.tile .cap{height:2.8em;overflow:hidden}
.versions td{vertical-align:top;border-top:1px solid #eee}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
"""


def _columns(doc: dict[str, Any]) -> dict[str, str]:
    """Float clip column -> its unit (schema field metadata; empty when it has none)."""
    params = (doc.get("schema_params") or {}).get("clip")
    return {f.name: (f.metadata or {}).get(b"unit", b"").decode() for f in load_schema("clip", params=params)
            if pa.types.is_floating(f.type) and f.name not in _NOT_SCORES}


def load_rows(loc: Location, doc: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """Column -> numpy/list over every committed clip row, plus ``outcome``, ``file`` and ``reasons``."""
    data: dict[str, list[Any]] = defaultdict(list)
    for table, entries in (doc.get("shards") or {}).items():
        names = load_schema(TABLES.get(table, "clip")).names
        keys = ["clip_id", "caption", "flag_reasons", "reject_reasons", "duplicate_of", "phash", "source_uri", "start_s", "end_s"]
        want = [c for c in [*keys, *columns] if c in names]
        for e in entries:
            t = read_table(loc, e["path"], want)
            for c in {*keys, *columns}:
                data[c] += t.column(c).to_pylist() if c in t.column_names else [None] * t.num_rows
            data["outcome"] += [OUTCOME.get(table, table)] * t.num_rows
            data["file"] += [e["path"]] * t.num_rows
    return data


def thresholds(config: dict[str, Any]) -> dict[str, list[tuple[str, float]]]:
    """Score column -> the ``(name, value)`` thresholds the pipeline applies to it."""
    return thresholds_by_column(config)


def _sheets(data: dict[str, Any]) -> dict[str, tuple[str, list[int], int]]:
    """Sheet title -> (key, first :data:`SHEET_CAP` row indices by clip id, rows in all): kept, flagged, each drop reason.

    The key is ``kept``, ``flagged`` or the threshold a drop reason names (``min_motion``).
    """
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, outcome in enumerate(data["outcome"]):
        if outcome == "dropped":
            for key in sorted({r["key"] for r in data["reject_reasons"][i] or []}):
                groups[(f"dropped: {_KEY_LABEL.get(key, key)}", key)].append(i)
        else:
            groups[(outcome, outcome)].append(i)
    order = [g for g in groups if g[0] == "kept"] + [g for g in groups if g[0] == "flagged"]
    order += sorted(g for g in groups if g[0].startswith("dropped"))
    return {title: (key, sorted(groups[(title, key)], key=lambda i: data["clip_id"][i])[:SHEET_CAP], len(groups[(title, key)]))
            for title, key in order}


_SHORT = {"motion_score": "motion", "aesthetic_score": "aesthetic", "text_area_max": "text area"}


def _fmt_score(column: str, value: float) -> str:
    return f"{_SHORT.get(column, column)} {value:.3g}"


def _column_of(key: str, sim: str) -> str | None:
    """The score column a reason key judges (``min_motion`` -> ``motion_score``), if any."""
    if key in CHECKS:
        return CHECKS[key][0]
    return sim if key in ("reject_below", "pass_min") else None


def _phash_distance(data: dict[str, Any], i: int) -> str | None:
    """``phash distance N`` between clip ``i`` and the clip it duplicates, when both are held."""
    dup = data["duplicate_of"][i]
    j = data["clip_id"].index(dup) if dup and dup in data["clip_id"] else None  # a sheet shows at most SHEET_CAP clips
    a, b = data["phash"][i], data["phash"][j] if j is not None else None
    return f"phash distance {bin(int(a, 16) ^ int(b, 16)).count('1')}" if a and b else None


def decisive(data: dict[str, Any], i: int, key: str, score: str | None, sim: str = "clip_sim_mean") -> str:
    """The label of clip ``i`` on sheet ``key``: the score that put it there (``motion 0.02`` under min_motion).

    Kept clips show the dedup ranking score; flagged ones their flag's score;
    duplicates the pHash distance to the clip they duplicate (or the reason's
    detail). Found from the reason keys and the stored columns, never by
    reading a reason's sentence.
    """
    if key not in ("kept", "flagged"):
        reasons = [r for r in data["reject_reasons"][i] or [] if r["key"] == key]
    else:
        reasons = list(data["flag_reasons"][i] or []) if key == "flagged" else []
    for r in reasons:
        if r["key"] == "phash_max_distance" and (label := _phash_distance(data, i)):
            return label
        col = _column_of(r["key"], sim)
        if col in data and data[col][i] is not None:
            return _fmt_score(col, data[col][i])
        return r["detail"]
    if score and data[score][i] is not None:
        return _fmt_score(score, data[score][i])
    return data["clip_id"][i][:12]


def _thumbnails(loc: Location, data: dict[str, Any], rows: set[int]) -> dict[str, bytes]:
    by_file: dict[str, set[str]] = defaultdict(set)
    for i in rows:
        by_file[data["file"][i]].add(data["clip_id"][i])
    thumbs = {}
    for rel, ids in by_file.items():
        t = read_table(loc, rel, ["clip_id", "thumbnail"])
        thumbs.update({cid: b for cid, b in zip(t["clip_id"].to_pylist(), t["thumbnail"].to_pylist()) if cid in ids})
    return thumbs


def _tile(data: dict[str, Any], i: int, thumb: bytes | None, label: str) -> str:
    reasons = data["reject_reasons"][i] or data["flag_reasons"][i] or []
    uri, start, end = data["source_uri"][i], data["start_s"][i], data["end_s"][i]
    where = f"{str(uri or '?').rsplit('/', 1)[-1]}  {start:.2f}–{end:.2f} s" if start is not None and end is not None else str(uri)
    tip = "\n".join([where, str(uri), f"clip {data['clip_id'][i]}", data["caption"][i] or "(no caption)", *(r["detail"] for r in reasons)])
    img = (f'<img src="data:image/jpeg;base64,{base64.b64encode(thumb).decode()}" alt="">' if thumb
           else "<div class=noimg>(no thumbnail)</div>")
    return (f'<div class="tile" title="{escape(tip)}">{img}<div class=score>{escape(label)}</div>'
            f'<div class=cap>{escape((data["caption"][i] or "")[:90])}</div></div>')


def output_state(doc: dict[str, Any]) -> str:
    """A short fingerprint of what OUTPUT holds (committed ledger parts and config): changes with every commit."""
    parts = (doc.get("ledger") or {}).get("parts") or []
    return hashlib.sha1(json.dumps([parts, doc.get("config_hash")]).encode()).hexdigest()[:12]


def report_freshness(output: str, name: str = "report.html") -> tuple[bool, str] | None:
    """``(stale, message)`` for ``OUTPUT/report.html`` against OUTPUT as it is now; ``None`` when there is none.

    The page records the :func:`output_state` it was built from in a ``<meta>``
    tag; any commit since (a refilter, a resumed run) changes the state.
    """
    loc = Location.of(output)
    doc = mf.read(loc)
    try:
        with loc.fs.open(loc.path(name), "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    if doc is None:
        return None
    built = re.search(r'<meta name="curate-output-state" content="([^"]*)"', head)
    version = re.search(r'<meta name="curate-shard-version" content="([^"]*)"', head)
    path = loc.path(name)
    if built and built.group(1) == output_state(doc):
        return False, f"{path} is up to date"
    was = f"shard version {version.group(1)}" if version else "an older curate"
    return True, (f"{path} is stale: built from {was}, OUTPUT has changed since (now shard version "
                  f"{len(doc.get('versions') or [])}); rebuild it with `curate report {output}`")


def render(output: str) -> str:
    """The report of ``output`` as an HTML string.

    Raises:
        FileNotFoundError: ``output`` has no manifest.
    """
    loc = Location.of(output)
    doc = mf.read_output(loc, output)
    config, funnel = doc.get("config") or {}, doc["funnel"]
    units = _columns(doc)
    columns = list(units)
    data = load_rows(loc, doc, columns)
    thr = thresholds(config)
    c = funnel["clips"]
    dedup_score = (config.get("dedup") or {}).get("score")
    score = dedup_score if dedup_score in columns and any(v is not None for v in data[dedup_score]) else None
    version = len(doc.get("versions") or [])
    head = (f'<!doctype html><html><head><meta charset=utf-8><meta name="curate-output-state" content="{output_state(doc)}">'
            f'<meta name="curate-shard-version" content="{version}"><title>curate report: {escape(output)}</title><style>{_CSS}</style>')
    html = [head + "</head><body><h1>curate report</h1>",
            (f"<p class=muted>{escape(output)} · pipeline {escape(str(config.get('name')))} · config {doc.get('config_hash')} · "
             f"curate {doc.get('curate_version')} · updated {doc.get('updated')}</p>"),
            (f"<p class=muted>Built {escape(_when(mf.now()))} from shard version {version} (OUTPUT state {output_state(doc)}). "
             f"After a refilter or another run this page is stale: <code>curate inspect {escape(output)}</code> says so, "
             f"<code>curate report {escape(output)}</code> rebuilds it.</p>")]
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
            title = f"{col} ({units[col]})" if units[col] else col
            html.append(f"<div class=hist><b>{escape(title)}</b>{histogram(values, thr.get(col, []))}</div>")
    html.append("</div><h2>Contact sheets</h2>")
    sheets = _sheets(data)
    thumbs = _thumbnails(loc, data, {i for _, rows, _ in sheets.values() for i in rows})
    for title, (key, rows, total) in sheets.items():
        html.append(f"<h3>{escape(title)} <span class=muted>(showing {len(rows)} of {total:,})</span></h3><div class=sheet>")
        sim = f"clip_sim_{(config.get('caption_check') or {}).get('statistic', 'mean')}"
        html += [_tile(data, i, thumbs.get(data["clip_id"][i]), decisive(data, i, key, score, sim)) for i in rows]
        html.append("</div>")
    from curate.review.report_section import review_section

    html.append(review_section(loc, doc))
    html.append(_timings(doc))
    html.append("</body></html>")
    return "\n".join(html)


def _when(iso: str | None) -> str:
    """``2026-11-26T07:17:07+00:00`` as ``2026-11-26 07:17 UTC``."""
    if not iso:
        return "-"
    return iso[:16].replace("T", " ") + (" UTC" if iso.endswith(("+00:00", "Z")) else "")


def _timings(doc: dict[str, Any]) -> str:
    from curate.pipeline import in_pipeline_order

    timings = doc.get("timings") or {}
    rows = "".join(f"<tr><td>{escape(s)}</td><td class=num>{timings[s]['total_s']:.2f}</td><td class=num>{timings[s]['videos']}</td>"
                   f"<td class=num>{timings[s]['mean_s']:.3f}</td></tr>" for s in in_pipeline_order(timings))
    out = ["<h2>Stage timings</h2><p class=muted>In pipeline order; every attempt counts.</p>"
           "<table><tr><th>stage</th><th>total s</th><th>videos</th><th>mean s / video</th></tr>", rows, "</table>"]
    out.append(_versions(doc))
    if doc.get("models"):
        out.append(f"<h2>Models</h2><pre>{escape(json.dumps(doc['models'], indent=1))}</pre>")
    return "".join(out)


def version_rows(doc: dict[str, Any]) -> list[dict[str, str]]:
    """The shard versions as readable rows: version, kind, when, run, thresholds changed (before → after), moves.

    Version 0 is the shards as the run wrote them; each dedup or refilter pass
    that changed a decision is the next version.
    """
    from curate.output.rewrite import describe_moves
    from curate.refilter import describe_changes, threshold_changes

    runs = doc.get("runs") or []
    rows = [{"version": "0", "kind": "run", "when": _when(doc.get("created")), "run": runs[0]["run_id"] if runs else "-",
             "thresholds": "as the pipeline set them", "moves": "-"}]
    seen: dict[str, Any] = {}  # the latest full thresholds: the "before" of records that lack it
    for v in doc.get("versions") or []:
        thr = v.get("thresholds") or {}
        if v.get("kind") == "review":
            d = v.get("decisions") or {}
            changed = f"human decisions: {d.get('approve', 0):,} approved, {d.get('reject', 0):,} rejected (thresholds unchanged)"
        elif v.get("kind") == "latents":
            changed = f"latents added: VAE {v.get('vae')}, {v.get('computed', 0):,} clip × bucket tensors (thresholds unchanged)"
        elif v.get("kind") == "text_embeddings":
            changed = (f"caption embeddings added: encoder {v.get('encoder')}, {v.get('computed', 0):,} clips "
                       f"({v.get('superseded_rows', 0):,} stale ones replaced; thresholds unchanged)")
        elif v.get("kind") == "dedup":
            d = thr.get("dedup") or {}
            changed = (f"dedup pass: phash ≤ {d.get('phash_max_distance')}, cosine ≥ {d.get('cosine_threshold')}, "
                       f"best {d.get('score')} kept")
        else:
            before = v.get("before") or (seen or None)
            changed = describe_changes(threshold_changes(before, thr)) if before else "(no record of the thresholds before)"
            changed = changed or "none (same thresholds)"
        if "filter" in thr:
            seen = thr
        moves = describe_moves(v.get("moves") or {}) or "none"
        if v.get("updated"):
            moves += f"; {v['updated']:,} updated in place"
        if v.get("encoded"):
            moves += f"; {v['encoded']:,} encoded from source"
        rows.append({"version": str(v.get("version")), "kind": str(v.get("kind")), "when": _when(v.get("created")),
                     "run": str(v.get("run_id", "-")), "thresholds": changed, "moves": moves})
    return rows


def _versions(doc: dict[str, Any]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("version", "kind", "when", "run", "thresholds changed (before → after)", "moves"))
    body = "".join("<tr>" + "".join(f"<td>{escape(r[k])}</td>" for k in ("version", "kind", "when", "run", "thresholds", "moves"))
                   + "</tr>" for r in version_rows(doc))
    return f"<h2>Versions of the shards</h2><table class=versions><tr>{head}</tr>{body}</table>"


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
