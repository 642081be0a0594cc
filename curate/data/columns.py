"""Numeric columns as batched tensors: scores as ``(B,)``, embeddings as ``(B, D)``.

Trainers condition on scores and embeddings; handing them back as Python
values in ``meta`` makes every trainer rebuild the same tensors.  The Arrow
type decides the tensor: numbers keep their width (a float16 embedding stays
float16), nulls become NaN (integer and bool columns with nulls turn float32),
and fixed-size (or equal-length) lists become a second dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import torch


def check_tensor_columns(names: Sequence[str], schemas: Sequence[tuple[str, pa.Schema]], reserved: Sequence[str]) -> None:
    """Fail at construction, naming the column, when a requested tensor column cannot be one."""
    for name in names:
        if name in reserved:
            raise ValueError(f"tensor column {name!r} clashes with the batch key of that name; rename it in the shards or leave it to columns=")
        for path, schema in schemas:
            if name not in schema.names:
                raise ValueError(f"tensor column {name!r} is not in shard {path}; its columns are: {', '.join(schema.names)}")
            t = schema.field(name).type
            inner = t.value_type if pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t) else t
            if not (pa.types.is_integer(inner) or pa.types.is_floating(inner) or pa.types.is_boolean(inner)):
                raise ValueError(f"column {name!r} is {t}, not numeric; ask for it in columns= (returned in meta) instead")


def to_tensor(name: str, values: list[Any], arrow_type: pa.DataType) -> torch.Tensor:
    """``(B,)`` or ``(B, D)`` tensor of one column's values for a batch's rows."""
    listy = pa.types.is_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type) or pa.types.is_large_list(arrow_type)
    inner = arrow_type.value_type if listy else arrow_type
    dtype = inner.to_pandas_dtype()
    nulls = any(v is None for v in values)
    if nulls and not pa.types.is_floating(inner):
        dtype = np.float32  # ints or bools with gaps: NaN marks the gap
    if listy:
        widths = {len(v) for v in values if v is not None}
        if len(widths) > 1:
            raise ValueError(f"column {name!r} holds lists of different lengths {sorted(widths)}; cannot stack them")
        width = widths.pop() if widths else (arrow_type.list_size if pa.types.is_fixed_size_list(arrow_type) else 0)
        out = np.full((len(values), width), np.nan if nulls else 0, dtype=dtype)
        for i, v in enumerate(values):
            if v is not None:
                out[i] = [np.nan if x is None else x for x in v] if None in v else v
        return torch.from_numpy(out)
    arr = np.array([np.nan if v is None else v for v in values], dtype=dtype)
    return torch.from_numpy(arr)
