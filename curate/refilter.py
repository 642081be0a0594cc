"""Apply new thresholds to a finished output without decoding for analysis (``curate refilter``).

Every clip the run produced has its scores stored (clips, review and
rejected alike), so a new pipeline whose thresholds differ decides again
from those columns: the filter's checks, the caption check's bands on the
raw similarity, then run-wide dedup. Clips keep their ids; only clips that
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
from curate.dedup import count_duplicates, key_columns, resolve
from curate.output import manifest as mf
from curate.output.rewrite import apply_changes, read_columns
from curate.output.shards import Location
from curate.output.store import OutputStore

_SCORE_COLUMNS = ["motion_score", "sharpness", "brightness", "black_fraction", "frozen_fraction", "aesthetic_score",
                  "caption", "clip_sim_mean", "clip_sim_min", "caption_check", "caption_check_reason"]


@dataclass(frozen=True)
class RefilterResult:
    changed: int
    duplicates: int
    record: dict[str, Any] | None  # the rewrite's sidecar; None when no decision changed


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
            "dedup": config.dedup.model_dump(mode="json")}


def decide(row: dict[str, Any], config: PipelineConfig) -> dict[str, Any]:
    """A clip's decision before dedup under ``config``, from its stored columns."""
    from curate.stages.caption_check import judge
    from curate.stages.filter import reject_reasons

    reject = reject_reasons(row, config.filter)
    outcome, reason = row["caption_check"], row["caption_check_reason"]
    # Flags other than the caption check's own (e.g. caption hygiene) do not depend on thresholds.
    flags = [f for f in row["flag_reasons"] or [] if not (outcome == "flag" and f == reason)]
    if config.caption_check is not None and row["clip_sim_mean"] is not None:
        outcome, reason = judge(row["clip_sim_mean"], row["clip_sim_min"], config.caption_check)
        if outcome == "flag":
            flags.append(reason)
        elif outcome == "reject":
            reject.append(reason)
    return {"reject_reasons": reject, "flag_reasons": flags, "caption_check": outcome, "caption_check_reason": reason}


def refilter(output: str, config: PipelineConfig) -> RefilterResult:
    """Decide every clip of ``output`` again under ``config`` and commit the changes as a new version.

    Raises:
        ConfigError: ``output`` is not a curate output, or ``config`` changes more than thresholds.
        LockedError: a run is writing to ``output``.
        RewriteError: a clip to encode has lost its source; nothing was changed.
    """
    doc = mf.read(Location.of(output))
    if doc is None:
        raise ConfigError(f"{output}: no {mf.MANIFEST}; not a curate output")
    check_compatible(PipelineConfig.model_validate(doc["config"]), config)
    with OutputStore.open(output, config, command="refilter") as store:
        keys = read_columns(store, sorted({*key_columns(config.dedup), *_SCORE_COLUMNS}))
        desired = [decide(row, config) for row in keys.select(_SCORE_COLUMNS + ["flag_reasons"]).to_pylist()]
        changes = resolve(keys, desired, config.dedup, on_change={"config_hash": config.config_hash()})
        record = apply_changes(store, changes, {"kind": "refilter", "config_hash": config.config_hash(),
                                                "thresholds": thresholds(config)})
        return RefilterResult(changed=len(changes), duplicates=count_duplicates(keys, changes), record=record)
