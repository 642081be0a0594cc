"""Row filters, and loud diagnostics when a filter is wrong or keeps (almost) nothing.

A filter that names a missing column or matches nothing is a configuration
mistake, not an empty epoch: silently training on nothing (or on 3 clips
repeated) wastes a job.  So the index checks filter columns against the
shards' schemas before scanning, and when the filter keeps nothing or under
``NEAR_EMPTY`` of the rows it counts what each condition keeps on its own --
only then, since that costs another metadata scan.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

NEAR_EMPTY = 0.01  # warn when a filter keeps under 1% of the rows


@dataclass(frozen=True)
class ReadFilter:
    """Keep rows whose scores lie in ``[min, max]`` and, optionally, that have a caption.

    Args:
        min: ``{column: lowest kept value}``, e.g. ``{"aesthetic_score": 4.5}``.
        max: ``{column: highest kept value}``, e.g. ``{"black_fraction": 0.1}``.
        require_caption: drop rows whose caption is null or empty.
    """

    min: Mapping[str, float] = field(default_factory=dict)
    max: Mapping[str, float] = field(default_factory=dict)
    require_caption: bool = False

    def conditions(self) -> list[tuple[str, str, pc.Expression]]:
        """``(label, column, expression)`` of every condition, in a stable order."""
        out = [(f"{k} >= {v}", k, pc.field(k) >= v) for k, v in self.min.items()]
        out += [(f"{k} <= {v}", k, pc.field(k) <= v) for k, v in self.max.items()]
        if self.require_caption:
            out.append(("caption not empty", "caption", pc.field("caption").is_valid() & (pc.utf8_length(pc.field("caption")) > 0)))
        return out

    def expression(self) -> pc.Expression | None:
        out = None
        for _, _, t in self.conditions():
            out = t if out is None else out & t
        return out


FilterLike = ReadFilter | pc.Expression | None


def check_columns(flt: FilterLike, schemas: Sequence[tuple[str, pa.Schema]]) -> None:
    """Raise naming the column (and the ones there are) when a ReadFilter column is missing from a shard."""
    if not isinstance(flt, ReadFilter):
        return
    for _, column, _ in flt.conditions():
        for path, schema in schemas:
            if column not in schema.names:
                raise ValueError(f"filter column {column!r} is not in shard {path}; its columns are: {', '.join(schema.names)}")


def filter_columns(expr: pc.Expression | None, path: str, schema: pa.Schema) -> list[str]:
    """The columns of ``schema`` that ``expr`` reads; raises naming a column the shard lacks.

    pyarrow lists no expression's fields, so they are found as the columns
    without which the expression no longer binds (to empty tables: nothing
    is read).
    """
    if expr is None:
        return []
    empty = schema.empty_table()
    try:
        empty.filter(expr)
    except pa.ArrowInvalid as e:
        m = re.search(r"FieldRef\.Name\(([^)]*)\)", str(e))
        if not m:
            raise
        raise ValueError(f"filter column {m.group(1)!r} is not in shard {path}; its columns are: {', '.join(schema.names)}") from e
    return [name for name in schema.names if not _binds(empty.drop_columns([name]), expr)]


def _binds(table: pa.Table, expr: pc.Expression) -> bool:
    try:
        table.filter(expr)
    except pa.ArrowInvalid:
        return False
    return True


def report_yield(flt: FilterLike, kept: int, total: int, count: Any) -> None:
    """Raise when the filter kept nothing, warn when it kept under ``NEAR_EMPTY`` of ``total`` rows.

    ``count(expression)`` counts the rows one expression keeps (over every
    shard); it is called once per condition, only on these error paths.
    """
    if flt is None or total == 0 or kept >= total * NEAR_EMPTY and kept > 0:
        return
    conds = flt.conditions() if isinstance(flt, ReadFilter) else [(str(flt), "", flt)]
    detail = "; ".join(f"{label} keeps {count(expr)}" for label, _, expr in conds)
    msg = f"the filter keeps {kept} of {total} rows ({detail})"
    if kept == 0:
        raise ValueError(f"{msg}; nothing to load -- loosen the filter (is the column scored in this output?)")
    warnings.warn(f"{msg}; an epoch will hold very few clips", UserWarning, stacklevel=4)
