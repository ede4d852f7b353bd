"""The batch analyzer. Runs in a worker process: parses the body (JSON, or uploads: one
``.npy`` per field, or one ``.npz`` / ``.safetensors`` holding the fields by name), validates
it, computes the loss breakdown, diagnostics, histograms and the batch inspector's sections
(:mod:`app.inspector`), returns plain data."""

from __future__ import annotations

import json
from typing import Any

import orjson
import torch
from pydantic import ValidationError

from app.correction import AppliedCorrection, rollout_for
from app.errors import RequestInvalid, error_item, pydantic_errors
from app.inspector import Inspection, inspect_batch
from app.knobs import convention_out, resolve_convention
from app.results import breakdown, finite, finite_list, loss_diagnostics
from app.schemas import AnalyzeRequest, AnalyzeResponse, HistogramOut
from app.tensors import (
    batch_file_kind,
    from_array,
    from_json,
    from_npy,
    from_npz,
    from_safetensors,
    int_ids,
)
from ppo_core import Convention, PPOInputError, compute_advantages, histogram, ppo_total_loss
from ppo_core.advantages import outcome_advantages

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
    "scores",
    "group_ids",
)
STRICT_FIELDS = {"logits", "mask", "scores", "group_ids"}
"""Fields where NaN / inf is refused outright; elsewhere it is allowed at masked positions."""

MAX_GRADIENT_ELEMENTS = 16_384
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
            arrays[name] = from_json(
                name,
                value,
                ranks=_ranks(name),
                max_elements=max_elements,
                allow_nonfinite=name not in STRICT_FIELDS,
            )
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
    """Analyze uploads plus knob form fields. Each upload is a ``.npy`` named after its field,
    or an ``.npz`` / ``.safetensors`` file (any part name) holding fields by name; the kind is
    read from the file's first bytes. Nothing is ever unpickled."""
    for name in fields:
        if name in TENSOR_FIELDS:
            raise PPOInputError(name, "tensor fields must be uploaded as files")
    arrays: dict[str, torch.Tensor] = {}

    def add(name: str, tensor: torch.Tensor) -> None:
        if name in arrays:
            raise PPOInputError(name, "given twice (in two uploads)")
        arrays[name] = tensor

    known = set(TENSOR_FIELDS)
    for part, raw in files.items():
        kind = batch_file_kind(raw)
        if kind == "npy":
            if part not in known:
                raise PPOInputError(part, f"not a tensor field; expected one of {sorted(known)}")
            add(part, _npy(part, raw, max_elements))
        elif kind == "npz":
            for name, member in from_npz(
                raw, known, max_elements=max_elements, upload=part
            ).items():
                add(name, _npy(name, member, max_elements))
        else:
            tensors = from_safetensors(raw, known, max_elements=max_elements, upload=part)
            for name, array in tensors.items():
                add(
                    name,
                    from_array(
                        name,
                        array,
                        ranks=_ranks(name),
                        max_elements=max_elements,
                        allow_nonfinite=name not in STRICT_FIELDS,
                    ),
                )
    knobs = _validate({**fields, **{name: [] for name in arrays}})
    return _analyze(arrays, knobs)


def _npy(name: str, raw: bytes, max_elements: int) -> torch.Tensor:
    return from_npy(
        name,
        raw,
        ranks=_ranks(name),
        max_elements=max_elements,
        allow_nonfinite=name not in STRICT_FIELDS,
    )


def _ranks(name: str) -> tuple[int, ...]:
    if name in ("scores", "group_ids"):
        return (1,)
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
    mask = t.get("mask")
    if mask is not None and mask.shape != t["logprobs"].shape:
        raise PPOInputError(
            "mask", f"shape {list(mask.shape)} does not match logprobs {list(t['logprobs'].shape)}"
        )
    nonfinite = _clean_nonfinite(t, mask)
    lp = t["logprobs"]
    rows = lp.shape[0] if lp.dim() == 2 else 1
    group_ids = None if "group_ids" not in t else int_ids("group_ids", t["group_ids"])
    for name, x in (("group_ids", group_ids), ("scores", t.get("scores"))):
        if x is not None and x.shape[0] != rows:
            raise PPOInputError(name, f"expected one per sequence ({rows}), got {x.shape[0]}")
    values = t.get("values")
    if values is None:
        values = torch.zeros_like(lp)
        notes.append("no values: the value loss is not computed and counts as 0")
    given = [name for name in ("advantages", "rewards", "scores") if name in t]
    if len(given) > 1:
        raise PPOInputError(given[1], f"give one of advantages, rewards, scores, not {given}")
    returns = t.get("returns")
    if "advantages" in t:
        advantages = t["advantages"]
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
    elif "scores" in t:
        advantages, note = _advantages_from_scores(t["scores"], group_ids, lp, mask, conv)
        notes.append(note)
    else:
        raise PPOInputError(
            "advantages", "field required (or send rewards or scores to compute them)"
        )
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
    if conv.rollout_is_level is not None and "rollout_logprobs" not in t:
        notes.append("rollout_is_level is set but no rollout_logprobs: no rollout correction")

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
    (grad,) = torch.autograd.grad(res.total_loss, leaf, allow_unused=True, retain_graph=True)
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
            "see histograms.logprob_gradient and token_view.gradient"
        )
    p = res.policy
    valid_adv = _masked(res.advantages, mask)
    diagnostics: dict[str, float | bool | None] = {
        **loss_diagnostics(res).model_dump(),
        "value_clip_fraction": res.value.clip_fraction,
        "value_clip_applied": res.value_clip_applied,
        "kl_to_reference": None if res.kl is None else finite("kl", float(res.kl.detach())),
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
        # log r stays readable where one extreme ratio stretches the ratio's bins to 1e10
        "log_ratio": _hist(lp - t["old_logprobs"], mask, knobs.bins),
    }
    corr_out = None
    if correction is not None:
        corr_out = correction.out()
        corr_out.histogram = _hist(correction.correction.raw_weights, mask, knobs.bins)
    inspection: Inspection = inspect_batch(
        res,
        conv,
        logprobs=leaf,
        old_logprobs=t["old_logprobs"],
        mask=mask,
        gradient=gradient,
        correction=None if correction is None else correction.correction,
        scores=t.get("scores"),
        group_ids=group_ids,
        first_epoch=knobs.first_epoch,
        micro_batches=knobs.micro_batches,
        nonfinite=nonfinite,
        advantages=advantages,
        rollout_logprobs=rollout,
    )
    tokens = int(lp.numel() if mask is None else mask.sum())
    return AnalyzeResponse(
        tokens=tokens,
        shape=list(lp.shape),
        inputs=sorted(t),
        breakdown=breakdown(res, conv),
        diagnostics=diagnostics,
        histograms=histograms,
        logprob_gradient=(
            finite_list("logprob_gradient", gradient)
            if lp.numel() <= MAX_GRADIENT_ELEMENTS
            else None
        ),
        rollout_correction=corr_out,
        policy_loss_mode=conv.policy_loss_mode,
        findings=inspection.findings,
        token_view=inspection.token_view,
        aggregation=inspection.aggregation,
        microbatch=inspection.microbatch,
        conventions=inspection.conventions,
        convention=convention_out(conv),
        notes=notes,
    ).model_dump()


def _clean_nonfinite(t: dict[str, torch.Tensor], mask: torch.Tensor | None) -> dict[str, int]:
    """NaN / inf is accepted at masked positions (replaced by 0, counted per field) and refused
    at valid ones, with a 422 naming the field and the first such index."""
    counts: dict[str, int] = {}
    for name, x in t.items():
        if name in STRICT_FIELDS:
            continue
        bad = ~torch.isfinite(x)
        if not bool(bad.any()):
            continue
        if mask is None or x.shape != mask.shape:
            index = [int(i) for i in bad.nonzero()[0]]
            raise PPOInputError(name, f"non-finite value {float(x[tuple(index)])} at index {index}")
        at_valid = bad & (mask > 0)
        if bool(at_valid.any()):
            index = [int(i) for i in at_valid.nonzero()[0]]
            raise PPOInputError(
                name,
                f"non-finite value {float(x[tuple(index)])} at index {index}, a valid (mask 1) "
                "position; NaN / inf is accepted only where the mask is 0",
            )
        counts[name] = int(bad.sum())
        t[name] = torch.where(bad, torch.zeros((), dtype=x.dtype), x)
    return counts


def _advantages_from_scores(
    scores: torch.Tensor,
    group_ids: torch.Tensor | None,
    lp: torch.Tensor,
    mask: torch.Tensor | None,
    conv: Convention,
) -> tuple[torch.Tensor, str]:
    """Advantages from one score per sequence with the convention's estimator: per sequence
    ``[B]`` for the group estimators, per token for REINFORCE++ (score on the last token)."""
    estimator = "grpo" if conv.advantage_estimator == "gae" else conv.advantage_estimator
    rows_lp = lp if lp.dim() == 2 else lp.unsqueeze(0)
    m = torch.ones_like(rows_lp) if mask is None else (mask if mask.dim() == 2 else mask[None])
    adv = outcome_advantages(
        scores,
        m,
        estimator=estimator,
        group_ids=group_ids,
        gamma=conv.gamma,
        eps=conv.group_std_eps,
    )
    if estimator == "reinforce_plus_plus":
        note = f"advantages from scores by REINFORCE++ (gamma={conv.gamma:g}, whitened over tokens)"
        return adv.reshape(lp.shape), note
    groups = len(set(group_ids.tolist())) if group_ids is not None else 0
    return adv.expand(lp.shape) if lp.dim() == 1 else adv, (
        f"advantages from scores by {estimator} over {groups} groups"
    )


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x.reshape(-1) if mask is None else x[mask > 0]


def _hist(x: torch.Tensor, mask: torch.Tensor | None, bins: int) -> HistogramOut:
    h = histogram(x.detach(), mask, bins)
    if not bool(torch.isfinite(h.edges).all()):
        raise PPOInputError("histogram", "values overflow; bound the ratio with log_ratio_clamp")
    return HistogramOut(edges=h.edges.tolist(), counts=h.counts.tolist())
