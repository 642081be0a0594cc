"""The CLI as a person runs it: under a pseudo-terminal, where a run once hung.

Ray workers live in background process groups of the user's terminal; a child
of theirs that touched the tty (ffmpeg configures it to read keys) was stopped
by the kernel (SIGTTOU) and the run sat at ``videos 0/N`` forever. Tests run
without a terminal never saw it, so these run the real CLI under a pty.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.pipeline_helpers import make_inputs

pexpect = pytest.importorskip("pexpect")

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "model-free.yaml"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Printed by Ray or Ray Data on every run, with nothing for a curate user to do.
NOISE = ("constructor arguments in the object store", "Progress bars disabled", "Token authentication is", "Generated new authentication token")


def run_in_pty(args: list[str], timeout_s: float, columns: int = 120) -> tuple[int | None, str]:
    """Run ``python -m curate ARGS`` as the foreground job of a fresh pty; ``(exit status, screen text)``."""
    child = pexpect.spawn(sys.executable, ["-m", "curate", *args], cwd=str(REPO), dimensions=(30, columns), encoding="utf-8", codec_errors="replace", timeout=timeout_s)
    try:
        child.expect(pexpect.EOF, timeout=timeout_s)
    except pexpect.TIMEOUT:
        text = ANSI.sub("", child.before or "")
        child.terminate(force=True)
        pytest.fail(f"`curate {' '.join(args)}` under a terminal did not finish within {timeout_s:.0f}s; screen:\n{text[-2000:]}")
    child.close()
    return child.exitstatus, ANSI.sub("", child.before or "")


@pytest.mark.parametrize("runner", ["ray", "local"])
def test_run_finishes_under_a_terminal(tmp_path: Path, runner: str):
    make_inputs(tmp_path / "in", n=2)
    out = tmp_path / "out"
    status, text = run_in_pty(["run", str(PIPELINE), "-i", str(tmp_path / "in"), "-o", str(out), "--runner", runner], timeout_s=240)
    assert status == 0, text[-3000:]
    assert re.search(r"videos\s.*2/2", text), f"the live bar never reached 2/2:\n{text[-3000:]}"
    for line in NOISE:
        assert line not in text, f"library noise on the terminal: {line!r}\n{text[-3000:]}"
    assert (out / "manifest.json").is_file()
