"""A convention's rollout correction of a request's log-probs, and its response shape."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from app.results import finite
from app.schemas import RolloutCorrectionOut
from ppo_core import Convention
from ppo_core.rollout import RolloutCorrection, rollout_correction


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
    correction = rollout_correction(old, rollout, mask, **c.rollout_knobs())
    return AppliedCorrection(correction, c.rollout_is_level is not None, c)
