"""Reading outputs written at older schema versions.

Up to version 2, ``reject_reasons``/``flag_reasons`` were lists of sentences
and the ledger had no ``reason_key``; the funnel got its keys back from the
sentences with the regular expressions below. Version 3 stores the key
next to the detail (see :func:`curate.records.reason`). :func:`upgrade`
turns a table read from a version-2 file into the version-3 shape, with the
keys those expressions give (so a v2 manifest's funnel and one recomputed
from its files agree). Nothing else in curate parses a reason. Columns a
later version added (all nullable) read as nulls.
"""

from __future__ import annotations

import json
import re

import pyarrow as pa

from curate.records import FAILED, REJECTED
from curate.schema import CURRENT, load_schema
from curate.schema import REASON as REASON_TYPE

_THRESHOLD = re.compile(r"(?:[<>]=?\s*|\bfor\s+)([A-Za-z_][\w.]*)")
_IDENT = re.compile(r"[A-Za-z_][\w.]*")
_DETAIL = re.compile(r"[\d(/'\"\[{]")
_REASON_LISTS = ("reject_reasons", "flag_reasons")


def _head(text: str) -> str:
    """``text`` up to the first number, path, quote or parenthesis: the part that names the kind."""
    return _DETAIL.split(text, maxsplit=1)[0].strip().rstrip(":,;")


def threshold_key(reason: str | None) -> str:
    """The threshold a v2 rejection sentence names (``min_motion``), else its leading words."""
    if not reason:
        return "unspecified"
    m = _THRESHOLD.search(reason)
    return m.group(1) if m else _head(reason) or reason


def failure_key(reason: str | None) -> str:
    """``'stage: ErrorType'`` of a v2 failure sentence ``'stage: ErrorType: detail'``."""
    if not reason:
        return "unspecified"
    parts = reason.split(": ", 2)
    if len(parts) == 1:
        return _head(reason) or reason
    kind = parts[1] if _IDENT.fullmatch(parts[1]) else _head(parts[1])
    return f"{parts[0]}: {kind}" if kind else parts[0]


def video_reason_key(status: str | None, reason: str | None) -> str | None:
    """The ``reason_key`` of a v2 ledger row."""
    if status == REJECTED:
        return threshold_key(reason)
    if status == FAILED:
        return failure_key(reason)
    return None


def _reasons(column: pa.ChunkedArray) -> pa.Array:
    rows = [None if v is None else [{"key": threshold_key(r), "detail": r} for r in v] for v in column.to_pylist()]
    return pa.array(rows, pa.list_(REASON_TYPE))


def extra_columns(columns: list[str] | None, names: list[str]) -> list[str]:
    """Columns to read as well from a file holding ``names`` to derive the ``columns`` it lacks."""
    if columns is not None and "reason_key" in columns and "reason_key" not in names and "reason" in names:
        return [c for c in ("status", "reason") if c not in columns]
    return []


def _added_columns(table: pa.Table, name: str | None, columns: list[str] | None) -> pa.Table:
    """``table`` with the nullable columns of the current ``name`` schema it lacks, as nulls."""
    if name not in CURRENT:
        return table
    params = json.loads((table.schema.metadata or {}).get(b"curate.schema_params", b"{}"))
    current = load_schema(name, params=params)
    missing = [f for f in current if f.name not in table.column_names and f.nullable
               and (columns is None or f.name in columns)]
    if not missing:
        return table
    for field in missing:
        table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    order = [f.name for f in current if f.name in table.column_names]
    return table.select(order + [c for c in table.column_names if c not in order])


def upgrade(table: pa.Table, columns: list[str] | None, name: str | None = None) -> pa.Table:
    """``table`` (read from a file of schema ``name`` at any readable version) in the current shape.

    ``columns`` as requested (``None``: all).
    """
    for col in _REASON_LISTS:
        if col in table.column_names and pa.types.is_string(table.schema.field(col).type.value_type):
            i = table.column_names.index(col)
            field = table.schema.field(col).with_type(pa.list_(REASON_TYPE))
            table = table.set_column(i, field, _reasons(table.column(col)))
    if "reason_key" not in table.column_names and "reason" in table.column_names and "status" in table.column_names \
            and (columns is None or "reason_key" in columns):
        keys = [video_reason_key(s, r) for s, r in zip(table.column("status").to_pylist(), table.column("reason").to_pylist())]
        table = table.add_column(table.column_names.index("reason"), pa.field("reason_key", pa.string()), pa.array(keys, pa.string()))
    table = _added_columns(table, name, columns)
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return table
