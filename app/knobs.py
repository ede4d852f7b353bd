"""A request's knobs as a :class:`ppo_core.Convention`, and a convention as response data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from pydantic import BaseModel

from app.schemas import ConventionOut
from ppo_core import Convention, get_convention

_NULLABLE_KNOBS = {f.name for f in fields(Convention) if "None" in str(f.type)}


def resolve_convention(knobs: BaseModel, rename: Mapping[str, str] | None = None) -> Convention:
    """The request's convention (default ``seed``) with every knob the client sent applied.

    A knob left out keeps the convention's value; an explicit ``null`` turns a nullable knob
    (dual clip, clamp, asymmetric eps, value clip) off. ``rename`` maps request field names
    to :class:`Convention` fields (e.g. ``clip_range`` -> ``value_clip_range``).
    """
    rename = rename or {}
    base = get_convention(getattr(knobs, "convention", None) or "seed")
    known = {f.name for f in fields(Convention)}
    overrides: dict[str, Any] = {}
    for name in knobs.model_fields_set:
        target = rename.get(name, name)
        if target not in known or target in ("name", "library", "source", "notes"):
            continue
        value = getattr(knobs, name)
        if value is None and target not in _NULLABLE_KNOBS:
            continue
        overrides[target] = value
    return base.with_overrides(**overrides)


def convention_out(c: Convention) -> ConventionOut:
    knobs = {k: v for k, v in asdict(c).items() if k not in ("name", "library", "source", "notes")}
    return ConventionOut(
        name=c.name,
        library=c.library,
        source=c.source,
        formula=c.formula(),
        notes=c.notes,
        knobs=knobs,
    )
