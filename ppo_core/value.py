"""Value-function loss, optionally clipped around the rollout's value predictions.

Two clipping conventions exist, with
:math:`V^{clip} = V_{old} + \\mathrm{clip}(V - V_{old}, -c, c)`:

* ``max`` (PPO2 baselines, CleanRL, verl, OpenRLHF, TRL, the seed):
  :math:`\\ell = s \\cdot \\max\\big((V - R)^2, (V^{clip} - R)^2\\big)`
* ``clipped`` (Stable-Baselines3 ``clip_range_vf``): :math:`\\ell = s \\cdot (V^{clip} - R)^2`

with scale :math:`s` (1.0 in the seed and SB3, 0.5 in CleanRL, verl, OpenRLHF, TRL). Without
clipping both are :math:`s (V - R)^2`. A loss: minimise it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from ppo_core._checks import (
    PPOInputError,
    broadcast,
    check_nonnegative,
    check_positive,
    check_same_shape,
    prepare_mask,
)
from ppo_core.aggregation import LossAggMode, aggregate, check_loss_agg_mode, masked_mean

ValueClipMode = Literal["max", "clipped"]
VALUE_CLIP_MODES: tuple[str, ...] = get_args(ValueClipMode)


@dataclass(frozen=True)
class ValueLossOutput:
    """Result of :func:`value_loss`."""

    loss: Tensor
    per_token_loss: Tensor
    clip_fraction: float
    """``max`` mode: share of valid tokens where the clipped error is the larger (verl
    ``vf_clipfrac``). ``clipped`` mode: share where clipping moved the prediction. 0 without
    clipping."""


def value_loss(
    values: Tensor,
    returns: Tensor,
    old_values: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    clip_range: float | None = None,
    mode: ValueClipMode = "max",
    scale: float = 1.0,
    loss_agg_mode: LossAggMode = "token-mean",
) -> ValueLossOutput:
    """Squared-error value loss, clipped per ``mode`` when ``clip_range`` is set.

    Formula (``mode="max"``): ``s * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)``;
    (``mode="clipped"``): ``s * (V_old + clip(V - V_old, -c, c) - R)^2``; (no clip range):
    ``s * (V - R)^2``. ``c`` is absolute (in units of return), not relative.

    Args:
        values: Current value predictions, ``[T]`` or ``[B, T]``.
        returns: Targets (same shape).
        old_values: Predictions at rollout time; required when ``clip_range`` is set.
        mask: Optional 0/1 mask of valid tokens.
        clip_range: Absolute clip ``c > 0``, or ``None`` for no clipping.
        mode: ``"max"`` or ``"clipped"`` (see module docstring).
        scale: Multiplier ``s >= 0`` (0.5 in CleanRL / verl / TRL, 1.0 in the seed / SB3).
        loss_agg_mode: Reduction (see :mod:`ppo_core.aggregation`).

    Returns:
        A :class:`ValueLossOutput`.

    Examples:
        >>> import torch
        >>> v, r, old = torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([1.0])
        >>> value_loss(v, r, old, clip_range=0.5, mode="max").loss  # max(4, 1.5^2)
        tensor(4.)
        >>> value_loss(v, r, old, clip_range=0.5, mode="clipped").loss  # 1.5^2
        tensor(2.2500)
    """
    check_same_shape("values", values, returns=returns, old_values=old_values)
    check_loss_agg_mode(loss_agg_mode)
    if mode not in VALUE_CLIP_MODES:
        raise PPOInputError(
            "mode", f"unknown mode {mode!r}; expected one of {list(VALUE_CLIP_MODES)}"
        )
    check_nonnegative("scale", scale)
    m = prepare_mask(mask, values)

    clip_fraction = 0.0
    if clip_range is None:
        per_token = (values - returns) ** 2
    else:
        check_positive("clip_range", clip_range)
        if old_values is None:
            raise PPOInputError("old_values", "required when clip_range is set")
        clipped_values = old_values + (values - old_values).clamp(-clip_range, clip_range)
        err_clipped = (clipped_values - returns) ** 2
        if mode == "max":
            err_unclipped = (values - returns) ** 2
            per_token = torch.maximum(err_unclipped, err_clipped)
            taken = err_clipped > err_unclipped
        else:
            per_token = err_clipped
            taken = (values - old_values).abs() > clip_range
        with torch.no_grad():
            clip_fraction = float(masked_mean(taken.to(values.dtype), m))
    if scale != 1.0:
        per_token = scale * per_token
    return ValueLossOutput(
        loss=aggregate(per_token, m, loss_agg_mode),
        per_token_loss=per_token,
        clip_fraction=clip_fraction,
    )


def compute_value_loss(
    values: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor | None = None,
    clip_value: bool = True,
    clip_ratio: float = 0.2,
) -> torch.Tensor:
    """The seed tutorial's value loss (same name, signature and numbers).

    Formula: ``mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))`` when
    ``clip_value`` and ``old_values`` is given, else ``F.mse_loss(V, R)``. A loss.

    Examples:
        >>> import torch
        >>> compute_value_loss(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([1.0]))
        tensor(4.)
    """
    if clip_value and old_values is not None:
        values, returns, old_values = broadcast(values, returns, old_values)
        return value_loss(values, returns, old_values, clip_range=clip_ratio, mode="max").loss
    return F.mse_loss(values, returns)
