"""Reading a run's metric log: verl's file logger (JSON lines) and console lines, TRL's
``trainer_state.json``, TensorBoard event files (OpenRLHF, SB3, CleanRL; read with the
``tensorboard`` package), and CSV with a step column. Every failure is a
:class:`ppo_core.PPOInputError` on ``file`` naming the line (or the formats)."""

from __future__ import annotations

import csv
import io
import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import orjson

from ppo_core import PPOInputError

FORMATS = ("verl_jsonl", "verl_console", "trl_state", "tensorboard", "csv")

MAX_ROWS = 1_000_000
"""Most log rows (steps x files) one report reads."""

MAX_STEP = 10**15
"""Largest step number (in magnitude) a log may carry."""


@dataclass
class Series:
    """One metric's points, in the order read (lists as readers append; the JSON-lines fast
    path gives NumPy arrays)."""

    steps: list[int] | np.ndarray = field(default_factory=list)
    values: list[float] | np.ndarray = field(default_factory=list)


@dataclass
class RunLog:
    format: str
    series: dict[str, Series]
    wanted: Callable[[str], bool] | None = None
    """Readers may keep only a name (one placeholder point) for metrics it rejects: their
    values are never used (the report lists them by name)."""

    def add(self, name: str, step: int, value: float) -> None:
        s = self.series.get(name)
        if s is None:
            s = self.series[name] = Series()
        cast(list[int], s.steps).append(step)  # readers that add build lists
        cast(list[float], s.values).append(value)


def _number(value: object) -> float | None:
    """A metric value: numbers (and bools) as floats, "nan" / "inf" strings as such, else None
    (non-numeric entries such as strings are skipped)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _step(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PPOInputError("file", f"{where}: the step must be a number, got {value!r:.30}")
    if abs(value) > MAX_STEP:
        raise PPOInputError("file", f"{where}: the step {value!r:.30} is over {MAX_STEP:.0e}")
    return int(value)


def detect(raw: bytes, filename: str) -> str:
    """The format of a log from its name and first bytes."""
    if "tfevents" in filename:
        return "tensorboard"
    head = raw[:4096].lstrip()
    if head.startswith(b"{"):
        first = raw.lstrip().split(b"\n", 1)[0]
        try:
            obj = orjson.loads(first)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and "data" in obj and "step" in obj:
            return "verl_jsonl"
        if b'"log_history"' in raw[:1_000_000] or filename.endswith("trainer_state.json"):
            return "trl_state"
    text = head.decode("utf-8", errors="replace")
    if re.search(r"(^|\s)step:\s*\d+", text):
        return "verl_console"
    first_line = text.splitlines()[0] if text else ""
    if "," in first_line and any(c.strip().strip('"').lower() in ("step", "_step", "global_step")
                                 for c in first_line.split(",")):  # fmt: skip
        return "csv"
    if b"\x00" in raw[:64]:
        return "tensorboard"
    raise PPOInputError(
        "file",
        f"unknown log format; expected one of {list(FORMATS)} (verl JSON lines, verl console "
        "lines, TRL trainer_state.json, TensorBoard events, CSV with a step column)",
    )


def parse(raw: bytes, fmt: str, wanted: Callable[[str], bool] | None = None) -> RunLog:
    if fmt not in FORMATS:
        raise PPOInputError("format", f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
    reader = {
        "verl_jsonl": _verl_jsonl,
        "verl_console": _verl_console,
        "trl_state": _trl_state,
        "tensorboard": _tensorboard,
        "csv": _csv,
    }[fmt]
    if fmt == "verl_jsonl":
        return _verl_jsonl(raw, wanted)
    return reader(raw)


CHUNK_BYTES = 8 * 1024 * 1024
"""The JSON-lines fast path parses this many bytes of lines at a time: the memory of one
chunk's objects is reused by the next (parsing a 170 MB log whole costs 1 GB of fresh pages)."""


def _verl_jsonl(raw: bytes, wanted: Callable[[str], bool] | None = None) -> RunLog:
    """verl's file logger. Fast path: the lines parsed a chunk at a time, each chunk as one
    JSON array (one C call; the newlines become commas), values read only for the names
    ``wanted`` keeps, a column at a time; a file with blank lines, NaN / Infinity literals
    (Python's json writes them) or a broken line takes the line-by-line path, which names the
    line and keeps every value."""
    body = raw.replace(b"\r\n", b"\n") if b"\r" in raw else raw
    body = body.strip()
    if body.count(b"\n") >= MAX_ROWS:
        raise PPOInputError("file", f"over {MAX_ROWS} lines")
    pieces: dict[str, list[Series]] = {}  # per name, in order of first appearance
    unwanted: dict[str, int | None] = {}  # first step with a number, for names never read
    line = 1
    pos = 0
    while pos < len(body):
        end = body.find(b"\n", pos + CHUNK_BYTES)
        end = len(body) if end < 0 else end
        doc = bytearray(b"[")
        doc += body[pos:end].replace(b"\n", b",")
        doc += b"]"
        try:
            rows = orjson.loads(doc)
        except orjson.JSONDecodeError:
            return _verl_jsonl_lines(raw)
        if not all(type(r) is dict and type(r.get("data")) is dict for r in rows):
            return _verl_jsonl_lines(raw)
        _read_rows(rows, line, wanted, pieces, unwanted)
        line += len(rows)
        pos = end + 1
    run = RunLog("verl_jsonl", {}, wanted)
    for name in dict.fromkeys([*pieces, *unwanted]):
        if name in unwanted:
            first = unwanted[name]
            if first is not None:  # a name only: its values are never used
                run.series[name] = Series([first], [0.0])
            continue
        parts = [p for p in pieces[name] if len(p.steps)]
        if len(parts) == 1:
            run.series[name] = parts[0]
        elif parts:
            run.series[name] = Series(
                np.concatenate([np.asarray(p.steps, dtype=np.int64) for p in parts]),
                np.concatenate([np.asarray(p.values, dtype=np.float64) for p in parts]),
            )
    return run


def _read_rows(
    rows: list[dict[str, object]],
    first_line: int,
    wanted: Callable[[str], bool] | None,
    pieces: dict[str, list[Series]],
    unwanted: dict[str, int | None],
) -> None:
    """One chunk of verl rows into ``pieces`` (a series part per wanted name) and
    ``unwanted``."""
    steps = [_step(r.get("step"), f"line {first_line + i}") for i, r in enumerate(rows)]
    step_array = np.asarray(steps, dtype=np.int64)
    datas: list[dict[str, object]] = [r["data"] for r in rows]  # type: ignore[misc]
    for name in _names(datas):
        if wanted is not None and not wanted(name):
            if unwanted.get(name) is None:
                first = next(
                    (i for i, d in enumerate(datas) if _number(d.get(name)) is not None), None
                )
                unwanted[name] = None if first is None else steps[first]
            continue
        column = [d.get(name) for d in datas]
        try:  # numbers only (the common case): one C call
            values = np.array(column, dtype=np.float64)
        except (TypeError, ValueError):
            values = None
        if values is not None and values.ndim == 1:
            pieces.setdefault(name, []).append(Series(step_array, values))
            continue
        kept_steps: list[int] = []
        kept_values: list[float] = []
        for step, v in zip(steps, column, strict=True):
            number = _number(v)
            if number is not None:
                kept_steps.append(step)
                kept_values.append(number)
        pieces.setdefault(name, []).append(Series(kept_steps, kept_values))


def _names(rows: list[dict[str, object]]) -> list[str]:
    """Every key of ``rows``, in order of first appearance."""
    first = list(rows[0]) if rows else []
    if len(set().union(*rows)) == len(first):  # every row has the first row's keys (or fewer)
        return first
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _verl_jsonl_lines(raw: bytes) -> RunLog:
    import json

    run = RunLog("verl_jsonl", {})
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            try:
                obj = json.loads(line)  # NaN / Infinity literals, as Python's json writes
            except ValueError:
                raise PPOInputError("file", f"line {number}: invalid JSON ({exc})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("data"), dict):
            raise PPOInputError("file", f'line {number}: expected {{"step": N, "data": {{...}}}}')
        step = _step(obj.get("step"), f"line {number}")
        for name, value in obj["data"].items():
            v = _number(value)
            if v is not None:
                run.add(name, step, v)
    return run


_CONSOLE_STEP = re.compile(r"(?:^|\s)step:\s*(\d+)")


def _verl_console(raw: bytes) -> RunLog:
    """Lines ``step:N - key:value - key:value ...`` (verl's console logger); other lines (the
    trainer's own prints) are skipped."""
    run = RunLog("verl_console", {})
    text = raw.decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        m = _CONSOLE_STEP.search(line)
        if m is None:
            continue
        if number > MAX_ROWS:
            raise PPOInputError("file", f"over {MAX_ROWS} lines")
        step = int(m.group(1))
        for part in line[m.end() :].split(" - "):
            if ":" not in part:
                continue
            name, _, value = part.strip().rpartition(":")
            v = _number(value.strip())
            if name and v is not None:
                run.add(name.strip(), step, v)
    if not run.series:
        raise PPOInputError("file", "no 'step:N - key:value' line found")
    return run


def _trl_state(raw: bytes) -> RunLog:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PPOInputError("file", f"invalid JSON: {exc}") from None
    history = obj.get("log_history") if isinstance(obj, dict) else None
    if not isinstance(history, list):
        raise PPOInputError("file", "expected a trainer_state.json with a log_history list")
    if len(history) > MAX_ROWS:
        raise PPOInputError("file", f"over {MAX_ROWS} log_history entries")
    run = RunLog("trl_state", {})
    for i, entry in enumerate(history):
        if not isinstance(entry, dict) or "step" not in entry:
            raise PPOInputError("file", f"log_history[{i}]: expected an object with a step")
        step = _step(entry["step"], f"log_history[{i}]")
        for name, value in entry.items():
            if name in ("step", "epoch"):
                continue
            v = _number(value)
            if v is not None:
                run.add(name, step, v)
    return run


def _csv(raw: bytes) -> RunLog:
    text = raw.decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise PPOInputError("file", "empty CSV") from None
    names = [h.strip() for h in header]
    lowered = [n.lower() for n in names]
    step_col = next(
        (lowered.index(c) for c in ("step", "_step", "global_step") if c in lowered), None
    )
    if step_col is None:
        raise PPOInputError("file", "line 1: the CSV header needs a step column")
    run = RunLog("csv", {})
    for number, row in enumerate(reader, 2):
        if not row or all(not c.strip() for c in row):
            continue
        if number > MAX_ROWS:
            raise PPOInputError("file", f"over {MAX_ROWS} lines")
        if len(row) != len(names):
            raise PPOInputError(
                "file", f"line {number}: {len(row)} columns, the header has {len(names)}"
            )
        step_value = _number(row[step_col])
        if step_value is None:
            raise PPOInputError(
                "file", f"line {number}: the step {row[step_col]!r:.30} is not a number"
            )
        step = _step(step_value, f"line {number}")
        for j, cell in enumerate(row):
            if j == step_col or not cell.strip():
                continue
            v = _number(cell.strip())
            if v is not None:
                run.add(names[j], step, v)
    return run


def _tensorboard(raw: bytes) -> RunLog:
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError:
        raise PPOInputError(
            "file",
            "reading TensorBoard files needs the tensorboard package: "
            "pip install 'ppo-explorer[tensorboard]'",
        ) from None
    # The reader takes a path: the bytes go to a private temporary file, deleted at once
    # (nothing is kept once the report is computed).
    fd, path = tempfile.mkstemp(suffix=".tfevents")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.SCALARS: 0})
        try:
            acc.Reload()
        except Exception as exc:  # a corrupt record: the reader raises its own errors
            raise PPOInputError(
                "file",
                f"unreadable TensorBoard events ({exc}); the formats are {list(FORMATS)}",
            ) from None
        run = RunLog("tensorboard", {})
        rows = 0
        for tag in acc.Tags().get(event_accumulator.SCALARS, []):
            for event in acc.Scalars(tag):
                rows += 1
                if rows > MAX_ROWS:
                    raise PPOInputError("file", f"over {MAX_ROWS} scalar events")
                run.add(tag, int(event.step), float(event.value))
    finally:
        os.unlink(path)
    if not run.series:
        raise PPOInputError(
            "file",
            f"no scalar found in the TensorBoard events (if this is not a TensorBoard file: the "
            f"formats are {list(FORMATS)})",
        )
    return run
