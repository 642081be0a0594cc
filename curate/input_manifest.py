"""Read an input manifest (``.csv``, ``.jsonl``, ``.parquet`` with a ``uri`` column) row by row, forgivingly.

A manifest is written by other tools and by hand, so one bad row must cost
that row, never the run: text that is not UTF-8 is read as Windows-1252 (a
superset of Latin-1 in practice) with a warning naming the rows, a JSON line
that does not parse becomes a row without a ``uri`` (discover fails it with
the reason), and column types may differ from row to row. Only a manifest
that cannot be read at all, or has no ``uri`` column, stops the run.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST_EXTENSIONS = frozenset({".csv", ".jsonl", ".parquet"})
# Set on a row that could not be read; discover turns it into that row's failed record.
ROW_ERROR = "__row_error__"


class ManifestError(ValueError):
    """The manifest as a whole cannot be used; the message says why."""


def _decode_lines(raw: bytes, name: str) -> str:
    """UTF-8, except lines that are not: those are read as Windows-1252 (warned, by line number)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    lines, legacy = [], []
    for i, line in enumerate(raw.splitlines(keepends=True), 1):
        try:
            lines.append(line.decode("utf-8-sig" if i == 1 else "utf-8"))
        except UnicodeDecodeError:
            lines.append(line.decode("cp1252", errors="replace"))
            legacy.append(i)
    shown = ", ".join(map(str, legacy[:10])) + (" ..." if len(legacy) > 10 else "")
    log.warning("manifest %s: line(s) %s are not UTF-8; read as Windows-1252/Latin-1", name, shown)
    return "".join(lines)


def _csv_rows(raw: bytes, name: str) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    text = _decode_lines(raw, name)
    if not text.strip():
        return []
    try:
        # Every column as text: a caption of digits stays the text it was written as.
        header = next(csv.reader(io.StringIO(text)))
        table = pcsv.read_csv(io.BytesIO(text.encode()), convert_options=pcsv.ConvertOptions(column_types={c: pa.string() for c in header}))
    except pa.ArrowInvalid as e:
        raise ManifestError(f"manifest {name} is not a readable CSV file: {e}") from None
    return table.to_pylist()


def _jsonl_rows(raw: bytes, name: str) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(_decode_lines(raw, name).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            rows.append({ROW_ERROR: f"manifest {name} line {i} is not valid JSON: {e}"})
            continue
        rows.append(row if isinstance(row, dict) else {ROW_ERROR: f"manifest {name} line {i} is a JSON {type(row).__name__}, not an object"})
    return rows


def _parquet_rows(f: Any, name: str) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(f).to_pylist()
    except (pa.ArrowInvalid, OSError) as e:
        raise ManifestError(f"manifest {name} is not a readable Parquet file: {e}") from None


def read_rows(fs: Any, path: str, name: str) -> list[dict[str, Any]]:
    """The manifest's rows as dicts (``uri`` as found: any type, possibly missing)."""
    ext = Path(path).suffix.lower()
    with fs.open(path, "rb") as f:
        if ext == ".parquet":
            rows = _parquet_rows(f, name)
        else:
            raw = f.read()
            rows = _csv_rows(raw, name) if ext == ".csv" else _jsonl_rows(raw, name)
    if rows and not any("uri" in r for r in rows):
        columns = sorted({k for r in rows for k in r if k != ROW_ERROR})
        if columns:
            raise ManifestError(f"manifest {name} has no 'uri' column (columns: {columns})")
    if not rows:
        log.warning("manifest %s has no rows", name)
    return rows


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` (JSON has no such numbers) and bytes as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    return value
