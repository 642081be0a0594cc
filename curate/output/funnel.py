"""The funnel: where the inputs went, counted from committed data only.

Everything is counted by reason *key*, which stages store next to the
detail (see :func:`curate.records.reason`): a clip dropped for
``motion_score 0.02 < min_motion 0.15`` counts under ``min_motion``, a video
that failed with ``analyse: VideoOpenFailure: cannot open /x.mp4`` under
``analyse: VideoOpenFailure``. A clip dropped for several reasons counts
once under each of them. No sentence is parsed (outputs of schema v2 get
their keys from :mod:`curate.output.legacy` as they are read).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.output.ledger import VideoState
from curate.records import DONE, FAILED, REJECTED

# Output tables whose rows the funnel counts as accepted / rejected / flagged clips.
ACCEPTED_TABLE, REJECTED_TABLE, FLAGGED_TABLE = "clips", "rejected", "review"
# The ledger column that counts each table's rows per video.
LEDGER_COUNT = {ACCEPTED_TABLE: "num_accepted", REJECTED_TABLE: "num_rejected", FLAGGED_TABLE: "num_flagged"}
UNSPECIFIED = "unspecified"  # a rejected or failed video that recorded no key


def reason_counts(rejected: pa.Table) -> dict[str, int]:
    """Reason key -> clips, from the ``reject_reasons`` column of a rejected shard."""
    flat = pc.list_flatten(rejected.column("reject_reasons"))
    keys = pc.struct_field(flat, "key").to_pylist() if len(flat) else []
    return dict(Counter(keys))


def compute(states: Iterable[VideoState], table_rows: dict[str, int], clip_reasons: dict[str, int]) -> dict[str, Any]:
    """The funnel of the committed output.

    Args:
        states: the latest ledger state of every committed video.
        table_rows: committed rows per output table.
        clip_reasons: reason key -> rejected clips, summed over rejected shards.
    """
    by_status: Counter[str] = Counter()
    rejected_videos: Counter[str] = Counter()
    failed_videos: Counter[str] = Counter()
    produced = 0
    for s in states:
        by_status[s.status] += 1
        produced += s.num_clips
        if s.status == REJECTED:
            rejected_videos[s.reason_key or UNSPECIFIED] += 1
        elif s.status == FAILED:
            failed_videos[s.reason_key or UNSPECIFIED] += 1
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
