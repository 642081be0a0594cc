"""The funnel: where the inputs went, counted from committed data only.

Reasons are grouped into stable keys so the table stays short: a threshold
rejection ``'motion_score 0.02 < min_motion 0.15'`` (or ``'caption missing
for require_caption'``) counts under ``min_motion`` (``require_caption``); a failure ``'analyse: VideoOpenFailure: cannot open /x.mp4'``
under ``analyse: VideoOpenFailure`` (stage and error type, no file detail).
A clip dropped for several reasons counts once under each of them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.output.ledger import VideoState
from curate.records import DONE, FAILED, REJECTED

# Output tables whose rows the funnel counts as accepted / rejected / flagged clips.
ACCEPTED_TABLE, REJECTED_TABLE, FLAGGED_TABLE = "clips", "rejected", "review"
_THRESHOLD = re.compile(r"(?:[<>]=?\s*|\bfor\s+)([A-Za-z_][\w.]*)")
_IDENT = re.compile(r"[A-Za-z_][\w.]*")
_DETAIL = re.compile(r"[\d(/'\"\[{]")


def _head(text: str) -> str:
    """``text`` up to the first number, path, quote or parenthesis: the part that names the kind."""
    return _DETAIL.split(text, maxsplit=1)[0].strip().rstrip(":,;")


def threshold_key(reason: str | None) -> str:
    """The threshold a rejection reason names (``min_motion``), else its leading words."""
    if not reason:
        return "unspecified"
    m = _THRESHOLD.search(reason)
    return m.group(1) if m else _head(reason) or reason


def failure_key(reason: str | None) -> str:
    """``'stage: ErrorType'`` of a failure reason ``'stage: ErrorType: detail'``."""
    if not reason:
        return "unspecified"
    parts = reason.split(": ", 2)
    if len(parts) == 1:
        return _head(reason) or reason
    kind = parts[1] if _IDENT.fullmatch(parts[1]) else _head(parts[1])
    return f"{parts[0]}: {kind}" if kind else parts[0]


def reason_counts(rejected: pa.Table) -> dict[str, int]:
    """Threshold key -> clips, from the ``reject_reasons`` column of a rejected shard."""
    reasons = pc.list_flatten(rejected.column("reject_reasons")).to_pylist()
    return dict(Counter(threshold_key(r) for r in reasons))


def compute(states: Iterable[VideoState], table_rows: dict[str, int], clip_reasons: dict[str, int]) -> dict[str, Any]:
    """The funnel of the committed output.

    Args:
        states: the latest ledger state of every committed video.
        table_rows: committed rows per output table.
        clip_reasons: threshold key -> rejected clips, summed over rejected shards.
    """
    by_status: Counter[str] = Counter()
    rejected_videos: Counter[str] = Counter()
    failed_videos: Counter[str] = Counter()
    produced = 0
    for s in states:
        by_status[s.status] += 1
        produced += s.num_clips
        if s.status == REJECTED:
            rejected_videos[threshold_key(s.reason)] += 1
        elif s.status == FAILED:
            failed_videos[failure_key(s.reason)] += 1
    videos = {"inputs": sum(by_status.values()), DONE: by_status[DONE], REJECTED: by_status[REJECTED], FAILED: by_status[FAILED]}
    clips = {
        "produced": produced,
        "accepted": table_rows.get(ACCEPTED_TABLE, 0),
        "rejected": table_rows.get(REJECTED_TABLE, 0),
        "flagged": table_rows.get(FLAGGED_TABLE, 0),
    }
    return {
        "videos": videos,
        "videos_rejected": dict(rejected_videos.most_common()),
        "videos_failed": dict(failed_videos.most_common()),
        "clips": clips,
        "clips_rejected": dict(Counter(clip_reasons).most_common()),
        "checks": {
            "inputs = done + rejected + failed": videos["inputs"] == videos[DONE] + videos[REJECTED] + videos[FAILED],
            "produced = accepted + rejected + flagged": produced == clips["accepted"] + clips["rejected"] + clips["flagged"],
        },
    }
