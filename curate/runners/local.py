"""In-process runner: every stage in this process, one video at a time.

For debugging and fast tests; it produces the same rows as the Ray runner
because both call the same stage objects on the same records.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from curate.records import Record
from curate.stage import Stage


def run_local(stages: list[Stage], videos: Iterable[Record]) -> Iterator[Record]:
    """Push each video through every stage in order and yield it finished."""
    for stage in stages:
        stage.start()
    try:
        for video in videos:
            batch = [video]
            for stage in stages:
                batch = stage.process(batch)
            yield from batch
    finally:
        for stage in stages:
            close = getattr(stage, "close", None)
            if close is not None:
                close()
