"""When a run cannot go on, the user reads one sentence (the traceback goes to the run log) and nothing is lost."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.pipeline_helpers import make_inputs
from tests.test_cli import PIPELINE, REPO, curate
from tests.test_cli_terminal import ANSI

pexpect = pytest.importorskip("pexpect")


def test_output_that_is_a_file(tmp_path: Path):
    make_inputs(tmp_path / "in", n=1)
    target = tmp_path / "out"
    target.write_text("not a directory")
    r = curate("run", str(PIPELINE), "-i", str(tmp_path / "in"), "-o", str(target), "--runner", "local")
    assert r.returncode == 2 and "is a file" in r.stderr and "Traceback" not in r.stderr
    assert target.read_text() == "not a directory"


def test_too_old_pyarrow_is_one_sentence_before_any_work(tmp_path: Path):
    """pyarrow 25 (a cluster image's own) failed only after every video was done; now the run does not start."""
    make_inputs(tmp_path / "in", n=1)
    out = tmp_path / "out"
    older = "import sys, pyarrow; pyarrow.__version__ = '25.0.1'; from curate.cli import app; sys.argv[0] = 'curate'; app()"
    r = subprocess.run([sys.executable, "-c", older, "run", str(PIPELINE), "-i", str(tmp_path / "in"), "-o", str(out),
                        "--runner", "local"], cwd=REPO, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "pyarrow >= 26" in r.stderr and "pyarrow 25.0.1" in r.stderr
    assert not out.exists()


def _interrupted_inside_an_import(module: str, function: str) -> str:
    """A ``python -c`` script running the curate CLI with ``module.function`` raising what a Ctrl-C during a native
    library's import raises: ``ImportError: initialization failed`` caused by the KeyboardInterrupt."""
    return (
        f"import sys, {module}\n"
        "def interrupted(*a, **k):\n"
        "    try:\n"
        "        raise KeyboardInterrupt\n"
        "    except KeyboardInterrupt as e:\n"
        "        raise ImportError('initialization failed') from e\n"
        f"{module}.{function} = interrupted\n"
        "from curate.cli import app; sys.argv[0] = 'curate'; app()\n"
    )


def test_ctrl_c_inside_an_import_is_an_interrupt_not_an_internal_error(tmp_path: Path):
    """Ctrl-C while a stage imports its model library (onnxruntime) surfaced as ``ImportError: initialization
    failed`` with the KeyboardInterrupt as its cause, and the run said "internal error"."""
    make_inputs(tmp_path / "in", n=1)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", _interrupted_inside_an_import("curate.run", "run_pipeline"), "run", str(PIPELINE), "-i", str(tmp_path / "in"), "-o", str(out),
                        "--runner", "local"], cwd=REPO, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 130, r.stderr
    assert "interrupted" in r.stderr and "rerun the same command" in r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr


def test_ctrl_c_inside_an_import_during_latents_is_an_interrupt(tmp_path: Path):
    """The same for ``curate latents`` (a VAE's library imported as the pass starts): no traceback, exit 130."""
    import yaml

    data = yaml.safe_load(PIPELINE.read_text())
    data["latents"] = {"vae": {"id": "kl", "kind": "AutoencoderKL", "model": str(tmp_path / "vae")},
                       "buckets": [{"num_frames": 9, "height": 64, "width": 64}]}
    pipeline = tmp_path / "latents.yaml"
    pipeline.write_text(yaml.safe_dump(data))
    r = subprocess.run([sys.executable, "-c", _interrupted_inside_an_import("curate.latents", "add_latents"), "latents", str(tmp_path / "out"), str(pipeline)], cwd=REPO,
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 130, r.stderr
    assert "interrupted" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 400 KiB tmpfs (root only): room for a few videos' shards, not for all of them."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_mid_run_is_one_sentence_and_resumable(tmp_path: Path, tiny_disk: Path):
    from curate.validate import validate

    inputs = tmp_path / "in"
    make_inputs(inputs, n=3)
    for i in range(3, 12):  # more bytes than the disk holds
        (inputs / f"v{i}.mp4").write_bytes((inputs / f"v{i % 3}.mp4").read_bytes() + uuid.uuid4().bytes)
    out = tiny_disk / "out"
    full = subprocess.run([sys.executable, "-m", "curate", "run", str(PIPELINE), "-i", str(inputs), "-o", str(out), "--runner", "local"],
                          cwd=REPO, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert full.returncode == 1, full.stderr
    assert "No space left on device" in full.stderr and "rerun the same command" in full.stderr
    assert "Traceback" not in full.stderr and "Logging error" not in full.stderr
    moved = tmp_path / "out"
    subprocess.run(["cp", "-a", str(out), str(moved)], check=True)
    done = curate("run", str(PIPELINE), "-i", str(inputs), "-o", str(moved), "--runner", "local", timeout=600)
    assert done.returncode == 0, done.stderr
    assert validate(str(moved)) == []


@pytest.mark.parametrize("runner", ["local", "ray"])
def test_ctrl_c_is_one_sentence(tmp_path: Path, runner: str):
    inputs = tmp_path / "in"
    make_inputs(inputs, n=3)
    for i in range(3, 10):
        (inputs / f"v{i}.mp4").write_bytes((inputs / f"v{i % 3}.mp4").read_bytes() + uuid.uuid4().bytes)
    child = pexpect.spawn(sys.executable, ["-m", "curate", "run", str(PIPELINE), "-i", str(inputs), "-o", str(tmp_path / "out"), "--runner", runner],
                          cwd=str(REPO), dimensions=(30, 120), encoding="utf-8", codec_errors="replace", timeout=120)
    child.expect("videos", timeout=120)
    time.sleep(2.0)
    child.sendintr()
    child.expect(pexpect.EOF, timeout=120)
    child.close()
    text = ANSI.sub("", child.before or "")
    if "interrupted" not in text and child.exitstatus == 0:
        pytest.skip("the run finished before Ctrl-C landed")
    assert child.exitstatus == 130, text[-2000:]
    assert "interrupted" in text and "rerun the same command" in text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]


def test_read_only_output_is_one_sentence(tmp_path: Path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        make_inputs(tmp_path / "in", n=1)
        r = curate("run", str(PIPELINE), "-i", str(tmp_path / "in"), "-o", str(ro / "out"), "--runner", "local")
        assert r.returncode == 1 and "cannot write" in r.stderr and "Read-only file system" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
