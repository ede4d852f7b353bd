"""Glue shared by the routes: conventions from request knobs, tensors from request fields,
finite results, and where a computation runs (inline when small, off the loop when large)."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import torch
from fastapi import Request, Response
from pydantic import BaseModel

from app.heavy import HeavyRunner
from app.schemas import (
    BreakdownOut,
    ConventionOut,
    LossDiagnostics,
    PolicyDiagnostics,
    RolloutCorrectionOut,
)
from app.settings import Settings
from app.tensors import from_json
from ppo_core import Convention, PPOInputError, get_convention
from ppo_core.policy import PolicyLossOutput
from ppo_core.rollout import RolloutCorrection, rollout_correction
from ppo_core.total import TotalLossOutput

T = TypeVar("T")

INLINE_ELEMENTS = 65_536
"""Requests with at most this many input numbers are computed on the event loop (tens of
microseconds to a millisecond); larger ones go to the heavy thread pool."""

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


def limits(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


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


def finite(name: str, value: float) -> float:
    """Refuse a non-finite result with a 422 that says which quantity overflowed."""
    if not math.isfinite(value):
        hint = "send smaller values"
        if name in _RATIO_BOUNDED:
            hint = "bound it with log_ratio_clamp or dual_clip, or send smaller values"
        raise PPOInputError(
            name, f"result is {value}: it overflows float64 for these inputs ({hint})"
        )
    return value


_RATIO_BOUNDED = {
    "loss",
    "per_token_loss",
    "policy_loss",
    "total_loss",
    "logprob_gradient",
    "ratio",
    "ratio_max",
    "ratio_mean",
    "approx_kl_k3",
}
"""Results that a log-ratio clamp or a dual clip bounds (the hint of :func:`finite`)."""


def finite_or_none(name: str, value: float | None) -> float | None:
    """:func:`finite` for an optional result (``None`` passes through)."""
    return None if value is None else finite(name, value)


def finite_list(name: str, t: torch.Tensor) -> Any:
    """``t.tolist()`` after checking every entry is finite."""
    if not bool(torch.isfinite(t).all()):
        finite(name, float(t[~torch.isfinite(t)].flatten()[0]))
    return t.tolist()


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


async def compute(request: Request, elements: int, fn: Callable[[], T]) -> T:
    """Run ``fn`` inline when the request is small, else in the bounded heavy thread pool."""
    if elements <= INLINE_ELEMENTS:
        return fn()
    runner: HeavyRunner = request.app.state.heavy
    return await runner.in_thread(fn)


def breakdown(res: TotalLossOutput, c: Convention) -> BreakdownOut:
    """The stacked terms of a total loss: policy + vf·value - ent·H (+ kl·KL)."""
    entropy = 0.0 if res.entropy is None else finite("entropy", float(res.entropy.detach()))
    kl = None if res.kl is None else finite("kl", float(res.kl.detach()))
    value = finite("value_loss", float(res.value.loss.detach()))
    return BreakdownOut(
        policy_loss=finite("policy_loss", float(res.policy.loss.detach())),
        value_loss=value,
        entropy=entropy,
        value_term=c.vf_coef * value,
        entropy_term=-c.entropy_coef * entropy,
        kl=kl,
        kl_term=c.kl_coef * kl if res.kl_in_loss and kl is not None else 0.0,
        total_loss=finite("total_loss", float(res.total_loss.detach())),
    )


def policy_diagnostics(p: PolicyLossOutput) -> PolicyDiagnostics:
    """The policy loss's diagnostics, each checked finite (the one place they are shaped)."""
    return PolicyDiagnostics(
        clip_fraction=p.clip_fraction,
        clip_fraction_lower=p.clip_fraction_lower,
        ratio_outside_fraction=p.ratio_outside_fraction,
        approx_kl=finite("approx_kl", p.approx_kl),
        approx_kl_k2=finite("approx_kl_k2", p.approx_kl_k2),
        approx_kl_k3=finite("approx_kl_k3", p.approx_kl_k3),
        ratio_min=finite("ratio_min", p.ratio_min),
        ratio_mean=finite("ratio_mean", p.ratio_mean),
        ratio_max=finite("ratio_max", p.ratio_max),
    )


def loss_diagnostics(res: TotalLossOutput) -> LossDiagnostics:
    """Policy diagnostics plus explained variance, each checked finite."""
    return LossDiagnostics(
        **policy_diagnostics(res.policy).model_dump(),
        explained_variance=finite_or_none("explained_variance", res.explained_variance),
    )


@dataclass(frozen=True)
class AppliedCorrection:
    """A rollout correction and whether the convention applies it to the policy loss."""

    correction: RolloutCorrection
    applied: bool
    convention: Convention

    @property
    def weights(self) -> torch.Tensor:
        return self.correction.weights

    def out(self) -> RolloutCorrectionOut:
        c = self.convention
        return RolloutCorrectionOut(
            applied=self.applied,
            level=c.rollout_is_level or "token",
            mode=c.rollout_is_mode,
            threshold=c.rollout_is_threshold,
            threshold_low=(
                1.0 / c.rollout_is_threshold  # the mask's documented default, as applied
                if c.rollout_is_threshold_low is None and c.rollout_is_mode == "mask"
                else c.rollout_is_threshold_low
            ),
            metrics={k: finite(k, v) for k, v in self.correction.metrics.items()},
        )


def rollout_for(
    old: torch.Tensor, rollout: torch.Tensor, mask: torch.Tensor | None, c: Convention
) -> AppliedCorrection:
    """The convention's rollout correction of ``old`` vs ``rollout`` log-probs; with
    ``rollout_is_level`` unset it is computed at token level for its metrics only."""
    correction = rollout_correction(
        old,
        rollout,
        mask,
        level=c.rollout_is_level or "token",
        mode=c.rollout_is_mode,
        threshold=c.rollout_is_threshold,
        threshold_low=c.rollout_is_threshold_low,
    )
    return AppliedCorrection(correction, c.rollout_is_level is not None, c)


class JSONBytes(Response):
    """A response whose body is JSON already serialised (kept in :class:`ResponseCache`)."""

    media_type = "application/json"


class ResponseCache:
    """The one server-side cache of GET answers: serialised JSON bodies of pure endpoints,
    keyed by the endpoint and its *validated* query values (so unknown or differently spelled
    parameters cannot add entries), least recently used out first, bounded by the total bytes
    of the bodies it holds (``PPO_EXPLORER_RESPONSE_CACHE_BYTES``). Only successful answers are
    kept. Used from the event loop only (no locking needed)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_build(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
            return body
        body = build()
        if len(body) <= self.max_bytes:
            self._entries[key] = body
            self.bytes += len(body)
            while self.bytes > self.max_bytes:
                _, old = self._entries.popitem(last=False)
                self.bytes -= len(old)
        return body
