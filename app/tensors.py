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
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

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


def _check_array(
    name: str,
    arr: np.ndarray,
    ranks: tuple[int, ...],
    max_elements: int,
    allow_nonfinite: bool = False,
) -> None:
    if arr.ndim not in ranks:
        allowed = " or ".join(f"{r}-D" for r in ranks)
        raise PPOInputError(name, f"expected {allowed}, got {arr.ndim}-D shape {list(arr.shape)}")
    if arr.size == 0:
        raise PPOInputError(name, "is empty")
    if arr.size > max_elements:
        raise PPOInputError(name, f"has {arr.size} elements, over the limit of {max_elements}")
    in_range = np.abs(arr) <= MAX_ABS_VALUE  # False for NaN and inf too: one pass for both
    if allow_nonfinite:  # NaN / inf are the caller's to place (e.g. padding); bounds still hold
        in_range |= ~np.isfinite(arr)
    if not in_range.all():
        index = tuple(int(i) for i in np.argwhere(~in_range)[0])
        value = arr[index]
        if not np.isfinite(value):
            raise PPOInputError(name, f"non-finite value {value}{_where(index)}")
        raise PPOInputError(
            name, f"value {value:g}{_where(index)} is beyond the limit of ±{MAX_ABS_VALUE:g}"
        )


def from_json(
    name: str,
    data: Any,
    *,
    ranks: tuple[int, ...] = (1, 2),
    max_elements: int,
    allow_nonfinite: bool = False,
) -> torch.Tensor:
    """A float64 tensor from a (nested) JSON list of finite numbers (``allow_nonfinite``: NaN
    and infinities pass, for a caller that checks where they are)."""
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
        _check_array(name, arr, ranks, max_elements, allow_nonfinite)
    except PPOInputError as exc:
        # NumPy reads null as NaN: name the first bad entry as it was sent.
        found = _first_bad_entry(data, max(ranks)) if "non-finite" in exc.problem else None
        if found is None:
            raise
        path, problem = found
        raise PPOInputError(name, f"{problem}{_where(path)}") from None
    return torch.from_numpy(arr)


def opt_tensor(
    body: BaseModel, name: str, max_elements: int, ranks: tuple[int, ...] = (1, 2)
) -> torch.Tensor | None:
    """The tensor field ``name`` of ``body`` as float64, or ``None`` when it was omitted."""
    data = getattr(body, name)
    return None if data is None else from_json(name, data, ranks=ranks, max_elements=max_elements)


def req_tensor(
    body: BaseModel, name: str, max_elements: int, ranks: tuple[int, ...] = (1, 2)
) -> torch.Tensor:
    """The required tensor field ``name`` of ``body`` as float64."""
    return from_json(name, getattr(body, name), ranks=ranks, max_elements=max_elements)


def count_elements(body: BaseModel, names: Iterable[str]) -> int:
    """Element count of JSON tensor fields (from their first rows), to pick inline vs. pool."""
    total = 0
    for name in names:
        data, size = getattr(body, name), 1
        while isinstance(data, list) and data:
            size *= len(data)
            data = data[0]
        total += size if data is not None else 0
    return total


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
    name: str,
    raw: bytes,
    *,
    ranks: tuple[int, ...] = (1, 2),
    max_elements: int,
    allow_nonfinite: bool = False,
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
    arr = flat.reshape(shape, order="F" if fortran_order else "C")
    return from_array(name, arr, ranks=ranks, max_elements=max_elements,
                      allow_nonfinite=allow_nonfinite)  # fmt: skip


def from_array(
    name: str,
    arr: np.ndarray,
    *,
    ranks: tuple[int, ...] = (1, 2),
    max_elements: int,
    allow_nonfinite: bool = False,
) -> torch.Tensor:
    """A float64 tensor from a numeric NumPy array (bool, int, uint, float), checked."""
    if arr.dtype.kind not in "biuf" or arr.dtype.fields is not None:
        raise PPOInputError(name, f"expected a numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    _check_array(name, arr, ranks, max_elements, allow_nonfinite)
    return torch.from_numpy(np.ascontiguousarray(arr))


def int_ids(name: str, t: torch.Tensor) -> torch.Tensor:
    """An integer id tensor from a float tensor whose entries are whole numbers (``.npy``,
    ``.npz`` and ``.safetensors`` ids arrive as numbers of any numeric dtype)."""
    if t.dim() != 1:
        raise PPOInputError(name, f"expected 1-D (one per sequence), got {t.dim()}-D")
    whole = torch.isfinite(t) & (t == torch.round(t)) & (t.abs() < 2**53)
    if not bool(whole.all()):
        index = int((~whole).nonzero()[0])
        raise PPOInputError(name, f"expected whole numbers, got {float(t[index])} at [{index}]")
    return t.to(torch.int64)


_NPZ_MAGIC = b"PK\x03\x04"
_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}  # fmt: skip
"""The safetensors dtypes NumPy can hold (bf16 has no NumPy dtype: cast it before saving)."""


def batch_file_kind(raw: bytes) -> str:
    """``npy``, ``npz`` or ``safetensors``, from the first bytes of an upload."""
    if raw.startswith(_NPY_MAGIC):
        return "npy"
    if raw.startswith(_NPZ_MAGIC):
        return "npz"
    return "safetensors"


def from_npz(
    raw: bytes, fields: set[str], *, max_elements: int, upload: str = "batch"
) -> dict[str, bytes]:
    """The ``.npy`` members of an ``.npz`` archive, by field name, each size-checked before it
    is decompressed (a member over the element limit is refused from its declared size). The
    members are then parsed by :func:`from_npy`: nothing is unpickled."""
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        infos = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise PPOInputError(upload, f"not a valid .npz archive: {exc}") from None
    out: dict[str, bytes] = {}
    for info in infos:
        name = info.filename.removesuffix(".npy")
        if name not in fields:
            raise PPOInputError(name, f"not a batch field; expected some of {sorted(fields)}")
        if info.file_size > 256 + 16 * max_elements:  # header + 16-byte items (complex128)
            raise PPOInputError(name, f"has over {max_elements} elements, over the limit")
        try:
            out[name] = archive.read(info)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise PPOInputError(name, f"unreadable .npz member: {exc}") from None
    return out


def from_safetensors(
    raw: bytes, fields: set[str], *, max_elements: int, upload: str = "batch"
) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file, by field name. The JSON header is checked first
    (names, dtypes, shapes, element counts, offsets); the ``safetensors`` package decodes."""
    import json

    from safetensors.numpy import load

    if len(raw) < 8:
        raise PPOInputError(upload, "not a .npy, .npz or .safetensors file (too short)")
    size = int.from_bytes(raw[:8], "little")
    if size <= 0 or size > min(len(raw) - 8, 100_000_000):
        raise PPOInputError(upload, "not a .npy, .npz or .safetensors file (bad header size)")
    try:
        header = json.loads(raw[8 : 8 + size])
    except (ValueError, UnicodeDecodeError):
        raise PPOInputError(upload, "not a .npy, .npz or .safetensors file") from None
    if not isinstance(header, dict):
        raise PPOInputError(upload, "malformed .safetensors header")
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if name not in fields:
            raise PPOInputError(name, f"not a batch field; expected some of {sorted(fields)}")
        if not isinstance(spec, dict) or spec.get("dtype") not in _SAFETENSORS_DTYPES:
            dtype = spec.get("dtype") if isinstance(spec, dict) else None
            raise PPOInputError(
                name,
                f"unsupported dtype {dtype!r}; expected one of {sorted(_SAFETENSORS_DTYPES)} "
                "(cast bfloat16 to float32 before saving)",
            )
        shape = spec.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise PPOInputError(name, "malformed shape in the .safetensors header")
        if math.prod(shape) > max_elements:
            raise PPOInputError(
                name, f"has {math.prod(shape)} elements, over the limit of {max_elements}"
            )
    try:
        return load(raw)
    except Exception as exc:  # safetensors raises its own error type for a corrupt file
        raise PPOInputError(upload, f"invalid .safetensors file: {exc}") from None


_JSON_KEY = re.compile(rb'"([A-Za-z_][A-Za-z0-9_]{0,63})"\s*:')


class JsonFieldCounter:
    """Counts, while a JSON body streams in, the numbers of each top-level tensor field, and
    refuses one over the element limit at once (a 422 naming it) instead of after reading and
    parsing the whole body, which takes seconds for a 200 MB one.

    Between a key and the next, a nested list of ``n`` numbers holds ``n - 1`` commas plus the
    comma ending the field: more than ``max_elements`` commas means more than ``max_elements``
    numbers. Lists of numbers hold no quotes, so every ``"name":`` seen is a key; the last
    bytes of each chunk are kept so a key split across chunks is still found. The parsed
    tensors are checked again, exactly, afterwards.
    """

    def __init__(self, fields: frozenset[str], max_elements: int) -> None:
        self.fields = fields
        self.max_elements = max_elements
        self.current: str | None = None
        self.count = 0
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        offset = len(self._tail)
        pos = offset
        for m in _JSON_KEY.finditer(data):
            if m.end() <= offset:  # seen with the previous chunk
                continue
            self._add(data.count(b",", pos, max(m.start(), offset)))
            self.current = m.group(1).decode()
            self.count = 0
            pos = max(m.end(), offset)
        self._add(data.count(b",", pos, len(data)))
        self._tail = data[-96:]

    def _add(self, commas: int) -> None:
        self.count += commas
        if self.current in self.fields and self.count > self.max_elements:
            raise PPOInputError(
                self.current, f"has over {self.max_elements} elements, over the limit"
            )
