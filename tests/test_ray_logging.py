"""What curate lets through of Ray's logging while it drives a run."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from curate.runners.ray import _RAY_DROPPED, quiet_ray

MAP_OPERATOR = "ray.data._internal.execution.operators.map_operator"


@contextlib.contextmanager
def messages(name: str) -> Iterator[list[str]]:
    """What logger ``name`` lets out at WARNING and above (a handler on it: Ray's loggers need not propagate to the root)."""
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


def test_the_cpu_and_gpu_notice_is_dropped_and_nothing_else():
    import ray.data  # noqa: F401 - Ray Data sets its loggers up on import

    log = logging.getLogger(MAP_OPERATOR)
    notice = "Specifying both num_cpus and num_gpus for map tasks is experimental, and may result in scheduling issues."
    with messages(MAP_OPERATOR) as seen:
        with quiet_ray():
            log.warning(notice)
            log.warning("a block failed")
        log.warning(notice)  # outside a run, Ray's logging is the user's own
    assert seen == ["a block failed", notice]


def test_ray_still_gives_that_notice_from_that_logger():
    """The filter names Ray's logger and message: if Ray moves the notice, this fails instead of the notice coming back."""
    from ray.data._internal.execution.operators import map_operator

    with messages(MAP_OPERATOR) as seen:
        map_operator._canonicalize_ray_remote_args({"num_cpus": 1.0, "num_gpus": 0.4})
    assert len(seen) == 1 and seen[0].startswith(_RAY_DROPPED[MAP_OPERATOR])
