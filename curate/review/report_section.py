"""The review section of ``curate report``: decisions per reason, agreement, QA precision, calibration curves.

Read from the OUTPUT only: the latest ``review`` version in the manifest (its
figures are cumulative) and ``_review/calibration.json`` when ``calibrate`` wrote it.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from curate.output.shards import Location
from curate.review.db import DB_DIR

_W, _H, _L, _B = 360, 170, 36, 26


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _curve_svg(curve: dict[str, Any]) -> str:
    """Precision (green) and share of good clips thrown away (grey) against the threshold, current and proposed marked."""
    pts = curve.get("points") or []
    if len(pts) < 2:
        return ""
    xs = [p["value"] for p in pts]
    lo, hi = min(xs), max(xs)
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return _L + (v - lo) / span * (_W - _L - 8)

    def y(v: float) -> float:
        return 8 + (1 - v) * (_H - _B - 8)

    def line(key: str, colour: str) -> str:
        d = " ".join(f"{x(p['value']):.1f},{y(p[key]):.1f}" for p in pts)
        return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{d}"/>'

    marks = ""
    for name, v, colour in (("now", curve.get("current"), "#555"), ("proposed", curve.get("proposed"), "#c0392b")):
        if v is not None and lo <= v <= hi:
            marks += (f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="8" y2="{_H - _B}" stroke="{colour}" stroke-dasharray="4 3"/>'
                      f'<text class=thr x="{x(v) + 3:.1f}" y="18">{name} {v:.3g}</text>')
    axis = (f'<text class=tick x="{_L}" y="{_H - 8}">{lo:.3g}</text><text class=tick x="{_W - 40}" y="{_H - 8}">{hi:.3g}</text>'
            f'<text class=tick x="2" y="12">100%</text><text class=tick x="10" y="{_H - _B}">0%</text>')
    return (f'<div class=hist><b>{escape(curve["threshold"])}</b> <span class=muted>({curve.get("labelled", 0)} labelled)</span>'
            f'<svg width="{_W}" height="{_H}">{line("precision", "#2e9d57")}{line("thrown_away", "#9aa3ad")}{marks}{axis}</svg></div>')


def review_section(loc: Location, doc: dict[str, Any]) -> str:
    reviews = [v for v in doc.get("versions") or [] if v.get("kind") == "review"]
    try:
        calibration = json.loads(loc.fs.cat_file(loc.path(DB_DIR, "calibration.json")))
    except (FileNotFoundError, OSError, ValueError):
        calibration = None
    if not reviews and not calibration:
        return ""
    html = ["<h2>Review</h2>"]
    if reviews:
        v = reviews[-1]
        d, agree, qa = v.get("decisions") or {}, v.get("agreement") or {}, v.get("qa") or {}
        html.append(f"<p>Human decisions applied in shard version {v.get('version')}: {d.get('approve', 0):,} approved, "
                    f"{d.get('reject', 0):,} rejected, {v.get('caption_edits', 0):,} captions edited, by "
                    f"{len(v.get('annotators') or {})} annotator(s).</p>")
        rows = "".join(f"<tr><td>{escape(str(k))}</td><td class=num>{n:,}</td></tr>"
                       for k, n in sorted((v.get("reasons") or {}).items(), key=lambda kv: -kv[1]))
        html.append(f"<h3>decisions per reason</h3><table>{rows}</table>")
        if agree.get("double_reviewed"):
            html.append(f"<p>Double review: {agree['agreed']:,} of {agree['double_reviewed']:,} clips agreed ({_pct(agree.get('rate'))}).</p>")
        for kind, label in (("qa_accepted", "precision of the accepted clips (QA sample approved)"),
                            ("qa_rejected", "good clips among the rejected (QA sample approved)")):
            q = qa.get(kind) or {}
            if q.get("reviewed"):
                ci = q.get("ci95") or [None, None]
                html.append(f"<p>{label}: {_pct(q.get('share'))} of {q['reviewed']:,} "
                            f"(95% interval {_pct(ci[0])}–{_pct(ci[1])}).</p>")
    if calibration:
        proposed = ", ".join(f"{k} {val:g}" for k, val in (calibration.get("proposed") or {}).items()) or "none"
        html.append(f"<h3>calibration</h3><p class=muted>green: precision of the accepted set; grey: share of good clips "
                    f"thrown away; target precision {calibration.get('target')}; proposed: {escape(proposed)}</p><div class=grid>")
        html += [_curve_svg(c) for c in calibration.get("curves") or []]
        html.append("</div>")
    return "\n".join(html)
