"""Human decisions outrank thresholds: what ``review apply`` recorded, and how later passes keep it.

Every ``review`` version in the manifest lists the clips whose human verdict it
recorded (``human``: clip id -> ``approve`` | ``reject``; later versions win).
A later ``curate refilter`` or dedup pass (a re-run ends with one) leaves these
clips as the humans left them: :func:`keep_human` drops the changes it would
make to them. To let thresholds decide such a clip again, undo the decision in
the review app and apply again.
"""

from __future__ import annotations

from typing import Any

from curate.output import manifest as mf


def recorded(doc: dict[str, Any] | None) -> dict[str, str]:
    """Clip id -> the latest human verdict the manifest's ``review`` versions record."""
    out: dict[str, str] = {}
    for v in (doc or {}).get("versions") or []:
        if v.get("kind") == "review":
            out.update(v.get("human") or {})
    return out


def captions(doc: dict[str, Any] | None) -> dict[str, str]:
    """Clip id -> the annotator whose caption the shards hold."""
    out: dict[str, str] = {}
    for v in (doc or {}).get("versions") or []:
        if v.get("kind") == "review":
            out.update(v.get("captions") or {})
    return out


def keep_human(changes: dict[str, dict[str, Any]], location: Any) -> dict[str, dict[str, Any]]:
    """``changes`` without those to clips a human decided (read from the manifest at ``location``)."""
    human = recorded(mf.read(location))
    if not human:
        return changes
    return {cid: ch for cid, ch in changes.items() if cid not in human}
