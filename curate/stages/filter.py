"""Decide per clip from its scores; every dropped clip keeps all its reasons.

The checks themselves are :func:`curate.decisions.filter_reasons` (shared
with ``curate refilter``); each reason is a key (the threshold's name,
``min_motion``) and a detail for people. The stage adds its reasons to those
earlier stages gave (a model stage may already have rejected a clip), so no
reason is ever lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from curate.config import FilterConfig
from curate.decisions import CHECKS, filter_reasons
from curate.records import Record
from curate.stage import VideoStage


@dataclass
class FilterStage(VideoStage):
    """Apply the pipeline's thresholds to every clip of a video."""

    name: ClassVar[str] = "filter"
    filter: FilterConfig = field(default_factory=FilterConfig)
    cpus: float = 0.1

    @classmethod
    def from_config(cls, config: Any) -> "FilterStage":
        return cls(filter=config.filter)

    def inputs(self) -> tuple[str, ...]:
        """The clip columns of the checks that are on (``None`` disables a check)."""
        on = [column for name, (column, _, _) in CHECKS.items() if getattr(self.filter, name) is not None]
        return ("clips", *(f"clips.{c}" for c in dict.fromkeys(on)), *(("clips.caption",) if self.filter.require_caption else ()))

    def outputs(self) -> tuple[str, ...]:
        return ("clips.reject_reasons",)

    def process_video(self, video: Record) -> Record:
        """Decide every clip; also drop its sampled frames, which no later stage reads.

        The frames are the bulk of a record (~0.3 MB a clip); carrying them on to
        the encode actor and the driver would only copy them twice more.
        """
        out = dict(video)
        out["clips"] = [
            {k: v for k, v in c.items() if k != "_frames"}
            | {"reject_reasons": [*(c.get("reject_reasons") or []), *filter_reasons(c, self.filter)]}
            for c in video.get("clips", [])
        ]
        return out
