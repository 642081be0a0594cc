"""Ray runs: workers write the shards, the driver receives metadata and commits; a dying writer loses nothing."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest

from curate.config import PipelineConfig
from curate.run import run_pipeline
from curate.validate import validate
from tests.pipeline_helpers import assert_same_rows, make_inputs, read_table


def _config(shard_mb: float) -> PipelineConfig:
    return PipelineConfig.model_validate({"clips": {"min_s": 1.0, "max_s": 2.0}, "limits": {"video_timeout_s": 60},
                                          "output": {"shard_size_mb": shard_mb}})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("writers") / "in"
    make_inputs(root, 3)
    return root


@pytest.fixture(scope="module")
def reference(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("writers-ref") / "out"
    run_pipeline(_config(0.05), [str(inputs)], str(out), runner="local")
    return out


def _same_output(out: Path, reference: Path) -> None:
    for table in ("clips", "review", "rejected"):
        assert_same_rows(read_table(out, table), read_table(reference, table))
    assert validate(str(out)) == []
    assert not (out / "_work").exists(), "the work list outlived the run"
    assert not list(out.rglob(".w-*")), "a staged worker file outlived the run"


def test_workers_write_and_the_driver_receives_no_clip_bytes(inputs: Path, reference: Path, tmp_path: Path, ray_session):
    out = tmp_path / "out"
    summary = run_pipeline(_config(0.05), [str(inputs)], str(out), runner="ray")
    _same_output(out, reference)
    smallest_clip = min(len(v) for v in read_table(out, "clips")["video"])
    assert summary.accepted > 0 and 0 < summary.driver_bytes < smallest_clip, (summary.driver_bytes, smallest_clip)


def _writer_processes() -> list[psutil.Process]:
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "_WriterActor" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_a_writer_killed_holding_videos_is_replaced_and_nothing_is_lost_or_doubled(
        inputs: Path, reference: Path, tmp_path: Path, ray_session, caplog: pytest.LogCaptureFixture):
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_the_writer(done: Any, summary: Any) -> None:  # the first video is buffered, not committed (large shard target)
        if not killed:
            (writer,) = _writer_processes()
            os.kill(writer.pid, signal.SIGKILL)
            killed.append(writer.pid)

    with caplog.at_level(logging.WARNING, logger="curate.runners.ray"):
        summary = run_pipeline(_config(64.0), [str(inputs)], str(out), runner="ray", on_video=kill_the_writer)
    assert killed and "died; sending its" in caplog.text
    assert summary.processed == summary.inputs == 3  # each video reported once, replayed or not
    _same_output(out, reference)
