"""Derived tables (``latents``, ``text_embeddings``): their committed rows, and one commit of new rows.

A derived table is computed from the committed clips by a pass of its own and
committed through the ledger like a rewrite (:meth:`OutputStore.commit_rewrite`):
one staged file, a sidecar of kind ``table`` naming the sets it adds (what the
manifest's section records, :func:`curate.output.manifest.derived_section`), the
ledger rename last. A commit may also supersede whole files of the table, whose
rows it then carries over except those it replaces (a stale text embedding).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from curate.config import ConfigError, PipelineConfig
from curate.config_diff import differences, listed, of_kind
from curate.output import manifest as mf
from curate.output.shards import Location, read_table, stage_file, unstage
from curate.output.store import OutputStore


def committed(store: OutputStore, table: str, columns: list[str]) -> Iterator[tuple[str, pa.Table]]:
    """``(file, its columns)`` of every committed file of derived ``table``."""
    for e in store.derived.get(table, []):
        yield e["path"], read_table(store.location, e["path"], columns)


def commit_rows(store: OutputStore, table: str, data: pa.Table, info: dict[str, Any], supersedes: Sequence[str] = ()) -> dict[str, Any]:
    """Commit ``data`` (rows of derived ``table``) as one version; returns the sidecar (``info``, kind ``table``).

    ``supersedes``: committed files of the table this commit replaces (``data`` holds what of them stays).
    """
    part = store.next_part()
    rel = f"{table}/{part}-000.parquet"
    store.location.fs.makedirs(store.location.path(table), exist_ok=True)
    try:
        size = stage_file(store.location, rel, data, store.row_group_rows)
        return store.commit_rewrite(part, {table: [mf.shard_entry(rel, size, data)]}, list(supersedes), [], dict(info, kind=table))
    except BaseException:
        unstage(store.location, rel)
        raise


def check_compatible(run: PipelineConfig, new: PipelineConfig, section: str) -> None:
    """Raise :class:`ConfigError` unless ``new`` has ``section`` and differs from ``run`` in derived (or operational) settings only.

    The manifest then keeps describing the clips it holds; other changes need a run or a refilter first.
    """
    if getattr(new, section) is None:
        raise ConfigError(f"the pipeline has no {section} section; add one")
    diffs = of_kind(differences(run.model_dump(mode="json"), new.model_dump(mode="json")), "split", "computed", "thresholds")
    if diffs:
        raise ConfigError(f"curate latents adds derived tables to the clips an OUTPUT holds, so the pipeline must be the one it "
                          f"was written with plus a {section} section; these settings differ: {listed(diffs)}")


def read_compatible(output: str, config: PipelineConfig, section: str) -> tuple[Location, dict[str, Any]]:
    """``output``'s location and manifest, once :func:`check_compatible` accepts ``config`` for it."""
    loc = Location.of(output)
    doc = mf.read(loc)
    if doc is None:
        raise ConfigError(f"{output}: no {mf.MANIFEST}; not a curate output")
    check_compatible(PipelineConfig.model_validate(doc["config"]), config, section)
    return loc, doc


def models_record(previous: dict[str, Any], group: str, info: dict[str, Any]) -> dict[str, Any]:
    """The manifest's models record with ``info`` added under ``group`` (``vae``, ``text_encoder``); ``random_init`` marks the output."""
    models = dict(previous.get("models") or {})
    models.setdefault(group, {})[info["id"]] = info
    models["random_init"] = bool(models.get("random_init")) or bool(info["random_init"])
    return models


def check_same_maker(what: str, earlier: dict[str, dict[str, Any]], now: dict[str, Any], identity: tuple[str, ...],
                     hint: str) -> None:
    """Refuse a set id already bound to other tensors: ``earlier`` (set key -> record) must agree with ``now`` on ``identity``.

    Where the weights lie (``model``, ``subfolder``) counts only without a revision: a copied models dir holds the same weights.
    """
    for key, info in earlier.items():
        keys = identity + (("model", "subfolder") if info.get("revision") is None or now.get("revision") is None else ())
        diff = [f"{k}: {info.get(k)!r} -> {now.get(k)!r}" for k in keys if info.get(k) != now.get(k)]
        if diff:
            raise ConfigError(f"OUTPUT already holds {what} ({key}) made differently ({'; '.join(diff)}); {hint}")
