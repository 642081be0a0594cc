"""Apply new thresholds to a finished output without decoding for analysis (``curate refilter``).

Every clip the run produced has its scores stored (clips, review and
rejected alike), so a new pipeline whose thresholds differ decides again
from those columns with the stages' own checks (:func:`curate.decisions.decide`:
the filter's thresholds, the caption check's bands on the raw similarity),
then run-wide dedup. Clips keep their ids; only clips that
become accepted or flagged are encoded from their source, clips that become
rejected lose their bytes, and the result is a new version of the shards,
committed like dedup (:mod:`curate.output.rewrite`) and listed under
``versions`` in the manifest with the config hash and thresholds.

Anything that would change clip ids or scores (shot detection, clip
windows, analysis sizes, models, captioning, encoding) needs a re-run;
refilter refuses such a pipeline and names the section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curate.config import ConfigError, PipelineConfig
from curate.config_diff import differences, listed, of_kind
from curate.decisions import CHECKS, decide
from curate.dedup import count_duplicates, key_columns, resolve
from curate.output import manifest as mf
from curate.output.lock import acquire
from curate.output.rewrite import apply_changes, read_columns
from curate.output.shards import Location
from curate.output.store import OutputStore, new_run_id
from curate.review.outrank import keep_human

# What decide() reads: the column of every filter check, then the caption and its check.
_SCORE_COLUMNS = [*dict.fromkeys(column for column, _, _ in CHECKS.values()),
                  "caption", "clip_sim_mean", "clip_sim_min", "caption_check", "caption_check_reason"]


@dataclass(frozen=True)
class RefilterResult:
    changed: int  # clips that moved to another table (kept, flagged, dropped)
    duplicates: int
    record: dict[str, Any] | None  # the rewrite's sidecar; None when no decision changed (nothing was written)
    updated: int = 0  # clips whose decision changed without a move (a dropped clip with other reasons)
    version: int | None = None  # the shard version written
    clips: dict[str, int] | None = None  # the funnel's clip counts afterwards


def check_compatible(run: PipelineConfig, new: PipelineConfig) -> None:
    """Raise :class:`ConfigError` unless ``new`` differs from ``run`` in thresholds (or operational settings) only."""
    diffs = differences(run.model_dump(mode="json"), new.model_dump(mode="json"))
    if split := of_kind(diffs, "split"):
        raise ConfigError(f"refilter: the pipeline's split settings differ from the run's ({listed(split)}), "
                          "so clip ids would change; re-run the pipeline into a new OUTPUT instead")
    if computed := of_kind(diffs, "computed"):
        raise ConfigError(f"refilter only applies new thresholds (filter, caption_check bands, dedup); these settings "
                          f"differ from the run's and need a re-run: {listed(computed)}")


def thresholds(config: PipelineConfig) -> dict[str, Any]:
    """What a refilter version records: every setting it decides with."""
    cc = config.caption_check
    return {"filter": config.filter.model_dump(mode="json"), "caption_check": cc.model_dump(mode="json") if cc else None,
            "dedup": config.dedup.model_dump(mode="json", exclude={"engine"})}  # the engine decides nothing


def _flat(thr: dict[str, Any] | None) -> dict[str, Any]:
    """``{"filter": {"min_motion": 0.15}}`` as ``{"min_motion": 0.15}``; other sections keep a ``section.`` prefix."""
    out: dict[str, Any] = {}
    for section, values in (thr or {}).items():
        if not isinstance(values, dict):
            out[section] = values
            continue
        for k, v in values.items():
            out[k if section == "filter" else f"{section}.{k}"] = v
    return out


def threshold_changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[tuple[str, Any, Any]]:
    """``(name, before, after)`` for every setting that differs between two :func:`thresholds` records.

    Sections missing from one side (a dedup pass records only ``dedup``) are not compared.
    """
    b, a = _flat(before), _flat(after)
    return [(k, b[k], a[k]) for k in a if k in b and b[k] != a[k]]


def describe_changes(changes: list[tuple[str, Any, Any]]) -> str:
    """``min_motion 0.15 → 0.5, max_motion off → 3``; ``None`` reads "off"."""
    def fmt(v: Any) -> str:
        return "off" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k} {fmt(x)} → {fmt(y)}" for k, x, y in changes)


@dataclass(frozen=True)
class _Committed:
    """What :func:`read_columns` reads, taken from the manifest alone (no store opened, nothing written)."""

    location: Location
    shards: dict[str, list[dict[str, Any]]]
    schema_params: dict[str, Any]


def _changes(committed: Any, config: PipelineConfig) -> tuple[Any, dict[str, dict[str, Any]]]:
    keys = read_columns(committed, sorted({*key_columns(config.dedup), *_SCORE_COLUMNS, "reject_reasons"}))
    desired = [decide(row, config) for row in keys.select(_SCORE_COLUMNS + ["flag_reasons", "reject_reasons"]).to_pylist()]
    changes = resolve(keys, desired, config.dedup, on_change={"config_hash": config.config_hash()})
    return keys, keep_human(changes, committed.location)  # a human decision outranks a threshold


def refilter(output: str, config: PipelineConfig) -> RefilterResult:
    """Decide every clip of ``output`` again under ``config`` and commit the changes as a new version.

    When no clip's decision changes nothing is written: no version, no entry in
    the run history (the output still records the thresholds it was written with).

    Raises:
        ConfigError: ``output`` is not a curate output, or ``config`` changes more than thresholds.
        LockedError: a run is writing to ``output``.
        RewriteError: a clip to encode has lost its source; nothing was changed.
    """
    loc = Location.of(output)
    doc = mf.read(loc)
    if doc is None:
        raise ConfigError(f"{output}: no {mf.MANIFEST}; not a curate output")
    previous = PipelineConfig.model_validate(doc["config"])
    check_compatible(previous, config)
    run_id = new_run_id()
    lock = acquire(loc, run_id)  # decide under the lock, so a run in progress is refused, not raced
    try:
        committed = _Committed(loc, doc.get("shards") or {}, (doc.get("schema_params") or {}).get("clip") or {})
        keys, changes = _changes(committed, config)
    finally:
        lock.release()
    if not changes:
        return RefilterResult(changed=0, duplicates=count_duplicates(keys, changes), record=None)
    with OutputStore.open(output, config, run_id=run_id, command="refilter") as store:
        keys, changes = _changes(store, config)  # again, on what the store holds after any recovery
        record = apply_changes(store, changes, {"kind": "refilter", "config_hash": config.config_hash(),
                                                "thresholds": thresholds(config), "before": thresholds(previous)})
        clips = dict(store.funnel()["clips"])
    versions = (mf.read(loc) or {}).get("versions") or []
    moved = sum((record or {}).get("moves", {}).values())
    return RefilterResult(changed=moved, duplicates=count_duplicates(keys, changes), record=record,
                          updated=(record or {}).get("updated", 0), version=versions[-1]["version"] if versions else None,
                          clips=clips)
