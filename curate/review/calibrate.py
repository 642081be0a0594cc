"""``curate review calibrate``: what the decisions say about the thresholds.

For every threshold that drives a filter or a flag (``filter.*`` and the caption
check's ``pass_min``) and has labelled clips, the curve over candidate values:

* **precision**: the share of good clips (approved by a person) among the clips the
  pipeline would accept — this threshold at the candidate, every other threshold as it is;
* **thrown away**: the share of good clips it would not accept.

Labels come from the verdicts; each is weighted by the inverse of its sampling rate
(a QA sample of 5% of accepted clips stands for 20 times as many), so the curves
estimate the whole output, not just the queue. The proposal per threshold is the
least strict value whose precision reaches the target. The proposed pipeline is the
OUTPUT's (or the given one) with those values: ``curate refilter OUTPUT FILE`` applies it.
The curves are also written to ``OUTPUT/_review/calibration.json`` for ``curate report``.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curate.config import PipelineConfig, load_pipeline
from curate.review.apply import verdicts
from curate.review.clips import ClipSource
from curate.review.db import DB_DIR, open_db
from curate.review.queue import Queue

CALIBRATION = "calibration.json"
_OPS = {"<": operator.ge, ">": operator.le}  # symbol shown when a check fails -> what must hold to keep


@dataclass
class Curve:
    threshold: str  # e.g. min_sharpness, caption_check.pass_min
    column: str
    keep_above: bool  # a min_ threshold: clips at or above it are kept
    current: float | None
    points: list[dict[str, float]] = field(default_factory=list)  # {value, precision, thrown_away, kept}
    proposed: float | None = None
    labelled: int = 0


@dataclass
class Calibration:
    target: float
    curves: list[Curve]
    proposed: dict[str, float]
    pipeline: Path | None
    labelled: int

    def summary(self) -> str:
        lines = [f"calibration from {self.labelled} labelled clip(s), target precision {self.target:g}:"]
        for c in self.curves:
            now = next((p for p in c.points if c.current is not None and p["value"] == c.current), None)
            cur = f"{c.current:g}" if c.current is not None else "off"
            at = f" (precision {now['precision']:.2f}, thrown away {now['thrown_away']:.2f})" if now else ""
            prop = f"{c.proposed:g}" if c.proposed is not None else "none reaches the target"
            lines.append(f"  {c.threshold:<28} now {cur}{at} -> proposed {prop}")
        if self.pipeline is not None:
            lines.append(f"proposed pipeline: {self.pipeline}\n  apply it: curate refilter OUTPUT {self.pipeline}")
        else:
            lines.append("no threshold to propose (label more clips: approve and reject some of each kind)")
        return "\n".join(lines)


def _checks(config: PipelineConfig) -> list[tuple[str, str, bool, float | None]]:
    """``(threshold, column, keep_above, current)`` for every calibratable threshold."""
    from curate.stages.filter import CHECKS

    out = [(name, col, sym == "<", getattr(config.filter, name)) for name, (col, _, sym) in CHECKS.items()]
    cc = config.caption_check
    if cc is not None:
        out.append(("caption_check.pass_min", f"clip_sim_{cc.statistic}", True, cc.pass_min))
    return out


def _passes(row: dict[str, Any], checks: list[tuple[str, str, bool, float | None]], skip: str) -> bool:
    for name, col, above, thr in checks:
        if name == skip or thr is None or row.get(col) is None:
            continue
        if (row[col] < thr) if above else (row[col] > thr):
            return False
    return True


def curves(rows: list[dict[str, Any]], config: PipelineConfig, target: float) -> list[Curve]:
    """``rows``: scores plus ``good`` (bool) and ``weight``."""
    checks = _checks(config)
    out = []
    for name, col, above, current in checks:
        data = [(float(r[col]), r["good"], r["weight"], _passes(r, checks, name)) for r in rows if r.get(col) is not None]
        if not any(g for _, g, _, _ in data) or all(g for _, g, _, _ in data):
            continue  # needs good and bad clips to say anything
        good_total = sum(w for _, g, w, _ in data if g)
        values = sorted({v for v, *_ in data} | ({current} if current is not None else set()))
        curve = Curve(name, col, above, current, labelled=len(data))
        for t in values:
            kept = [(g, w) for v, g, w, ok in data if ok and (v >= t if above else v <= t)]
            kw = sum(w for _, w in kept)
            good_kept = sum(w for g, w in kept if g)
            curve.points.append({"value": t, "precision": round(good_kept / kw, 4) if kw else 1.0,
                                 "thrown_away": round(1 - good_kept / good_total, 4), "kept": round(kw, 3)})
        reach = [p["value"] for p in curve.points if p["precision"] >= target and p["kept"] > 0]
        if reach:
            curve.proposed = min(reach) if above else max(reach)  # the least strict value that reaches the target
        out.append(curve)
    return out


def propose(config: PipelineConfig, cs: list[Curve]) -> tuple[PipelineConfig, dict[str, float]]:
    """``config`` with the proposed thresholds (each kept only if the pipeline stays valid)."""
    changed: dict[str, float] = {}
    for c in cs:
        if c.proposed is None or c.proposed == c.current:
            continue
        data = config.model_dump(mode="json")
        section, _, key = c.threshold.rpartition(".")
        data[section or "filter"][key] = float(c.proposed)
        try:
            config = PipelineConfig.model_validate(data)
        except ValueError:
            continue  # e.g. pass_min below reject_below: leave it
        changed[c.threshold] = float(c.proposed)
    return config, changed


def calibrate(output: str, db_url: str, pipeline: Path | None = None, target: float = 0.9, to: Path | None = None) -> Calibration:
    source = ClipSource(output)
    config = load_pipeline(pipeline) if pipeline is not None else PipelineConfig.model_validate(source.config)
    queue = Queue(open_db(db_url))
    items = queue.items()
    rows = []
    for cid, v in verdicts(queue.effective_rows()).items():
        row = source.rows.get(cid)
        if row is None:
            continue
        rate = (items.get(cid) or {}).get("rate") or 1.0
        rows.append(dict(row, good=v.decision == "approve", weight=1.0 / rate))
    cs = curves(rows, config, target)
    new, changed = propose(config, cs)
    path = None
    if changed:
        path = to or Path(output) / "review-calibrated.yaml"
        head = "# Proposed by `curate review calibrate` for precision >= {:g}: {}\n".format(
            target, ", ".join(f"{k} {v:g}" for k, v in changed.items()))
        path.write_text(head + yaml.safe_dump(new.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    if "://" not in output:
        d = Path(output) / DB_DIR
        d.mkdir(exist_ok=True)
        (d / CALIBRATION).write_text(json.dumps({"target": target, "labelled": len(rows), "proposed": changed,
                                                 "curves": [c.__dict__ for c in cs]}, indent=1))
    return Calibration(target, cs, changed, path, len(rows))
