"""Stream an input manifest (``.csv``, ``.jsonl``, ``.parquet`` with a ``uri`` column) row by row, forgivingly.

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
import itertools
import json
import logging
import math
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

MANIFEST_EXTENSIONS = frozenset({".csv", ".jsonl", ".parquet"})
# Set on a row that could not be read; discover turns it into that row's failed record.
ROW_ERROR = "__row_error__"
# Rows (Parquet) or bytes (CSV) read at a time: what a manifest of any size costs in memory.
BATCH_ROWS = 4096
BATCH_BYTES = 1 << 20


class ManifestError(ValueError):
    """The manifest as a whole cannot be used; the message says why."""


def _decode_line(line: bytes, first: bool, legacy: list[int], i: int) -> str:
    """One line as UTF-8, else as Windows-1252 (its number is noted in ``legacy`` for the warning)."""
    try:
        return line.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError:
        legacy.append(i)
        return line.decode("cp1252", errors="replace")


class _Lines:
    """A manifest's lines decoded one at a time; warns once at the end about lines that were not UTF-8."""

    def __init__(self, f: Any, name: str) -> None:
        self._f, self._name, self.legacy = f, name, []

    def __iter__(self) -> Iterator[str]:
        for i, line in enumerate(self._f, 1):
            yield _decode_line(line, i == 1, self.legacy, i)
        if self.legacy:
            shown = ", ".join(map(str, self.legacy[:10])) + (" ..." if len(self.legacy) > 10 else "")
            log.warning("manifest %s: line(s) %s are not UTF-8; read as Windows-1252/Latin-1", self._name, shown)


class _Utf8Stream(io.RawIOBase):
    """A file-like view of ``lines`` re-encoded as UTF-8, for pyarrow's streaming CSV reader."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines, self._pending = lines, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while not self._pending:
            line = next(self._lines, None)
            if line is None:
                return 0
            self._pending = line.encode()
        n = min(len(buf), len(self._pending))
        buf[:n], self._pending = self._pending[:n], self._pending[n:]
        return n


def _csv_rows(f: Any, name: str) -> Iterator[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    lines = iter(_Lines(f, name))
    head = next((line for line in lines if line.strip()), None)
    if head is None:
        return
    header = next(csv.reader([head]))
    # Every column as text: a caption of digits stays the text it was written as.
    options = pcsv.ConvertOptions(column_types={c: pa.string() for c in header})
    stream = _Utf8Stream(itertools.chain([head], lines))
    try:
        reader = pcsv.open_csv(stream, read_options=pcsv.ReadOptions(block_size=BATCH_BYTES), convert_options=options)
        for batch in reader:
            yield from batch.to_pylist()
    except pa.ArrowInvalid as e:
        raise ManifestError(f"manifest {name} is not a readable CSV file: {e}") from None


def _jsonl_rows(f: Any, name: str) -> Iterator[dict[str, Any]]:
    for i, line in enumerate(_Lines(f, name), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            yield {ROW_ERROR: f"manifest {name} line {i} is not valid JSON: {e}"}
            continue
        yield row if isinstance(row, dict) else {ROW_ERROR: f"manifest {name} line {i} is a JSON {type(row).__name__}, not an object"}


def _parquet_rows(f: Any, name: str) -> Iterator[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # iter_batches streams (a user's row group may hold millions of rows). It reads
        # asynchronously, which only a process exiting right after the read must avoid
        # (curate.data.index); a run reads its manifest first.
        for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS, use_threads=False):
            yield from batch.to_pylist()
    except (pa.ArrowInvalid, OSError) as e:
        raise ManifestError(f"manifest {name} is not a readable Parquet file: {e}") from None


def iter_rows(fs: Any, path: str, name: str) -> Iterator[dict[str, Any]]:
    """The manifest's rows as dicts (``uri`` as found: any type, possibly missing), streamed in batches.

    Memory is one batch (:data:`BATCH_ROWS` rows, or :data:`BATCH_BYTES` of
    CSV), whatever the manifest's size. A manifest without a ``uri`` column is
    refused at its first row, before any row is yielded.
    """
    ext = Path(path).suffix.lower()
    with fs.open(path, "rb") as f:
        rows = _parquet_rows(f, name) if ext == ".parquet" else _csv_rows(f, name) if ext == ".csv" else _jsonl_rows(f, name)
        first = next(rows, None)
        if first is None:
            log.warning("manifest %s has no rows", name)
            return
        # CSV and Parquet rows share one header; a JSON line without a uri fails alone.
        if ext != ".jsonl" and "uri" not in first:
            raise ManifestError(f"manifest {name} has no 'uri' column (columns: {sorted(first)})")
        yield first
        yield from rows


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
