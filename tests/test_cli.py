"""The CLI's first-hour behaviour, run as a separate process with stderr piped (not a terminal)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline_helpers import make_inputs

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "model-free.yaml"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S")


def curate(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "curate", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def variant(tmp_path: Path, name: str, **changes: dict) -> Path:
    """The model-free pipeline with some sections' fields changed."""
    doc = yaml.safe_load(PIPELINE.read_text())
    for section, fields in changes.items():
        doc.setdefault(section, {}).update(fields)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_help_and_version_conventions():
    top = curate("-h")
    assert top.returncode == 0 and "Commands:" in top.stdout
    run = curate("run", "-h")
    assert run.returncode == 0
    assert "[ray|local]" in run.stdout.replace("<", "[").replace(">", "]")
    assert "<bool>" not in run.stdout and "list[str]" not in run.stdout and "<str>" not in run.stdout
    assert re.search(r"-o, --output OUTPUT", run.stdout)
    assert re.search(r"-o, --output FILE\.html", curate("report", "-h").stdout)
    assert re.search(r"-o, --output, --to DIR", curate("models", "download", "-h").stdout)
    version = curate("--version")
    assert version.returncode == 0 and re.fullmatch(r"curate \d+\.\d+\.\d+\S*\n", version.stdout)


def test_inputs_are_checked_before_anything_is_written(tmp_path: Path):
    out = tmp_path / "out"
    missing = curate("run", str(PIPELINE), "-i", str(tmp_path / "does_not_exist"), "-o", str(out))
    assert missing.returncode == 2 and "input not found" in missing.stderr
    assert "Traceback" not in missing.stderr and not out.exists()
    (tmp_path / "empty").mkdir()
    empty = curate("run", str(PIPELINE), "-i", str(tmp_path / "empty"), "-o", str(out))
    assert empty.returncode == 0 and "no input videos found" in empty.stderr
    assert not out.exists()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """A local run whose OUTPUT path is longer than 80 columns, as the tests below need."""
    root = tmp_path_factory.mktemp("cli")
    inputs = root / "in"
    make_inputs(inputs, n=2)
    out = root / ("an_output_folder_with_a_name_long_enough_that_an_80_column_wrap_would_split_it" + "_x" * 10)
    result = curate("run", str(PIPELINE), "-i", str(inputs), "-o", str(out), "--runner", "local")
    assert result.returncode == 0, result.stderr
    return inputs, out, result


def test_piped_run_prints_one_line_per_video_in_one_format(finished):
    inputs, out, result = finished
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    per_video = [ln for ln in lines if LOG_LINE.match(ln) and re.search(r" INFO (done|rejected|failed) ", ln)]
    assert len(per_video) == 2, result.stderr
    assert not any(re.search(r"(INFO|WARNING) (INFO|WARNING)", ln) for ln in lines)
    # No wrapping when stderr is not a terminal: the long OUTPUT path stands whole on its summary line.
    assert any(ln.startswith("output: ") and str(out) in ln for ln in lines), result.stderr
    assert any(ln.startswith("run ") and "processed (2 done)" in ln for ln in lines), result.stderr
    log_files = list((out / "logs").glob("*.log"))
    assert log_files and all(LOG_LINE.match(ln) for f in log_files for ln in f.read_text().splitlines() if ln.strip())


def test_validate_prints_its_verdict_on_stdout(finished):
    _, out, _ = finished
    result = curate("validate", str(out))
    assert result.returncode == 0 and "is valid" in result.stdout


def test_a_different_pipeline_never_rewrites_what_the_manifest_claims(finished, tmp_path: Path):
    inputs, out, _ = finished
    before = (out / "manifest.json").read_bytes()
    strict = variant(tmp_path, "strict", filter={"min_motion": 0.5})
    refused = curate("run", str(strict), "-i", str(inputs), "-o", str(out), "--runner", "local")
    assert refused.returncode == 2, refused.stderr
    assert "filter.min_motion: 0.15 -> 0.5" in refused.stderr and f"curate refilter {out} {strict}" in refused.stderr
    resplit = variant(tmp_path, "resplit", clips={"min_s": 3.0})
    refused = curate("run", str(resplit), "-i", str(inputs), "-o", str(out), "--runner", "local")
    assert refused.returncode == 2 and "clips.min_s: 2.0 -> 3.0" in refused.stderr and "new OUTPUT" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (out / "manifest.json").read_bytes() == before
    # Settings that only change how a run works are free to differ.
    patient = variant(tmp_path, "patient", limits={"video_timeout_s": 900})
    rerun = curate("run", str(patient), "-i", str(inputs), "-o", str(out), "--runner", "local")
    assert rerun.returncode == 0 and "(2 already finished)" in rerun.stderr


def test_a_replaced_input_is_a_new_video_and_validate_notes_the_stale_rows(tmp_path: Path):
    from curate.synth import make_video

    inputs = tmp_path / "in"
    make_inputs(inputs, n=1)
    out = tmp_path / "out"
    assert curate("run", str(PIPELINE), "-i", str(inputs), "-o", str(out), "--runner", "local").returncode == 0
    make_video(inputs / "v0.mp4", [(60, "pan_right"), (60, "moving")], size=(192, 144), seed=7)  # same name, new content
    again = curate("run", str(PIPELINE), "-i", str(inputs), "-o", str(out), "--runner", "local")
    assert again.returncode == 0 and "(0 already finished)" in again.stderr
    verdict = curate("validate", str(out))
    assert verdict.returncode == 0 and "is valid" in verdict.stdout
    assert re.search(r"note: .*v0\.mp4 was replaced: rows of 1 older version", verdict.stdout), verdict.stdout
