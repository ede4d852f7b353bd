"""The one place request data (JSON lists, ``.npy`` bytes) becomes torch tensors.

Every failure raises :class:`ppo_core.PPOInputError` naming the field and the problem: wrong
rank, ragged rows, strings, nulls or objects among the numbers, NaN / inf, empty, too many
elements, a ``.npy`` that is pickled, truncated, of object dtype or not an array (``true`` /
``false`` count as 1 / 0, for boolean masks). ``.npy`` files are read header-first with
``allow_pickle=False`` semantics: nothing is unpickled, ever, and the element count is checked
before the data is touched.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch

from ppo_core import PPOInputError

_NPY_MAGIC = b"\x93NUMPY"

MAX_ABS_VALUE = 1e15
"""Largest magnitude a tensor entry may have: far beyond any real log-prob, advantage, value
or logit, and small enough that squares and sums of millions of them stay finite in float64
(variances, whitening, GRPO group statistics)."""


def _first_bad_entry(
    data: Any, max_rank: int, path: tuple[int, ...] = ()
) -> tuple[tuple[int, ...], str] | None:
    """Locate the first entry that is not a finite number, or a list nested deeper than
    ``max_rank`` (slow path, errors only; the depth bound also bounds the recursion)."""
    if data is None:
        return path, "expected a number, got null"
    if isinstance(data, str | dict):
        return path, f"expected a number, got {type(data).__name__} {str(data)[:20]!r}"
    if isinstance(data, int | float):  # bool included: true / false are 1 / 0 (boolean masks)
        try:
            if not math.isfinite(data):
                return path, f"non-finite value {data}"
        except OverflowError:  # an integer beyond float64, e.g. 10**400
            return path, "integer too large for float64"
        return None
    if isinstance(data, list):
        if len(path) >= max_rank:
            return path, f"lists nested more than {max_rank} deep"
        for i, item in enumerate(data):
            found = _first_bad_entry(item, max_rank, (*path, i))
            if found is not None:
                return found
        return None
    return path, f"expected a number, got {type(data).__name__}"


def _where(path: tuple[int, ...]) -> str:
    return f" at index {list(path)}" if path else ""


def _check_array(name: str, arr: np.ndarray, ranks: tuple[int, ...], max_elements: int) -> None:
    if arr.ndim not in ranks:
        allowed = " or ".join(f"{r}-D" for r in ranks)
        raise PPOInputError(name, f"expected {allowed}, got {arr.ndim}-D shape {list(arr.shape)}")
    if arr.size == 0:
        raise PPOInputError(name, "is empty")
    if arr.size > max_elements:
        raise PPOInputError(name, f"has {arr.size} elements, over the limit of {max_elements}")
    in_range = np.abs(arr) <= MAX_ABS_VALUE  # False for NaN and inf too: one pass for both
    if not in_range.all():
        index = tuple(int(i) for i in np.argwhere(~in_range)[0])
        value = arr[index]
        if not np.isfinite(value):
            raise PPOInputError(name, f"non-finite value {value}{_where(index)}")
        raise PPOInputError(
            name, f"value {value:g}{_where(index)} is beyond the limit of ±{MAX_ABS_VALUE:g}"
        )


def from_json(
    name: str, data: Any, *, ranks: tuple[int, ...] = (1, 2), max_elements: int
) -> torch.Tensor:
    """A float64 tensor from a (nested) JSON list of finite numbers."""
    if not isinstance(data, list):
        raise PPOInputError(name, f"expected a list of numbers, got {type(data).__name__}")
    if len(data) > max_elements:
        raise PPOInputError(name, f"has over {max_elements} elements, over the limit")
    try:
        arr = np.array(data, dtype=np.float64)
    except (ValueError, TypeError, OverflowError) as exc:
        found = _first_bad_entry(data, max(ranks))
        if found is not None:
            path, problem = found
            raise PPOInputError(name, f"{problem}{_where(path)}") from None
        raise PPOInputError(name, "rows have different lengths (ragged)") from exc
    try:
        _check_array(name, arr, ranks, max_elements)
    except PPOInputError as exc:
        # NumPy reads null as NaN: name the first bad entry as it was sent.
        found = _first_bad_entry(data, max(ranks)) if "non-finite" in exc.problem else None
        if found is None:
            raise
        path, problem = found
        raise PPOInputError(name, f"{problem}{_where(path)}") from None
    return torch.from_numpy(arr)


def int_from_json(name: str, data: Any, *, max_elements: int) -> torch.Tensor:
    """A 1-D int64 tensor from a JSON list of integers (e.g. group ids)."""
    if not isinstance(data, list) or not data:
        raise PPOInputError(name, "expected a non-empty list of integers")
    if len(data) > max_elements:
        raise PPOInputError(name, f"has {len(data)} elements, over the limit of {max_elements}")
    for i, item in enumerate(data):
        if isinstance(item, bool) or not isinstance(item, int):
            raise PPOInputError(name, f"expected an integer at index [{i}], got {item!r:.20}")
        if abs(item) >= 2**63:
            raise PPOInputError(name, f"integer out of range at index [{i}]")
    return torch.tensor(data, dtype=torch.int64)


def from_npy(
    name: str, raw: bytes, *, ranks: tuple[int, ...] = (1, 2), max_elements: int
) -> torch.Tensor:
    """A float64 tensor from the bytes of a ``.npy`` file, never unpickling anything."""
    if not raw.startswith(_NPY_MAGIC):
        raise PPOInputError(name, "not a .npy file (missing the \\x93NUMPY magic)")
    stream = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            header = np.lib.format.read_array_header_2_0(stream)
        else:
            raise PPOInputError(name, f"unsupported .npy version {version}")
    except ValueError as exc:  # malformed header
        raise PPOInputError(name, f"malformed .npy header: {exc}") from None
    shape, fortran_order, dtype = header
    if dtype.hasobject:
        raise PPOInputError(name, "object-dtype (pickled) arrays are refused")
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise PPOInputError(name, f"expected a numeric array, got dtype {dtype}")
    count = math.prod(shape)
    if len(shape) not in ranks:
        allowed = " or ".join(f"{r}-D" for r in ranks)
        raise PPOInputError(name, f"expected {allowed}, got {len(shape)}-D shape {list(shape)}")
    if count > max_elements:
        raise PPOInputError(name, f"has {count} elements, over the limit of {max_elements}")
    offset = stream.tell()
    needed = count * dtype.itemsize
    if len(raw) - offset < needed:
        raise PPOInputError(name, f"truncated: {len(raw) - offset} data bytes, expected {needed}")
    flat = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    arr = flat.reshape(shape, order="F" if fortran_order else "C").astype(np.float64)
    _check_array(name, arr, ranks, max_elements)
    return torch.from_numpy(np.ascontiguousarray(arr))
