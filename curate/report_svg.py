"""Inline SVG for the run report: stacked histograms with threshold lines, and funnel bars.

Drawn by hand so the report needs no plotting library and stays one
self-contained HTML file that any browser opens offline.
"""

from __future__ import annotations

from html import escape

import numpy as np

# Outcome -> colour; the same in histograms, funnel and contact-sheet headings.
COLOURS = {"kept": "#2e9d57", "flagged": "#e69500", "dropped": "#9aa3ad"}
_W, _H, _PAD_L, _PAD_B, _PAD_T = 420, 180, 40, 28, 34


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def histogram(values: dict[str, np.ndarray], thresholds: list[tuple[str, float]], bins: int = 30) -> str:
    """Stacked histogram of ``values`` per outcome, with a dashed line per ``(name, value)`` threshold.

    The axis spans the data (thresholds just outside it widen it a little);
    a threshold far outside is drawn at the edge with an arrow, so one loose
    threshold does not squash the distribution.
    """
    finite = {k: v[np.isfinite(v)] for k, v in values.items()}
    every = np.concatenate([v for v in finite.values()] or [np.zeros(0)])
    if not every.size:
        return "<p class=muted>no values</p>"
    lo, hi = float(np.min(every)), float(np.max(every))
    span = max(hi - lo, 1e-9)
    for _, t in thresholds:
        if lo - 0.25 * span <= t <= hi + 0.25 * span:
            lo, hi = min(lo, t), max(hi, t)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts = {k: np.histogram(v, edges)[0] for k, v in finite.items()}
    top = max(1, int(sum(counts.values()).max()))
    pw, ph = _W - _PAD_L - 8, _H - _PAD_B - _PAD_T

    def x(v: float) -> float:
        return _PAD_L + (v - lo) / (hi - lo) * pw

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img">']
    base = np.zeros(bins)
    bw = pw / bins
    for outcome, colour in COLOURS.items():
        c = counts.get(outcome)
        if c is None:
            continue
        for i in np.flatnonzero(c):
            y0 = _PAD_T + ph * (1 - (base[i] + c[i]) / top)
            parts.append(f'<rect x="{_PAD_L + i * bw:.1f}" y="{y0:.1f}" width="{max(bw - 1, 1):.1f}" height="{ph * c[i] / top:.1f}" '
                         f'fill="{colour}"><title>{outcome}: {int(c[i])} in [{_fmt(edges[i])}, {_fmt(edges[i + 1])})</title></rect>')
        base += c
    axis_y = _PAD_T + ph
    parts.append(f'<line x1="{_PAD_L}" y1="{axis_y}" x2="{_PAD_L + pw}" y2="{axis_y}" stroke="#444"/>')
    parts.append(f'<line x1="{_PAD_L}" y1="{_PAD_T}" x2="{_PAD_L}" y2="{axis_y}" stroke="#444"/>')
    parts.append(f'<text x="{_PAD_L - 4}" y="{_PAD_T + 8}" text-anchor="end" class="tick">{top}</text>')
    parts.append(f'<text x="{_PAD_L - 4}" y="{axis_y}" text-anchor="end" class="tick">0</text>')
    for v, anchor in ((lo, "start"), ((lo + hi) / 2, "middle"), (hi, "end")):
        parts.append(f'<text x="{x(v):.1f}" y="{axis_y + 14}" text-anchor="{anchor}" class="tick">{_fmt(v)}</text>')
    for k, (name, t) in enumerate(thresholds):
        tx = x(min(max(t, lo), hi))
        label = ("◀ " if t < lo else "") + f"{name} {_fmt(t)}" + (" ▶" if t > hi else "")
        anchor = "start" if tx < _PAD_L + pw / 3 else "end" if tx > _PAD_L + 2 * pw / 3 else "middle"
        parts.append(f'<line x1="{tx:.1f}" y1="{_PAD_T - 4}" x2="{tx:.1f}" y2="{axis_y}" stroke="#c0392b" stroke-width="1.5" '
                     f'stroke-dasharray="4 3"><title>{escape(name)} = {_fmt(t)}</title></line>')
        parts.append(f'<text x="{tx:.1f}" y="{_PAD_T - 8 - 11 * (k % 2)}" text-anchor="{anchor}" class="thr">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bars(rows: list[tuple[str, int, str]], total: int) -> str:
    """Horizontal bars ``(label, count, colour)`` scaled to ``total``, as an HTML table."""
    out = ['<table class="bars">']
    for label, n, colour in rows:
        width = 100.0 * n / total if total else 0.0
        out.append(f'<tr><td class="lbl">{escape(label)}</td><td class="num">{n:,}</td>'
                   f'<td class="bar"><div style="width:{width:.1f}%;background:{colour}"></div></td>'
                   f'<td class="num">{width:.1f}%</td></tr>')
    out.append("</table>")
    return "".join(out)
