"""Token-level views of a rollout batch: what state each token is in, which sequences matter
most, how each ``loss_agg_mode`` weighs the batch, and where gradient accumulation over
micro-batches breaks the normalisation. Pure tensors in, tensors out (the API shapes them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ppo_core.aggregation import LOSS_AGG_MODES, LossAggMode, aggregation_weights, masked_zero

TOKEN_STATES: tuple[str, ...] = (
    "padding",
    "trust_region",
    "clipped_low",
    "clipped_high",
    "dual_clip",
    "rollout_truncated",
    "rollout_masked",
)
"""Codes of :func:`token_states`, by index."""

MAX_VIEW_ROWS = 24
MAX_VIEW_TOKENS = 256


def token_states(
    mask: Tensor,
    ratio: Tensor,
    clipped: Tensor | None,
    dual_clip: Tensor | None,
    *,
    rollout_raw: Tensor | None = None,
    rollout_weights: Tensor | None = None,
) -> Tensor:
    """Per token, the index into :data:`TOKEN_STATES` (``int8``).

    Rule, later ones winning: every valid token starts ``trust_region``; ``rollout_truncated``
    where the rollout weight differs from the raw ratio (TIS cut it); ``clipped_low`` /
    ``clipped_high`` where the policy loss's clip acts, by the objective's ratio below / above
    1; ``dual_clip`` where the dual clip binds; ``rollout_masked`` where a valid token's
    rollout weight is 0 (MIS / IcePop); ``padding`` where ``mask`` is 0.

    Examples:
        >>> import torch
        >>> m, r = torch.tensor([1.0, 1.0, 1.0, 0.0]), torch.tensor([1.0, 1.5, 0.5, 1.0])
        >>> c = torch.tensor([False, True, True, False])
        >>> [TOKEN_STATES[i] for i in token_states(m, r, c, None).tolist()]
        ['trust_region', 'clipped_high', 'clipped_low', 'padding']
    """
    state = torch.ones(mask.shape, dtype=torch.int8, device=mask.device)
    if rollout_raw is not None and rollout_weights is not None:
        state = torch.where(rollout_weights != rollout_raw, 5, state).to(torch.int8)
    if clipped is not None:
        state = torch.where(clipped & (ratio < 1), 2, state).to(torch.int8)
        state = torch.where(clipped & (ratio >= 1), 3, state).to(torch.int8)
    if dual_clip is not None:
        state = torch.where(dual_clip, 4, state).to(torch.int8)
    if rollout_weights is not None:
        state = torch.where((rollout_weights == 0) & (mask > 0), 6, state).to(torch.int8)
    return torch.where(mask > 0, state, 0).to(torch.int8)


@dataclass(frozen=True)
class ViewSelection:
    """Rows (original indices, in the order shown) and the first token of each one's window."""

    rows: Tensor
    starts: Tensor
    width: int


def select_view(
    contribution: Tensor,
    mask: Tensor,
    priority: Tensor | None = None,
    *,
    max_rows: int = MAX_VIEW_ROWS,
    max_tokens: int = MAX_VIEW_TOKENS,
) -> ViewSelection:
    """The sequences that matter most, and in each the window of tokens that matters most.

    Rule: rows flagged in ``priority`` (e.g. holding an extreme log-ratio) come first, then the
    rest by ``sum_t |contribution|`` (the size of their push on the update), largest first, up
    to ``max_rows``. In each row, the ``max_tokens`` consecutive tokens with the largest
    ``sum |contribution|`` (the whole row when it is shorter).

    Examples:
        >>> import torch
        >>> c = torch.tensor([[0.1, 0.1, 0.0], [0.0, 2.0, 3.0]])
        >>> v = select_view(c, torch.ones(2, 3), max_rows=1, max_tokens=2)
        >>> v.rows.tolist(), v.starts.tolist(), v.width
        ([1], [1], 2)
    """
    mag = masked_zero(contribution.abs(), mask)
    mag = torch.nan_to_num(mag, nan=0.0, posinf=0.0)
    score = mag.sum(dim=-1).double()
    if priority is not None:
        score = score + priority.double() * (float(score.max()) + 1.0) * 2
    rows = torch.argsort(score, descending=True, stable=True)[:max_rows]
    width = min(max_tokens, mask.shape[-1])
    if width == mask.shape[-1]:
        starts = torch.zeros_like(rows)
    else:
        csum = torch.nn.functional.pad(mag[rows].double().cumsum(dim=-1), (1, 0))
        window = csum[:, width:] - csum[:, :-width]  # [rows, T - width + 1]
        starts = window.argmax(dim=-1)
    return ViewSelection(rows=rows, starts=starts, width=width)


def gather_view(x: Tensor, view: ViewSelection) -> Tensor:
    """``x[rows, start : start + width]`` for each selected row, ``[rows, width]``."""
    index = view.starts[:, None] + torch.arange(view.width, device=x.device)[None, :]
    return x[view.rows].gather(1, index)


@dataclass(frozen=True)
class AggregationRow:
    """One ``loss_agg_mode`` on a batch: the loss and each sequence's total weight in it."""

    loss: Tensor
    sequence_weight: Tensor


def aggregation_table(
    per_token: Tensor,
    mask: Tensor,
    *,
    loss_scale_factor: float | None = None,
    count_empty_rows: bool = False,
) -> dict[str, AggregationRow]:
    """The same per-token losses under every ``loss_agg_mode``: ``loss = sum(w * l)`` and each
    row's ``sum_t w`` (how much a long vs a short answer counts).

    Examples:
        >>> import torch
        >>> m = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
        >>> t = aggregation_table(torch.ones_like(m), m)
        >>> t["token-mean"].sequence_weight.tolist(), float(t["seq-mean-token-sum"].loss)
        ([0.6666666666666666, 0.3333333333333333], 1.5)
    """
    clean = masked_zero(per_token, mask)
    out = {}
    for mode in LOSS_AGG_MODES:
        w = aggregation_weights(
            mask,
            clean,
            mode,  # type: ignore[arg-type]
            loss_scale_factor=loss_scale_factor,
            count_empty_rows=count_empty_rows,
        )
        out[mode] = AggregationRow(loss=(w * clean).sum(), sequence_weight=w.sum(dim=-1))
    return out


@dataclass(frozen=True)
class MicrobatchRow:
    """Full batch vs ``k`` micro-batches, each normalised on its own and averaged (``1/k``)."""

    loss_full: float
    loss_accumulated: float
    gradient_relative_error: float
    """``||g_acc - g_full|| / ||g_full||`` of ``d loss / d logprobs``."""


def microbatch_check(
    per_token: Tensor,
    logprobs: Tensor,
    mask: Tensor,
    micro_batches: int,
    *,
    loss_scale_factor: float | None = None,
    count_empty_rows: bool = False,
) -> dict[str, MicrobatchRow]:
    """Where gradient accumulation breaks a mode's normalisation.

    The rows are split into ``micro_batches`` contiguous chunks, as trainers do. Accumulated:
    each chunk's loss is aggregated with its own normaliser (its tokens, its rows) and scaled
    by ``1/k``, then summed; full: the mode over the whole batch. ``per_token`` must carry the
    graph to the leaf ``logprobs``; gradients are vector-Jacobian products with each weight
    vector, so any mode's coupling between tokens (e.g. GSPO through the mean) is exact.
    verl 0.9.1 passes the global token / sequence counts to every micro-batch and TRL's
    ``dapo`` divides by ``num_items_in_batch``: both equal the full batch.
    """
    chunks = torch.arange(mask.shape[0], device=mask.device).tensor_split(micro_batches)
    clean = masked_zero(per_token, mask)
    knobs = {"loss_scale_factor": loss_scale_factor, "count_empty_rows": count_empty_rows}
    out = {}
    for mode in LOSS_AGG_MODES:
        agg: LossAggMode = mode  # type: ignore[assignment]
        w_full = aggregation_weights(mask, clean, agg, **knobs)  # type: ignore[arg-type]
        w_acc = torch.zeros_like(w_full)
        for rows in chunks:
            if rows.numel() == 0 or not bool((mask[rows] > 0).any()):
                continue
            w_acc[rows] = (
                aggregation_weights(
                    mask[rows],
                    clean[rows],
                    agg,
                    **knobs,  # type: ignore[arg-type]
                )
                / micro_batches
            )
        (g_full,) = torch.autograd.grad(per_token, logprobs, w_full, retain_graph=True)
        (g_acc,) = torch.autograd.grad(per_token, logprobs, w_acc, retain_graph=True)
        norm = float(g_full.norm())
        error = float((g_acc - g_full).norm()) / norm if norm > 0 else 0.0
        with torch.no_grad():
            out[mode] = MicrobatchRow(
                loss_full=float((w_full * clean).sum()),
                loss_accumulated=float((w_acc * clean).sum()),
                gradient_relative_error=error,
            )
    return out
