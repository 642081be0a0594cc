"""Stages with scripted misbehaviour, importable by the guard's child process."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from curate.stage import VideoStage


@dataclass
class Scripted(VideoStage):
    """Behaves per ``video_id``: 'hang' sleeps, 'crash' kills itself, 'boom' raises."""

    name = "scripted"

    def setup(self) -> None:
        self.setup_pid = os.getpid()

    def process_video(self, video: dict) -> dict:
        vid = video["video_id"]
        if vid == "hang":
            time.sleep(3600)
        if vid == "crash":
            os.kill(os.getpid(), 9)
        if vid == "boom":
            raise ValueError("bad bitstream")
        return dict(video, pid=os.getpid(), setup_pid=self.setup_pid)


@dataclass
class Mark(VideoStage):
    name = "mark"
    cpus: float = 0.5

    def process_video(self, video: dict) -> dict:
        return dict(video, marked=True)
