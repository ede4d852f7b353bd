"""The batch analyzer. Runs in a worker process: parses the body (JSON or ``.npy`` bytes),
validates it, computes the loss breakdown, diagnostics and histograms, returns plain data."""

from __future__ import annotations

import json
from typing import Any

import orjson
import torch
from pydantic import ValidationError

from app.errors import RequestInvalid, error_item, pydantic_errors
from app.schemas import AnalyzeRequest, AnalyzeResponse, HistogramOut
from app.services import (
    AppliedCorrection,
    breakdown,
    convention_out,
    finite,
    finite_list,
    loss_diagnostics,
    resolve_convention,
    rollout_for,
)
from app.tensors import from_json, from_npy
from ppo_core import PPOInputError, compute_advantages, histogram, ppo_total_loss

TENSOR_FIELDS = (
    "logprobs",
    "old_logprobs",
    "advantages",
    "rewards",
    "values",
    "returns",
    "old_values",
    "ref_logprobs",
    "rollout_logprobs",
    "entropy",
    "logits",
    "mask",
)


MAX_GRADIENT_ELEMENTS = 65_536
"""Largest batch whose per-token ``logprob_gradient`` is returned in full."""


def analyze_json(body: bytes | list[bytes], max_elements: int) -> dict[str, Any]:
    """Analyze a JSON body (whole, or the chunks it arrived in): ``AnalyzeRequest`` fields,
    tensors as nested lists."""
    if isinstance(body, list):
        body = b"".join(body)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        data = _lenient_json(body, exc)
    if not isinstance(data, dict):
        raise RequestInvalid(
            [error_item(["body"], "expected a JSON object", "model_attributes_type")]
        )
    knobs = _validate(data)
    arrays = {}
    for name in TENSOR_FIELDS:
        value = getattr(knobs, name)
        if value is not None:
            arrays[name] = from_json(name, value, ranks=_ranks(name), max_elements=max_elements)
    return _analyze(arrays, knobs)


def _lenient_json(body: bytes, exc: orjson.JSONDecodeError) -> Any:
    """Parse what orjson refused when Python's parser takes it: NaN and Infinity literals, so
    that the tensor check names the field holding them instead of a bare "invalid JSON"."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise RequestInvalid(
            [error_item(["body"], f"invalid JSON: {exc}", "json_invalid")]
        ) from None


def analyze_npy(
    files: dict[str, bytes], fields: dict[str, str], max_elements: int
) -> dict[str, Any]:
    """Analyze ``.npy`` uploads (one file per tensor field) plus knob form fields."""
    for name in files:
        if name not in TENSOR_FIELDS:
            raise PPOInputError(name, f"not a tensor field; expected one of {list(TENSOR_FIELDS)}")
    for name in fields:
        if name in TENSOR_FIELDS:
            raise PPOInputError(name, "tensor fields must be uploaded as .npy files")
    knobs = _validate({**fields, **{name: [] for name in files}})
    arrays = {
        name: from_npy(
            name, raw, ranks=(1, 2, 3) if name == "logits" else (1, 2), max_elements=max_elements
        )
        for name, raw in files.items()
    }
    return _analyze(arrays, knobs)


def _ranks(name: str) -> tuple[int, ...]:
    return (1, 2, 3) if name == "logits" else (1, 2)


def _validate(data: dict[str, Any]) -> AnalyzeRequest:
    try:
        return AnalyzeRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestInvalid(pydantic_errors(exc.errors(include_input=False))) from None


def _analyze(t: dict[str, torch.Tensor], knobs: AnalyzeRequest) -> dict[str, Any]:
    conv = resolve_convention(knobs)
    notes: list[str] = []
    for name in ("logprobs", "old_logprobs"):
        if name not in t:
            raise PPOInputError(name, "field required")
    lp = t["logprobs"]
    mask = t.get("mask")
    values = t.get("values")
    if values is None:
        values = torch.zeros_like(lp)
        notes.append("no values: the value loss is not computed and counts as 0")
    if "advantages" in t:
        if "rewards" in t:
            raise PPOInputError("rewards", "give advantages or rewards, not both")
        advantages = t["advantages"]
        returns = t.get("returns")
    elif "rewards" in t:
        if t["rewards"].shape != lp.shape:
            raise PPOInputError(
                "rewards",
                f"shape {list(t['rewards'].shape)} does not match logprobs {list(lp.shape)}",
            )
        advantages, gae_returns = compute_advantages(t["rewards"], values, mask, conv)
        returns = t.get("returns", gae_returns)
        notes.append(
            f"advantages from rewards by GAE (gamma={conv.gamma:g}, lam={conv.lam:g})"
            + (", whitened" if conv.advantage_norm == "whiten" else "")
        )
    else:
        raise PPOInputError("advantages", "field required (or send rewards to compute them)")
    if returns is None:
        if "values" in t:
            raise PPOInputError("returns", "field required with values (or send rewards)")
        returns = torch.zeros_like(lp)
    if conv.advantage_norm == "minibatch":
        notes.append("advantages normalised per batch: (A - mean) / (std + 1e-8)")
    if conv.value_clip_range is not None and "old_values" not in t:
        notes.append("no old_values: value clipping skipped")
    if "logits" not in t and "entropy" not in t:
        notes.append("no logits or entropy: the entropy term is 0")

    rollout = t.get("rollout_logprobs")
    leaf = lp.clone().requires_grad_(True)
    res = ppo_total_loss(
        leaf,
        t["old_logprobs"],
        advantages,
        values,
        returns,
        mask=mask,
        old_values=t.get("old_values"),
        logits=t.get("logits"),
        entropy=t.get("entropy"),
        ref_logprobs=t.get("ref_logprobs"),
        rollout_logprobs=rollout,
        convention=conv,
    )
    (grad,) = torch.autograd.grad(res.total_loss, leaf, allow_unused=True)
    gradient = torch.zeros_like(lp) if grad is None else grad
    correction = None
    if rollout is not None:
        if res.rollout is not None:
            correction = AppliedCorrection(res.rollout, True, conv)
        else:
            correction = rollout_for(t["old_logprobs"], rollout, mask, conv)
            notes.append("rollout_logprobs without rollout_is_level: metrics only, not applied")
    if lp.numel() > MAX_GRADIENT_ELEMENTS:
        notes.append(
            f"logprob_gradient omitted above {MAX_GRADIENT_ELEMENTS} elements; "
            "see histograms.logprob_gradient"
        )
    p = res.policy
    valid_adv = _masked(res.advantages, mask)
    diagnostics: dict[str, float | bool | None] = {
        **loss_diagnostics(res).model_dump(),
        "value_clip_fraction": res.value.clip_fraction,
        "value_clip_applied": res.value_clip_applied,
        "kl_to_reference": None if res.kl is None else finite("kl", float(res.kl)),
        "advantage_mean": finite("advantages", float(valid_adv.mean())),
        "advantage_std": finite("advantages", float(valid_adv.std(correction=0))),
        "clip_fraction_as_logged": getattr(p, conv.clip_fraction_metric),
        "approx_kl_as_logged": getattr(p, conv.approx_kl_metric),
    }
    histograms = {
        "ratio": _hist(p.ratio, mask, knobs.bins),
        "advantage": _hist(res.advantages, mask, knobs.bins),
        "per_token_loss": _hist(p.per_token_loss, mask, knobs.bins),
        "logprob_gradient": _hist(gradient, mask, knobs.bins),
    }
    tokens = int(lp.numel() if mask is None else mask.sum())
    return AnalyzeResponse(
        tokens=tokens,
        shape=list(lp.shape),
        breakdown=breakdown(res, conv),
        diagnostics=diagnostics,
        histograms=histograms,
        logprob_gradient=(
            finite_list("logprob_gradient", gradient)
            if lp.numel() <= MAX_GRADIENT_ELEMENTS
            else None
        ),
        rollout_correction=None if correction is None else correction.out(),
        policy_loss_mode=conv.policy_loss_mode,
        convention=convention_out(conv),
        notes=notes,
    ).model_dump()


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x.reshape(-1) if mask is None else x[mask > 0]


def _hist(x: torch.Tensor, mask: torch.Tensor | None, bins: int) -> HistogramOut:
    h = histogram(x.detach(), mask, bins)
    if not bool(torch.isfinite(h.edges).all()):
        raise PPOInputError("histogram", "values overflow; bound the ratio with log_ratio_clamp")
    return HistogramOut(edges=h.edges.tolist(), counts=h.counts.tolist())
