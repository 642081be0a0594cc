"""Load the versioned Arrow schemas kept as data files in ``schemas/``.

Each ``schemas/NAME.vN.json`` lists fields with a type, nullability, a unit
and a description; the unit and description travel into the Arrow field
metadata so every shard documents its own columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
# Every table is written at its current version; v2 adds the model columns
# (nullable, so a model-free run writes valid v2 rows with them null), the
# ``review`` table (clip schema), ``duplicate_of`` and the ledger's ``num_flagged``.
# v3 stores every reason as a key (counted) plus a detail (read): ``reject_reasons`` and
# ``flag_reasons`` are lists of ``reason`` structs and the ledger has ``reason_key``;
# :mod:`curate.output.legacy` reads v2 files into that shape.
# v4 adds nullable columns only (the text-overlay score, the per-video shots and
# transitions); older files read with them null.
# ``latents`` and ``text_embeddings`` (v1) are derived tables (``curate latents``); outputs without one simply lack the key.
CURRENT = {"clip": 4, "rejected": 4, "videos": 4, "latents": 1, "text_embeddings": 1}
# Versions whose files curate still reads (older ones through :mod:`curate.output.legacy`).
READABLE = {"clip": (2, 3, 4), "rejected": (2, 3, 4), "videos": (2, 3, 4), "latents": (1,), "text_embeddings": (1,)}
# A reason: ``key`` is what is counted (a threshold name), ``detail`` the sentence for people.
REASON = pa.struct([("key", pa.string()), ("detail", pa.string())])
# A shot of a video: [start_frame, end_frame) in source frames.
SHOT = pa.struct([("start_frame", pa.int64()), ("end_frame", pa.int64())])
# A transition the detector found (``cut``, ``gradual``) or suppressed (``flash_suppressed``), with its score.
TRANSITION = pa.struct([("start_frame", pa.int64()), ("end_frame", pa.int64()), ("kind", pa.string()),
                        ("score", pa.float32())])
_STRUCTS = {"reason": REASON, "shot": SHOT, "transition": TRANSITION}
_PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9_]*\b")

_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "binary": pa.binary(),
    "bool": pa.bool_(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float16": pa.float16(),
    "float32": pa.float32(),
    "float64": pa.float64(),
}


def _type(spec: str) -> pa.DataType:
    if spec in _SCALARS:
        return _SCALARS[spec]
    if spec in _STRUCTS:
        return _STRUCTS[spec]
    if spec.startswith("list<") and spec.endswith(">"):
        inner = spec[5:-1]
        if "," in inner:  # fixed-size list: list<float32,512>
            t, n = inner.split(",")
            return pa.list_(_type(t.strip()), int(n))
        return pa.list_(_type(inner))
    raise ValueError(f"unknown type {spec!r} in schema file")


def load_schema(name: str, version: int | None = None, params: Mapping[str, int | str] | None = None) -> pa.Schema:
    """The Arrow schema ``name`` at ``version`` (the current one by default).

    ``params`` fill the upper-case placeholders of a file's types (e.g. the CLIP
    embedding ``list<EMBED_DTYPE,EMBED_DIM>``) over the defaults the file declares.
    """
    return _load(name, version or CURRENT[name], tuple(sorted((params or {}).items())))


@lru_cache(maxsize=None)
def _load(name: str, version: int, params: tuple[tuple[str, int | str], ...]) -> pa.Schema:
    path = SCHEMA_DIR / f"{name}.v{version}.json"
    spec = json.loads(path.read_text())
    values = {**spec.get("params", {}), **dict(params)}

    def fill(m: re.Match[str]) -> str:
        if m.group() not in values:
            raise ValueError(f"schema {name}.v{version}: no value for {m.group()}; pass params={{{m.group()!r}: ...}}")
        return str(values[m.group()])

    fields = []
    for f in spec["fields"]:
        meta = {k: str(f[k]) for k in ("unit", "description") if k in f}
        fields.append(pa.field(f["name"], _type(_PLACEHOLDER.sub(fill, f["type"])), nullable=f.get("nullable", False), metadata=meta))
    meta = {"curate.schema": name, "curate.schema_version": str(version)}
    if values:
        meta["curate.schema_params"] = json.dumps(values, sort_keys=True)
    return pa.schema(fields, metadata=meta)


def schema_versions() -> dict[str, int]:
    return dict(CURRENT)


def to_table(rows: list[dict[str, Any]], name: str, params: Mapping[str, int | str] | None = None) -> pa.Table:
    """Rows (dicts; extra and ``_``-prefixed keys ignored) as a table of schema ``name``."""
    schema = load_schema(name, params=params)
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)


def check_schema(schema: pa.Schema, name: str, params: Mapping[str, int | str] | None = None,
                 version: int | None = None) -> list[str]:
    """Column names and types of ``schema`` vs schema ``name`` at ``version`` (e.g. a shard's footer, no data read)."""
    expected = load_schema(name, version, params=params)
    problems = []
    have = {f.name: f for f in schema}
    for f in expected:
        if f.name not in have:
            problems.append(f"missing column {f.name}")
        elif not have[f.name].type.equals(f.type):
            problems.append(f"column {f.name}: type {have[f.name].type} != {f.type}")
    extra = set(have) - {f.name for f in expected}
    if extra:
        problems.append(f"unexpected columns {sorted(extra)}")
    return problems


def check_table(table: pa.Table, name: str, params: Mapping[str, int | str] | None = None) -> list[str]:
    """Differences between ``table`` and schema ``name``; empty when it conforms."""
    problems = check_schema(table.schema, name, params)
    for f in load_schema(name, params=params):
        if not f.nullable and f.name in table.column_names and table.column(f.name).null_count:
            problems.append(f"column {f.name}: {table.column(f.name).null_count} nulls in a non-nullable column")
    return problems
