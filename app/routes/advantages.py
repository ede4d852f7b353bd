"""Advantage estimators on the caller's rewards."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.schemas import GAERequest, GAEResponse, GroupRequest, GroupResponse
from app.services import compute, count_elements, finite_list, limits, opt_tensor, req_tensor
from app.tensors import from_json, int_from_json
from ppo_core import gae, group_advantages, whiten

router = APIRouter(prefix="/api/v1/advantages", tags=["advantages"])


@router.post("/gae", response_model=GAEResponse)
async def gae_route(body: GAERequest, request: Request) -> GAEResponse:
    """GAE advantages and returns (``returns = advantages + values``, before whitening)."""
    n = limits(request).max_tensor_elements

    def run() -> GAEResponse:
        mask = opt_tensor(body, "mask", n)
        out = gae(
            req_tensor(body, "rewards", n),
            req_tensor(body, "values", n),
            mask,
            gamma=body.gamma,
            lam=body.lam,
        )
        adv = whiten(out.advantages, mask) if body.whiten else out.advantages
        return GAEResponse(
            advantages=finite_list("advantages", adv),
            returns=finite_list("returns", out.returns),
        )

    return await compute(request, count_elements(body, ("rewards", "values", "mask")), run)


@router.post("/group", response_model=GroupResponse)
async def group_route(body: GroupRequest, request: Request) -> GroupResponse:
    """Group-relative (GRPO) advantages, one per response."""
    n = limits(request).max_tensor_elements

    def run() -> GroupResponse:
        rewards = from_json("rewards", body.rewards, ranks=(1,), max_elements=n)
        ids = int_from_json("group_ids", body.group_ids, max_elements=n)
        adv = group_advantages(rewards, ids, normalize_std=body.normalize_std, eps=body.eps)
        return GroupResponse(advantages=finite_list("advantages", adv))

    return await compute(request, count_elements(body, ("rewards",)), run)
