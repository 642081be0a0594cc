"""The one place the review loop reads and writes drop/flag reasons.

``reject_reasons`` / ``flag_reasons`` are lists of ``{key, detail}`` structs
(:func:`curate.records.reason`): the key is what is counted, the detail what a
person reads. Everything in :mod:`curate.review` goes through these functions.
"""

from __future__ import annotations

from typing import Any

from curate.records import Reason, reason

HUMAN = "human_review"  # key of the reason an annotator's rejection adds


def reasons(row: dict[str, Any], column: str) -> list[Any]:
    return list(row.get(column) or [])


def reason_text(r: Reason) -> str:
    """A reason as words for the page and exports: its detail."""
    return str(r.get("detail") or r.get("key") or "")


def reason_key(r: Reason) -> str:
    """What a reason is about (``min_motion``, ``pass_min``, ``duplicate_of``, ``human_review``)."""
    return str(r.get("key", ""))


def texts(row: dict[str, Any], column: str) -> list[str]:
    return [reason_text(r) for r in reasons(row, column)]


def human_reason(why: str, annotator: str) -> Reason:
    """The reject reason an annotator's rejection adds (kept with the pipeline's own reasons)."""
    return reason(HUMAN, f"{why.strip() or 'rejected'} (by {annotator})")


def is_human(r: Reason) -> bool:
    return reason_key(r) == HUMAN
