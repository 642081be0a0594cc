"""``OUTPUT/manifest.json``: the reader's entry point, rewritten atomically after every commit.

It lists only committed shards (with row counts), so a reader that goes
through it never sees a file of an interrupted or in-flight commit, even on
object stores where data files appear under their final names before the
commit point. It also carries what a consumer needs to trust the data: the
resolved config and its hash, schema versions and parameters (embedding
size and dtype), the models and whether any ran on random weights, the run
history, the rewrites of the shards (``versions``: dedup and refilter
passes) and the funnel, all computed from committed data.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

from curate.output.funnel import reason_counts
from curate.output.shards import TABLES, Location, parse_part, read_table, write_bytes
from curate.schema import load_schema, schema_versions

MANIFEST = "manifest.json"
FORMAT = "curate-output/1"
_REASONS = {t: ["reject_reasons"] for t, s in TABLES.items() if "reject_reasons" in load_schema(s).names}
RUNNING = "running"
CRASHED = "crashed"  # a run left as "running" by a process that died
END_STATUSES = frozenset({"completed", "failed", "interrupted"})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def curate_version() -> str:
    """The installed version, else the source tree's ``pyproject.toml`` version (a dev checkout)."""
    try:
        return metadata.version("curate")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            import tomllib  # Python >= 3.11

            return tomllib.loads(pyproject.read_text())["project"]["version"] + "+src"
        except (ImportError, OSError, KeyError, ValueError):
            return "unknown"


def config_hash(config: dict[str, Any]) -> str:
    """Same hash as :meth:`PipelineConfig.config_hash`, from the manifest's ``config`` dict."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def read(loc: Location) -> dict[str, Any] | None:
    """The manifest, or ``None`` when there is none yet."""
    try:
        return json.loads(loc.fs.cat_file(loc.path(MANIFEST)))
    except FileNotFoundError:
        return None


def read_output(loc: Location, output: str) -> dict[str, Any]:
    """The manifest of the finished or running output ``output`` (at ``loc``).

    Raises:
        FileNotFoundError: one sentence saying whether the directory is missing or holds no manifest.
    """
    doc = read(loc)
    if doc is None:
        raise FileNotFoundError(f"{output}: no {MANIFEST}; not a curate output" if loc.fs.exists(loc.root) else f"{output}: no such directory")
    return doc


def write(loc: Location, manifest: dict[str, Any]) -> None:
    write_bytes(loc, MANIFEST, json.dumps(manifest, indent=1).encode())


def shard_entry(rel: str, nbytes: int, data: pa.Table) -> dict[str, Any]:
    """The manifest entry of shard ``rel`` holding ``data`` (the shard, or just its ``reject_reasons``).

    Rejected shards carry their reason counts so the funnel never rescans them.
    """
    entry = {"path": rel, "part": parse_part(rel.rsplit("/", 1)[-1])[0], "rows": data.num_rows, "bytes": nbytes}
    if "reject_reasons" in data.column_names:
        entry["reasons"] = reason_counts(data)
    return entry


def scan_shards(loc: Location, committed: set[str], cached: dict[str, list[dict[str, Any]]],
                superseded: set[str] = frozenset(), tables: Iterable[str] = TABLES) -> dict[str, list[dict[str, Any]]]:
    """Entries of the committed, not superseded shards per table (of ``tables``), in commit order.

    Entries of the previous manifest are reused while the file size matches;
    shards it does not know (committed just before a crash) are read.
    """
    shards: dict[str, list[dict[str, Any]]] = {}
    for table in tables:
        known = {e["path"]: e for e in cached.get(table, [])}
        found = []
        for name, size in loc.names(table).items():
            parsed = parse_part(name)
            rel = f"{table}/{name}"
            if parsed is None or parsed[0] not in committed or rel in superseded:
                continue
            entry = known.get(rel)
            if entry is None or entry["bytes"] != size:
                entry = shard_entry(rel, size, read_table(loc, rel, _REASONS.get(table, [])))
            found.append((parsed[1], name, entry))
        shards[table] = [entry for _, _, entry in sorted(found, key=lambda x: x[:2])]
    return shards


def start_run(runs: list[dict[str, Any]], run_id: str, config_hash: str, command: str = "run") -> list[dict[str, Any]]:
    """The run history with this run appended; runs still marked running died without closing."""
    history = [dict(r, status=CRASHED) if r.get("status") == RUNNING else dict(r) for r in runs]
    history.append(
        {"run_id": run_id, "started": now(), "ended": None, "status": RUNNING,
         "pid": os.getpid(), "host": socket.gethostname(), "config_hash": config_hash, "command": command}
    )
    return history


def end_run(runs: list[dict[str, Any]], run_id: str, status: str) -> None:
    for r in runs:
        if r["run_id"] == run_id and r["status"] == RUNNING:
            r.update(ended=now(), status=status)


def build(
    *,
    run_id: str,
    runs: list[dict[str, Any]],
    created: str,
    config: dict[str, Any],
    shards: dict[str, list[dict[str, Any]]],
    tables: dict[str, str],
    ledger_parts: list[str],
    funnel: dict[str, Any],
    timings: dict[str, dict[str, float]],
    videos_file: str | None,
    schema_params: dict[str, dict[str, Any]] | None = None,
    models: dict[str, Any] | None = None,
    versions: list[dict[str, Any]] | None = None,
    derived: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The manifest document. ``shards`` maps table -> entries ``{path, part, rows, bytes, ...}``.

    ``models`` describes the models whose output the shards hold (``random_init``
    true when any ran on random weights); ``versions`` lists the rewrite
    commits (the sidecars of dedup and refilter passes) in commit order.
    ``derived`` holds the shards of derived tables (``latents``, ``text_embeddings``);
    each gets its own section (:func:`derived_section`), so readers of clip tables never see them.
    """
    doc = {
        "format": FORMAT,
        "curate_version": curate_version(),
        "run_id": run_id,
        "created": created,
        "updated": now(),
        "runs": runs,
        "config": config,
        "config_hash": config_hash(config),
        "schema_versions": schema_versions(),
        "schema_params": schema_params or {},
        "tables": tables,
        "shards": shards,
        "rows": {t: sum(e["rows"] for e in entries) for t, entries in shards.items()},
        "ledger": {"parts": ledger_parts, "videos": funnel["videos"]["inputs"]},
        "videos": videos_file,
        "funnel": funnel,
        "timings": timings,
        "models": models or {},
        "random_init": bool((models or {}).get("random_init")),
        "versions": [dict(v, version=i + 1) for i, v in enumerate(versions or [])],
    }
    for table, entries in sorted((derived or {}).items()):
        if entries:
            doc[table] = derived_section(table, entries, versions or [])
            # a derived table of a random-weights model marks the output like any other model's output
            doc["random_init"] = doc["random_init"] or any(s.get("random_init") for s in doc[table]["sets"].values())
    return doc


def derived_section(table: str, shards: list[dict[str, Any]], versions: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's section of a derived table (``latents``, ``text_embeddings``): its shards and, per set, what a trainer needs.

    Sets (``VAE/bucket`` or encoder: class, weights, tensor shape and dtype...)
    are recorded by the sidecars of the commits of kind ``table``; ``rows`` add
    up over commits (each records the rows it adds less those it supersedes).
    """
    sets: dict[str, dict[str, Any]] = {}
    for v in versions:
        for key, info in (v.get("sets") or {}).items() if v.get("kind") == table else ():
            have = sets.setdefault(key, dict(info, rows=0))
            have["rows"] += info["rows"]
    return {"table": table, "schema": table, "shards": shards,
            "rows": sum(e["rows"] for e in shards), "sets": sets}
