"""Losses on the caller's tensors: the seed's total, policy, value, entropy, KL."""

from __future__ import annotations

import math

import torch
from fastapi import APIRouter

from app.correction import rollout_for
from app.deps import HeavyDep, SettingsDep, compute
from app.knobs import convention_out, resolve_convention
from app.results import breakdown, finite, finite_list, loss_diagnostics, policy_diagnostics
from app.schemas import (
    EntropyRequest,
    EntropyResponse,
    KLRequest,
    KLResponse,
    LossRequest,
    LossResponse,
    PolicyLossRequest,
    PolicyLossResponse,
    ValueLossRequest,
    ValueLossResponse,
)
from app.tensors import count_elements, opt_tensor, req_tensor
from ppo_core import PPOInputError, entropy_from_logits, ppo_total_loss, value_loss
from ppo_core._checks import prepare_mask
from ppo_core.aggregation import masked_mean
from ppo_core.kl import kl_gradient, kl_per_token, kl_true_gradient_weight
from ppo_core.total import convention_policy_loss

router = APIRouter(prefix="/api/v1", tags=["losses"])


@router.post("/loss", response_model=LossResponse)
async def total_loss(body: LossRequest, settings: SettingsDep, heavy: HeavyDep) -> LossResponse:
    """The seed's ``compute_ppo_total_loss``: policy + vf_coef·value - entropy_coef·entropy.

    Same numbers as the seed's function (float64 here); ``logits`` must have the tokens'
    shape plus a vocabulary axis.
    """
    n = settings.max_tensor_elements
    conv = resolve_convention(body)
    names = ("policy_logprobs", "old_logprobs", "advantages", "values", "returns")

    def run() -> LossResponse:
        t = [req_tensor(body, name, n) for name in names]
        res = ppo_total_loss(*t, logits=req_tensor(body, "logits", n, (1, 2, 3)), convention=conv)
        b = breakdown(res, conv)
        return LossResponse(
            total_loss=b.total_loss,
            policy_loss=b.policy_loss,
            value_loss=b.value_loss,
            entropy=b.entropy,
            diagnostics=loss_diagnostics(res),
        )

    return await compute(heavy, count_elements(body, (*names, "logits")), run)


@router.post("/policy-loss", response_model=PolicyLossResponse)
async def policy(
    body: PolicyLossRequest, settings: SettingsDep, heavy: HeavyDep
) -> PolicyLossResponse:
    """Policy loss of any ``policy_loss_mode`` per token and aggregated, with its gradient
    ``d loss / d logprobs`` and every diagnostic.

    ``advantages`` may be one per sequence (``[batch]`` beside ``[batch, tokens]`` log-probs).
    With ``rollout_logprobs``, the rollout-correction weights selected by ``rollout_is_level``
    (``null``: none applied, metrics still reported at token level) scale the per-token loss.
    """
    n = settings.max_tensor_elements
    conv = resolve_convention(body)
    names = ("logprobs", "old_logprobs", "advantages", "mask", "rollout_logprobs")

    def run() -> PolicyLossResponse:
        lp = req_tensor(body, "logprobs", n)
        old = req_tensor(body, "old_logprobs", n)
        mask = opt_tensor(body, "mask", n)
        rollout = opt_tensor(body, "rollout_logprobs", n)
        correction = None if rollout is None else rollout_for(old, rollout, mask, conv)
        leaf = lp.clone().requires_grad_(True)
        out = convention_policy_loss(
            leaf,
            old,
            req_tensor(body, "advantages", n),
            mask,
            conv,
            rollout_is_weights=correction.weights if correction and correction.applied else None,
        )
        (gradient,) = torch.autograd.grad(out.loss, leaf, allow_unused=True)
        if gradient is None:  # a loss that does not depend on the log-probs (all A = 0)
            gradient = torch.zeros_like(lp)
        return PolicyLossResponse(
            **policy_diagnostics(out).model_dump(),
            loss=finite("loss", float(out.loss.detach())),
            per_token_loss=finite_list("per_token_loss", out.per_token_loss.detach()),
            logprob_gradient=finite_list("logprob_gradient", gradient),
            ratio=finite_list("ratio", out.ratio.detach()),
            rollout_weights=None if correction is None else correction.weights.tolist(),
            rollout_correction=None if correction is None else correction.out(),
            policy_loss_mode=conv.policy_loss_mode,
            convention=convention_out(conv),
        )

    return await compute(heavy, count_elements(body, names), run)


@router.post("/value-loss", response_model=ValueLossResponse)
async def value(
    body: ValueLossRequest, settings: SettingsDep, heavy: HeavyDep
) -> ValueLossResponse:
    """Value loss, clipped around ``old_values`` per ``mode`` when a clip range applies.

    A clip range set explicitly needs ``old_values`` (422 otherwise); one that only comes from
    the convention is skipped without them (``clip_applied: false``).
    """
    n = settings.max_tensor_elements
    conv = resolve_convention(
        body, {"clip_range": "value_clip_range", "mode": "value_mode", "scale": "value_scale"}
    )
    names = ("values", "returns", "old_values", "mask")

    def run() -> ValueLossResponse:
        old = opt_tensor(body, "old_values", n)
        explicit = "clip_range" in body.model_fields_set
        clip = conv.value_clip_range if (old is not None or explicit) else None
        out = value_loss(
            req_tensor(body, "values", n),
            req_tensor(body, "returns", n),
            old,
            opt_tensor(body, "mask", n),
            clip_range=clip,
            mode=conv.value_mode,
            scale=conv.value_scale,
            loss_agg_mode=conv.loss_agg_mode,
        )
        return ValueLossResponse(
            loss=finite("loss", float(out.loss)),
            per_token_loss=finite_list("per_token_loss", out.per_token_loss),
            clip_fraction=out.clip_fraction,
            clip_applied=clip is not None,
            convention=convention_out(conv),
        )

    return await compute(heavy, count_elements(body, names), run)


@router.post("/entropy", response_model=EntropyResponse)
async def entropy(body: EntropyRequest, settings: SettingsDep, heavy: HeavyDep) -> EntropyResponse:
    """Entropy of ``softmax(logits / temperature)`` per row (leading shape) and its mean."""
    n = settings.max_tensor_elements

    def run() -> EntropyResponse:
        logits = req_tensor(body, "logits", n, (1, 2, 3))
        if not bool(torch.isfinite(logits / body.temperature).all()):
            raise PPOInputError(
                "temperature",
                f"logits / temperature overflows float64 (largest |logit| "
                f"{float(logits.abs().max()):g}); use a larger temperature",
            )
        per_row = entropy_from_logits(logits, body.temperature)
        return EntropyResponse(
            entropy=float(per_row.mean()),
            per_row=per_row.tolist(),
            max_entropy=math.log(logits.shape[-1]),
        )

    return await compute(heavy, count_elements(body, ["logits"]), run)


@router.post("/kl", response_model=KLResponse)
async def kl(body: KLRequest, settings: SettingsDep, heavy: HeavyDep) -> KLResponse:
    """KL(pi || pi_ref) estimate per token, its masked token mean, and its gradient.

    ``gradient`` is ``d estimate / d logprobs`` per token (what the estimator pushes when used
    as a loss); ``true_gradient_weight`` is ``log pi - log pi_ref``, whose expectation times
    ``∇log pi`` is the exact gradient of the KL: k2 and k3+ match it, k1 and k3 do not.
    """
    n = settings.max_tensor_elements
    names = ("logprobs", "ref_logprobs", "mask")

    def run() -> KLResponse:
        lp = req_tensor(body, "logprobs", n)
        ref = req_tensor(body, "ref_logprobs", n)
        mask = opt_tensor(body, "mask", n)
        per_token = kl_per_token(
            lp, ref, body.estimator, log_ratio_clamp=body.log_ratio_clamp, clamp=body.clamp
        )
        mean = masked_mean(per_token, prepare_mask(mask, lp))
        return KLResponse(
            kl=finite("kl", float(mean)),
            per_token=finite_list("per_token", per_token),
            estimator=body.estimator,
            gradient=finite_list(
                "gradient",
                kl_gradient(
                    lp, ref, body.estimator, log_ratio_clamp=body.log_ratio_clamp, clamp=body.clamp
                ),
            ),
            true_gradient_weight=finite_list(
                "true_gradient_weight", kl_true_gradient_weight(lp, ref)
            ),
        )

    return await compute(heavy, count_elements(body, names), run)
