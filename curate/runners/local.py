"""In-process runner: every stage in this process, one video at a time.

For debugging and fast tests; it produces the same rows as the Ray runner
because both call the same stage objects on the same records.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from curate.records import Record
from curate.stage import Stage


def run_local(stages: list[Stage], videos: Iterable[Record]) -> Iterator[Record]:
    """Push each video through every stage in order and yield it finished.

    Every stage started is stopped (its ``teardown`` runs) when the videos
    are done, the caller stops iterating, or a stage raises.
    """
    started: list[Stage] = []
    try:
        for stage in stages:
            stage.start()
            started.append(stage)
        for video in videos:
            batch = [video]
            for stage in stages:
                batch = stage.process(batch)
            yield from batch
    finally:
        for stage in reversed(started):
            stage.stop()
