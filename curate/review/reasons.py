"""The one place the review loop reads and writes drop/flag reasons.

Today ``reject_reasons`` / ``flag_reasons`` are lists of sentences such as
``motion_score 0.02 < min_motion 0.15``; they are about to become keyed data
(key + detail). Everything in :mod:`curate.review` goes through these functions,
so that change is made here only.
"""

from __future__ import annotations

from typing import Any

HUMAN = "human_review"  # key of the reason an annotator's rejection adds


def reasons(row: dict[str, Any], column: str) -> list[Any]:
    return list(row.get(column) or [])


def reason_text(reason: Any) -> str:
    """A reason as words for the page and exports."""
    if isinstance(reason, dict):  # keyed form: {"key": ..., "detail": ...}
        return f"{reason.get('key', '')} {reason.get('detail', '')}".strip()
    return str(reason)


def reason_key(reason: Any) -> str:
    """What a reason is about (``min_motion``, ``pass_min``, ``duplicate_of``, ``human_review``)."""
    if isinstance(reason, dict):
        return str(reason.get("key", ""))
    words = str(reason).split()
    if not words:
        return ""
    if words[0] == HUMAN or words[0] == "duplicate_of":
        return words[0]
    if len(words) >= 4 and words[2] in ("<", ">", "<=", ">="):
        return words[3]  # "<column> <value> <op> <threshold name> <threshold>"
    return words[-1] if "missing for" in str(reason) else words[0]


def texts(row: dict[str, Any], column: str) -> list[str]:
    return [reason_text(r) for r in reasons(row, column)]


def human_reason(reason: str, annotator: str) -> str:
    """The reject reason an annotator's rejection adds (kept with the pipeline's own reasons)."""
    return f"{HUMAN} {reason.strip() or 'rejected'} (by {annotator})"


def is_human(reason: Any) -> bool:
    return reason_key(reason) == HUMAN
