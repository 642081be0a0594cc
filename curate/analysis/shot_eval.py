"""Scoring detected boundaries against ground truth (tests and ``bench/bench_split.py``).

:func:`score` is the matching the shot tests have always used: a ground-truth
cut matches a reported boundary within ``tol`` frames, a gradual transition
any boundary that overlaps it (``tol`` frames of slack), each reported
boundary at most once. :func:`split_quality` breaks the same matching down
for the split-quality benchmark: hard cuts and gradual transitions
separately, boundaries placed at in-shot events (flashes, whip pans), and
clips (planned exactly as the analysis stage plans them) that hold a cut or
any frame of a gradual transition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from curate.analysis.shots import Boundary


def _match(pred: Sequence[Boundary], events: Sequence[tuple[int, int]], tol: int) -> tuple[list[int | None], set[int]]:
    """For each event (s, e inclusive) the index of the prediction it matched, or None; and the used predictions."""
    used: set[int] = set()
    hit: list[int | None] = []
    for s, e in events:
        for j, b in enumerate(pred):
            if j not in used and b.start - tol <= e and s <= max(b.end - 1, b.start) + tol:
                used.add(j)
                hit.append(j)
                break
        else:
            hit.append(None)
    return hit, used


def score(pred: Sequence[Boundary], cuts: Sequence[int], spans: Sequence[tuple[int, int]] = (), tol: int = 2) -> tuple[int, int, int]:
    """(tp, fp, fn): a cut matches a boundary within ``tol`` frames; a transition any overlapping one."""
    hit, used = _match(pred, [(c, c) for c in cuts] + [tuple(t) for t in spans], tol)
    tp = sum(h is not None for h in hit)
    return tp, len(pred) - len(used), len(cuts) + len(spans) - tp


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(1, 2 * tp + fp + fn)


def clips_with_boundary(clips: Sequence[tuple[int, int]], cuts: Sequence[int], spans: Sequence[tuple[int, int]] = ()) -> int:
    """How many clips ``[a, b)`` hold a cut (frames ``c-1`` and ``c`` both inside) or a frame of a span (inclusive)."""
    bad = 0
    for a, b in clips:
        if any(a < c < b for c in cuts) or any(a <= e and s <= b - 1 for s, e in spans):
            bad += 1
    return bad


def planned_clips(pred: Sequence[Boundary], num_frames: int, fps: float, clips_config=None) -> list[tuple[int, int]]:
    """Clip spans the analysis stage would cut from these boundaries (``ClipsConfig`` defaults unless given)."""
    from curate.analysis.clips import at_rate, plan_clips
    from curate.config import ClipsConfig

    starts = np.arange(num_frames) / fps
    spans, _ = plan_clips(list(pred), starts, starts + 1 / fps, at_rate(clips_config or ClipsConfig(), fps))
    return [(c.start, c.end) for c in spans]


@dataclass
class SplitQuality:
    """Counts over one or more videos; add them with ``+``."""

    cut: list[int] = field(default_factory=lambda: [0, 0, 0])  # tp, fp, fn
    gradual: list[int] = field(default_factory=lambda: [0, 0, 0])
    jumps_found: int = 0
    jumps: int = 0
    at_flash: int = 0  # reported boundaries touching an in-shot flash
    flashes: int = 0
    at_whip: int = 0  # reported boundaries touching a whip pan
    whips: int = 0
    clips: int = 0
    bad_clips: int = 0  # clips holding a ground-truth cut or a gradual transition's frame
    # the clip purity check (when scored with one): clips it changed (split or trimmed), rejected
    # (``contains_transition``), and of those the clean ones (no ground-truth boundary inside): false actions
    purity_changed: int = 0
    purity_rejected: int = 0
    purity_false: int = 0

    def __add__(self, o: "SplitQuality") -> "SplitQuality":
        return SplitQuality([a + b for a, b in zip(self.cut, o.cut)], [a + b for a, b in zip(self.gradual, o.gradual)],
                            self.jumps_found + o.jumps_found, self.jumps + o.jumps, self.at_flash + o.at_flash,
                            self.flashes + o.flashes, self.at_whip + o.at_whip, self.whips + o.whips,
                            self.clips + o.clips, self.bad_clips + o.bad_clips, self.purity_changed + o.purity_changed,
                            self.purity_rejected + o.purity_rejected, self.purity_false + o.purity_false)

    @property
    def cut_f1(self) -> float:
        return f1(*self.cut)

    @property
    def gradual_f1(self) -> float:
        return f1(*self.gradual)


def split_quality(pred: Sequence[Boundary], cuts: Sequence[int], spans: Sequence[tuple[int, int]], num_frames: int,
                  fps: float, jumps: Sequence[int] = (), flashes: Sequence[tuple[int, int]] = (),
                  whips: Sequence[tuple[int, int]] = (), tol: int = 2, clips_config=None, purity=None) -> SplitQuality:
    """One matching (as :func:`score`), then counted per kind.

    A reported boundary no ground-truth event matched is a false positive of
    its own kind (a cut if ``start == end``, else gradual). ``jumps`` are the
    cuts that are jump cuts (also in ``cuts``). With ``purity`` (a
    :class:`~curate.analysis.purity.PurityCheck` that has seen the video's
    frames) the planned clips go through the purity check as in the analysis
    stage, and ``bad_clips`` counts the clips it keeps.
    """
    pred = sorted(pred)
    events = [(c, c) for c in cuts] + [tuple(t) for t in spans]
    hit, used = _match(pred, events, tol)
    q = SplitQuality()
    n_cut = len(cuts)
    tp_cut = sum(h is not None for h in hit[:n_cut])
    tp_gr = sum(h is not None for h in hit[n_cut:])
    unmatched = [b for j, b in enumerate(pred) if j not in used]
    q.cut = [tp_cut, sum(b.is_cut for b in unmatched), n_cut - tp_cut]
    q.gradual = [tp_gr, sum(not b.is_cut for b in unmatched), len(spans) - tp_gr]
    q.jumps = len(jumps)
    q.jumps_found = sum(h is not None for c, h in zip(cuts, hit[:n_cut]) if c in set(jumps))

    def touching(s: int, e: int) -> bool:
        return any(b.start - tol <= e and s <= max(b.end - 1, b.start) + tol for b in unmatched)

    q.flashes, q.at_flash = len(flashes), sum(touching(s, e) for s, e in flashes)
    q.whips, q.at_whip = len(whips), sum(touching(s, e) for s, e in whips)
    clips = planned_clips(pred, num_frames, fps, clips_config)
    if purity is not None:
        from curate.analysis.clips import at_rate
        from curate.analysis.purity import purify
        from curate.config import ClipsConfig

        cfg = at_rate(clips_config or ClipsConfig(), fps)
        kept = []
        for a, b in clips:
            pieces, found = purify(purity, a, b, cfg.trim_frames, lambda x, y: (y - x) / fps >= cfg.min_s - 1e-6)
            kept += pieces
            if found:
                q.purity_changed += bool(pieces)
                q.purity_rejected += not pieces
                q.purity_false += not clips_with_boundary([(a, b)], cuts, spans)
        clips = kept
    q.clips, q.bad_clips = len(clips), clips_with_boundary(clips, cuts, spans)
    return q
