"""Advantage estimators on the caller's rewards, and rollout correction on their log-probs."""

from __future__ import annotations

import torch
from fastapi import APIRouter

from app.deps import HeavyDep, SettingsDep, compute
from app.results import finite, finite_list
from app.schemas import (
    GAERequest,
    GAEResponse,
    GroupRequest,
    GroupResponse,
    ReinforcePPRequest,
    ReinforcePPResponse,
    RolloutCorrectionRequest,
    RolloutCorrectionResponse,
)
from app.tensors import count_elements, from_json, int_from_json, opt_tensor, req_tensor
from ppo_core import PPOInputError, gae, group_advantages, whiten
from ppo_core.advantages import reinforce_plus_plus
from ppo_core.rollout import rollout_correction

router = APIRouter(prefix="/api/v1", tags=["advantages"])


@router.post("/advantages/gae", response_model=GAEResponse)
async def gae_route(body: GAERequest, settings: SettingsDep, heavy: HeavyDep) -> GAEResponse:
    """GAE advantages and returns (``returns = advantages + values``, before whitening).

    ``dones[t] = 1`` ends the episode at step ``t`` (no bootstrap past it); ``last_value``
    bootstraps after the last step (default 0: the episode ends there).
    """
    n = settings.max_tensor_elements

    def run() -> GAEResponse:
        mask = opt_tensor(body, "mask", n)
        rewards = req_tensor(body, "rewards", n)
        raw = body.last_value
        last: torch.Tensor | float | None = None
        if isinstance(raw, list):
            last = from_json("last_value", raw, ranks=(1,), max_elements=n)
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            last = float(from_json("last_value", [raw], ranks=(1,), max_elements=1)[0])
        elif raw is not None:
            raise PPOInputError("last_value", "expected a number or a list of numbers")
        out = gae(
            rewards,
            req_tensor(body, "values", n),
            mask,
            gamma=body.gamma,
            lam=body.lam,
            dones=opt_tensor(body, "dones", n),
            last_value=last,
        )
        adv = whiten(out.advantages, mask) if body.whiten else out.advantages
        return GAEResponse(
            advantages=finite_list("advantages", adv),
            returns=finite_list("returns", out.returns),
        )

    names = ("rewards", "values", "mask", "dones")
    return await compute(heavy, count_elements(body, names), run)


@router.post("/advantages/group", response_model=GroupResponse)
async def group_route(body: GroupRequest, settings: SettingsDep, heavy: HeavyDep) -> GroupResponse:
    """Group-relative outcome advantages, one per response: GRPO, Dr. GRPO, RLOO,
    REINFORCE++-baseline or GPG (``estimator``)."""
    n = settings.max_tensor_elements

    def run() -> GroupResponse:
        rewards = from_json("rewards", body.rewards, ranks=(1,), max_elements=n)
        ids = int_from_json("group_ids", body.group_ids, max_elements=n)
        lengths = None
        if body.lengths is not None:
            lengths = from_json("lengths", body.lengths, ranks=(1,), max_elements=n)
        adv = group_advantages(
            rewards,
            ids,
            estimator=body.estimator,
            normalize_std=body.normalize_std,
            eps=body.eps,
            lengths=lengths,
        )
        return GroupResponse(advantages=finite_list("advantages", adv), estimator=body.estimator)

    return await compute(heavy, count_elements(body, ("rewards",)), run)


@router.post("/advantages/reinforce-plus-plus", response_model=ReinforcePPResponse)
async def reinforce_pp_route(
    body: ReinforcePPRequest, settings: SettingsDep, heavy: HeavyDep
) -> ReinforcePPResponse:
    """REINFORCE++ (verl): discounted token returns whitened over the batch's tokens; with
    ``group_ids``, the group-baseline form (score minus group mean, whitened)."""
    n = settings.max_tensor_elements

    def run() -> ReinforcePPResponse:
        rewards = req_tensor(body, "token_level_rewards", n, (2,))
        ids = None
        if body.group_ids is not None:
            ids = int_from_json("group_ids", body.group_ids, max_elements=n)
        out = reinforce_plus_plus(
            rewards, opt_tensor(body, "mask", n), gamma=body.gamma, group_ids=ids
        )
        return ReinforcePPResponse(
            advantages=finite_list("advantages", out.advantages),
            returns=finite_list("returns", out.returns),
        )

    return await compute(heavy, count_elements(body, ("token_level_rewards", "mask")), run)


@router.post("/rollout-correction", response_model=RolloutCorrectionResponse)
async def rollout_route(
    body: RolloutCorrectionRequest, settings: SettingsDep, heavy: HeavyDep
) -> RolloutCorrectionResponse:
    """Importance weights between the trainer's (``old_logprobs``) and the inference engine's
    (``rollout_logprobs``) log-probs: token or sequence level, truncated (TIS) or masked
    (MIS / IcePop), with verl's ``rollout_corr/*`` metrics (effective sample size,
    chi-square, mismatch KL k1 / k3, log-perplexity difference, share truncated / masked)."""
    n = settings.max_tensor_elements

    def run() -> RolloutCorrectionResponse:
        c = rollout_correction(
            req_tensor(body, "old_logprobs", n),
            req_tensor(body, "rollout_logprobs", n),
            opt_tensor(body, "mask", n),
            level=body.level,
            mode=body.mode,
            threshold=body.threshold,
            threshold_low=body.threshold_low,
        )
        return RolloutCorrectionResponse(
            weights=finite_list("weights", c.weights),
            kept=c.kept.tolist(),
            metrics={k: finite(k, v) for k, v in c.metrics.items()},
        )

    names = ("old_logprobs", "rollout_logprobs", "mask")
    return await compute(heavy, count_elements(body, names), run)
