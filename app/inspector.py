"""The batch inspector's sections of ``POST /api/v1/analyze``: findings, the token view, the
batch under every aggregation mode, micro-batch accumulation, and every preset's numbers.

The math lives in :mod:`ppo_core.findings` and :mod:`ppo_core.inspector`; this module gathers
their inputs from an analysed batch and shapes bounded, finite JSON (the response stays under
2 MB for any batch size: the token view is at most 24 rows x 256 tokens, the aggregation lists
at most 256 rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from app.results import finite, finite_list
from app.schemas import (
    AggregationModeRow,
    AggregationOut,
    ConventionRowOut,
    ConventionsOut,
    FindingOut,
    MicrobatchModeRow,
    MicrobatchOut,
    TokenViewOut,
)
from ppo_core import PPOInputError
from ppo_core.conventions import CONVENTIONS, Convention
from ppo_core.findings import LOG_RATIO_EXTREME, BatchFacts, batch_findings
from ppo_core.inspector import (
    MAX_VIEW_ROWS,
    MAX_VIEW_TOKENS,
    TOKEN_STATES,
    aggregation_table,
    gather_view,
    microbatch_check,
    select_view,
    token_states,
)
from ppo_core.policy import PolicyLossOutput, sequence_advantages
from ppo_core.rollout import RolloutCorrection, rollout_weights
from ppo_core.total import TotalLossOutput, convention_advantages, convention_policy_loss

MAX_AGGREGATION_ROWS = 256
CONVENTIONS_MAX_ELEMENTS = 65_536
"""Above this many elements the presets are computed on evenly spaced rows (all presets on a
1M-token batch would cost seconds; the sample keeps the section interactive)."""

VIEW_RULE = (
    f"Up to {MAX_VIEW_ROWS} rows: those holding a token with |log r| above the log-ratio clamp "
    f"(or {LOG_RATIO_EXTREME:g}) first, then by the sum of |d loss / d logprob| over their "
    f"tokens, largest first; in each row the {MAX_VIEW_TOKENS} consecutive tokens with the "
    "largest sum of |d loss / d logprob|."
)


@dataclass(frozen=True)
class Inspection:
    findings: list[FindingOut]
    token_view: TokenViewOut
    aggregation: AggregationOut
    microbatch: MicrobatchOut | None
    conventions: ConventionsOut


def _rows(x: Tensor) -> Tensor:
    return x if x.dim() == 2 else x.unsqueeze(0)


def inspect_batch(
    res: TotalLossOutput,
    conv: Convention,
    *,
    logprobs: Tensor,
    old_logprobs: Tensor,
    mask: Tensor | None,
    gradient: Tensor,
    correction: RolloutCorrection | None,
    scores: Tensor | None,
    group_ids: Tensor | None,
    first_epoch: bool,
    micro_batches: int,
    nonfinite: dict[str, int],
    advantages: Tensor,
    rollout_logprobs: Tensor | None,
) -> Inspection:
    """Every inspector section for one analysed batch (``logprobs`` is the autograd leaf the
    total loss was computed from, its graph retained for the micro-batch check)."""
    p = res.policy
    m2 = torch.ones_like(_rows(logprobs.detach())) if mask is None else _rows(mask)
    lr = (logprobs.detach() - old_logprobs).detach()
    limit = LOG_RATIO_EXTREME
    if conv.log_ratio_clamp is not None:
        limit = min(limit, conv.log_ratio_clamp)
    facts = BatchFacts(
        clip_fraction=getattr(p, conv.clip_fraction_metric),
        clip_fraction_name=conv.clip_fraction_metric,
        approx_kl=getattr(p, conv.approx_kl_metric),
        approx_kl_name=conv.approx_kl_metric,
        log_ratio=lr,
        mask=mask,
        log_ratio_clamp=conv.log_ratio_clamp,
        first_epoch=first_epoch,
        group_scores=None if scores is None or group_ids is None else (scores, group_ids),
        rollout_metrics=None if correction is None else correction.metrics,
        explained_variance=res.explained_variance,
        entropy=None if res.entropy is None else float(res.entropy.detach()),
        nonfinite_in_padding=nonfinite or None,
    )
    findings = [
        FindingOut(
            code=f.code,
            severity=f.severity,
            message=f.message,
            value=None if f.value is None else finite(f.code, f.value),
            threshold=f.threshold,
            panel=f.panel,
        )
        for f in batch_findings(facts)
    ]
    priority = ((_rows(lr).abs() > limit) & (m2 > 0)).any(dim=-1)
    view = _token_view(res, conv, m2, gradient, correction, priority)
    aggregation = _aggregation(p.per_token_loss.detach(), m2, conv)
    microbatch = None
    if micro_batches > 1:
        if micro_batches > m2.shape[0]:
            raise PPOInputError(
                "micro_batches",
                f"must be <= the number of rows ({m2.shape[0]}), got {micro_batches}",
            )
        rows = microbatch_check(
            _rows(p.per_token_loss),
            logprobs,
            m2,
            micro_batches,
            loss_scale_factor=conv.loss_scale_factor,
            count_empty_rows=conv.count_empty_rows,
        )
        microbatch = MicrobatchOut(
            micro_batches=micro_batches,
            modes={
                mode: MicrobatchModeRow(
                    loss_full=finite("loss_full", r.loss_full),
                    loss_accumulated=finite("loss_accumulated", r.loss_accumulated),
                    gradient_relative_error=finite(
                        "gradient_relative_error", r.gradient_relative_error
                    ),
                )
                for mode, r in rows.items()
            },
        )
    presets = _conventions(logprobs.detach(), old_logprobs, advantages, mask, rollout_logprobs)
    return Inspection(findings, view, aggregation, microbatch, presets)


def _token_view(
    res: TotalLossOutput,
    conv: Convention,
    m2: Tensor,
    gradient: Tensor,
    correction: RolloutCorrection | None,
    priority: Tensor,
) -> TokenViewOut:
    p = res.policy
    ratio = _rows(p.ratio.detach())
    grad = _rows(gradient)
    clipped = None if p.clipped is None else _rows(p.clipped)
    lower = None if p.clipped_lower is None else _rows(p.clipped_lower)
    dual = lower
    if conv.policy_loss_mode == "geo_mean" and clipped is not None and lower is not None:
        clipped, dual = clipped | lower, None  # GMPO's "lower" is its low-side clip, not dual
    applied = res.rollout
    view = select_view(grad, m2, priority)

    def take(x: Tensor) -> Tensor:
        return gather_view(x, view)

    def maybe(x: Tensor | None) -> Tensor | None:
        return None if x is None else take(_rows(x))

    states = token_states(  # on the shown tokens only
        take(m2),
        take(ratio),
        maybe(clipped),
        maybe(dual),
        rollout_raw=None if applied is None else maybe(applied.raw_weights),
        rollout_weights=None if applied is None else maybe(applied.weights),
    )

    weights = None
    if correction is not None:
        weights = finite_list("rollout_weight", take(_rows(correction.weights)).double())
    return TokenViewOut(
        rule=VIEW_RULE,
        states=list(TOKEN_STATES),
        rows=view.rows.tolist(),
        starts=view.starts.tolist(),
        lengths=m2[view.rows].sum(dim=-1).long().tolist(),
        ratio=finite_list("ratio", take(ratio).double()),
        loss=finite_list("per_token_loss", take(_rows(p.per_token_loss.detach())).double()),
        advantage=finite_list("advantages", take(_rows(res.advantages.detach())).double()),
        gradient=finite_list("logprob_gradient", take(grad).double()),
        mask=take(m2).long().tolist(),
        state=states.tolist(),
        rollout_weight=weights,
    )


def _aggregation(per_token: Tensor, m2: Tensor, conv: Convention) -> AggregationOut:
    lengths = m2.sum(dim=-1)
    rows = torch.argsort(lengths, stable=True)
    if rows.numel() > MAX_AGGREGATION_ROWS:  # spread evenly over the sorted lengths
        pick = torch.linspace(0, rows.numel() - 1, MAX_AGGREGATION_ROWS).round().long()
        rows = rows[pick]
    table = aggregation_table(
        _rows(per_token),
        m2,
        loss_scale_factor=conv.loss_scale_factor,
        count_empty_rows=conv.count_empty_rows,
    )
    return AggregationOut(
        rows=rows.tolist(),
        lengths=lengths[rows].long().tolist(),
        modes={
            mode: AggregationModeRow(
                loss=None if conv.policy_loss_mode == "geo_mean" else finite("loss", float(r.loss)),
                sequence_weight=finite_list("sequence_weight", r.sequence_weight[rows].double()),
            )
            for mode, r in table.items()
        },
    )


def _policy_key(c: Convention) -> tuple[object, ...]:
    """The knobs that decide a preset's policy loss and logged diagnostics."""
    return (
        c.policy_loss_mode, c.clip_ratio, c.clip_ratio_low, c.clip_ratio_high, c.dual_clip,
        c.log_ratio_clamp, c.loss_agg_mode, c.loss_scale_factor, c.count_empty_rows,
        c.sapo_tau_pos, c.sapo_tau_neg, c.cispo_clip, c.gspo_stop_gradient,
        c.gspo_log_ratio_max, c.advantage_norm, c.approx_kl_clamped, c.rollout_is_level,
        c.rollout_is_mode, c.rollout_is_threshold, c.rollout_is_threshold_low,
    )  # fmt: skip


def _conventions(
    lp: Tensor,
    old: Tensor,
    advantages: Tensor,
    mask: Tensor | None,
    rollout: Tensor | None,
) -> ConventionsOut:
    """Each preset's policy loss and the clip fraction / approx KL it would log, on this batch
    (forward only; presets with the same policy knobs are computed once; on evenly spaced rows
    when the batch has over :data:`CONVENTIONS_MAX_ELEMENTS` elements)."""
    advantages = sequence_advantages(advantages, lp)
    if mask is not None:
        mask = mask > 0  # a bool mask skips the 0/1 check in each preset's call
    total_rows = lp.shape[0] if lp.dim() == 2 else 1
    if lp.dim() == 2 and lp.numel() > CONVENTIONS_MAX_ELEMENTS:
        keep = max(1, CONVENTIONS_MAX_ELEMENTS // lp.shape[1])
        candidates = torch.arange(total_rows)
        if mask is not None:  # rows with a valid token (the mask selects at least one)
            candidates = (mask.sum(dim=-1) > 0).nonzero().squeeze(-1)
        n = min(keep, candidates.numel())
        rows = candidates[torch.linspace(0, candidates.numel() - 1, n).round().long()]
        lp, old, advantages = lp[rows], old[rows], advantages[rows]
        mask = None if mask is None else mask[rows]
        rollout = None if rollout is None else rollout[rows]
    out = []
    done: dict[tuple[object, ...], PolicyLossOutput] = {}
    with torch.no_grad():
        for c in CONVENTIONS.values():
            key = _policy_key(c)
            if key not in done:
                weights = None
                if rollout is not None and c.rollout_is_level is not None:
                    weights, _, _ = rollout_weights(old, rollout, mask, **c.rollout_knobs())
                adv = convention_advantages(advantages, mask, c)
                done[key] = convention_policy_loss(
                    lp, old, adv, mask, c, rollout_is_weights=weights
                )
            res = done[key]
            out.append(
                ConventionRowOut(
                    name=c.name,
                    library=c.library,
                    policy_loss_mode=c.policy_loss_mode,
                    loss=finite("loss", float(res.loss)),
                    clip_fraction_as_logged=getattr(res, c.clip_fraction_metric),
                    approx_kl_as_logged=finite("approx_kl", getattr(res, c.approx_kl_metric)),
                    clip_fraction_metric=c.clip_fraction_metric,
                    approx_kl_metric=c.approx_kl_metric,
                )
            )
    used = lp.shape[0] if lp.dim() == 2 else 1
    return ConventionsOut(rows_used=used, rows_total=total_rows, presets=out)
