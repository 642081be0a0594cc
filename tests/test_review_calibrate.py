"""``curate review calibrate`` proposes thresholds from decisions, as a pipeline ``curate refilter`` applies."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from curate.cli import app
from curate.config import PipelineConfig
from curate.review.calibrate import Curve, curves
from curate.review.clips import ClipSource
from tests.test_review_apply import decide_all, tables


def test_curves_weight_samples_and_propose_the_least_strict_threshold() -> None:
    cfg = PipelineConfig.model_validate({"filter": {"min_sharpness": 5.0}})
    rows = [{"sharpness": s, "good": s >= 40, "weight": 1.0} for s in (10, 20, 30, 40, 50, 60)]
    (c,) = [c for c in curves(rows, cfg, 1.0) if c.threshold == "min_sharpness"]
    assert isinstance(c, Curve) and c.proposed == 40
    at = {p["value"]: p for p in c.points}
    assert at[5.0]["precision"] == 0.5 and at[40]["precision"] == 1.0 and at[50]["thrown_away"] == 0.3333
    rows[0]["weight"] = 10.0  # a bad clip standing for ten
    (c,) = [c for c in curves(rows, cfg, 0.5) if c.threshold == "min_sharpness"]
    assert c.proposed == 20


def test_calibrate_writes_a_pipeline_that_refilter_applies(review_out: Path, tmp_path: Path) -> None:
    rows = ClipSource(str(review_out)).rows
    sharp = sorted(r["sharpness"] for r in rows.values())
    cut = sharp[len(sharp) // 2]
    decide_all(review_out, lambda cid, t: ("approve", None) if rows[cid]["sharpness"] >= cut else ("reject", None))
    out_yaml = tmp_path / "tuned.yaml"
    r = CliRunner().invoke(app, ["review", "calibrate", str(review_out), "--precision", "1", "-o", str(out_yaml)])
    assert r.exit_code == 0, r.output
    assert "min_sharpness" in r.output and out_yaml.is_file()
    assert (review_out / "_review" / "calibration.json").is_file()
    r = CliRunner().invoke(app, ["refilter", str(review_out), str(out_yaml)])  # decisions not applied: thresholds decide
    assert r.exit_code == 0, r.output
    kept = tables(review_out)["clips"]
    assert kept and all(rows[c]["sharpness"] >= cut for c in kept)


def test_report_has_a_review_section(review_out: Path, tmp_path: Path) -> None:
    from curate.review.apply import apply_decisions
    from curate.review.calibrate import calibrate

    rows = ClipSource(str(review_out)).rows
    cut = sorted(r["sharpness"] for r in rows.values())[len(rows) // 2]
    url, _ = decide_all(review_out, lambda cid, t: ("approve", None) if rows[cid]["sharpness"] >= cut else ("reject", None))
    calibrate(str(review_out), url, None, 1.0, tmp_path / "p.yaml")
    apply_decisions(str(review_out), url)
    r = CliRunner().invoke(app, ["report", str(review_out), "--output", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "r.html").read_text()
    assert "<h2>Review</h2>" in html and "bad quality" in html and "95% interval" in html and "<polyline" in html
    assert "human decisions:" in html
