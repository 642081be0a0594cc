"""Decide per clip from its scores; every dropped clip keeps all its reasons.

The checks themselves are :func:`curate.decisions.filter_reasons` (shared
with ``curate refilter``); each reason is a key (the threshold's name,
``min_motion``) and a detail for people. The stage adds its reasons to those
earlier stages gave (a model stage may already have rejected a clip), so no
reason is ever lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from curate.config import FilterConfig
from curate.decisions import filter_reasons
from curate.records import Record
from curate.stage import VideoStage


@dataclass
class FilterStage(VideoStage):
    """Apply the pipeline's thresholds to every clip of a video."""

    name = "filter"
    filter: FilterConfig = field(default_factory=FilterConfig)
    cpus: float = 0.1

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
