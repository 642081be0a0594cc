"""In-process runner: every stage in this process, one video at a time.

For debugging and fast tests; it produces the same rows as the Ray runner
because both call the same stage objects on the same records.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from curate.records import Record
from curate.stage import Stage, run_stages


def run_local(stages: list[Stage], videos: Iterable[Record]) -> Iterator[Record]:
    """Push each video through every stage in order and yield it finished, its clip pieces (if any) first.

    Every stage started is stopped (its ``teardown`` runs) when the videos
    are done, the caller stops iterating, or a stage raises.
    """
    started: list[Stage] = []
    try:
        for stage in stages:
            stage.start()
            started.append(stage)
        for video in videos:
            yield from run_stages(stages, [video])
    finally:
        for stage in reversed(started):
            stage.stop()
