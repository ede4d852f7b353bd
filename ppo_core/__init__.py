"""ppo_core: the PPO loss in pure torch — the seed tutorial's functions and their variants.

The seed's four functions keep their names, signatures and numbers:
:func:`compute_ppo_loss`, :func:`compute_value_loss`, :func:`compute_entropy`,
:func:`compute_ppo_total_loss`. Everything else generalises them (masks, aggregation modes,
asymmetric and dual clip, value clip modes, KL estimators, advantages, convention presets).
No web or I/O code lives here.
"""

from ppo_core._checks import PPOInputError
from ppo_core.advantages import gae, group_advantages, normalize_advantages, whiten
from ppo_core.aggregation import LOSS_AGG_MODES, aggregate, masked_mean
from ppo_core.conventions import CONVENTIONS, Convention, get_convention
from ppo_core.curves import clip_objective_curve, value_loss_curve
from ppo_core.diagnostics import explained_variance, histogram
from ppo_core.entropy import (
    compute_entropy,
    entropy_comparison,
    entropy_from_logits,
    entropy_vs_temperature,
)
from ppo_core.kl import (
    AdaptiveKLController,
    FixedKLController,
    kl_estimate,
    kl_estimator_drift,
    kl_per_token,
)
from ppo_core.lab import LabConfig, iterate_lab, run_lab
from ppo_core.policy import compute_ppo_loss, policy_loss
from ppo_core.total import (
    compute_advantages,
    compute_ppo_total_loss,
    ppo_total_loss,
    seed_example_batch,
)
from ppo_core.value import compute_value_loss, value_loss

__all__ = [
    "CONVENTIONS",
    "LOSS_AGG_MODES",
    "AdaptiveKLController",
    "Convention",
    "FixedKLController",
    "LabConfig",
    "PPOInputError",
    "aggregate",
    "clip_objective_curve",
    "compute_advantages",
    "compute_entropy",
    "compute_ppo_loss",
    "compute_ppo_total_loss",
    "compute_value_loss",
    "entropy_comparison",
    "entropy_from_logits",
    "entropy_vs_temperature",
    "explained_variance",
    "gae",
    "get_convention",
    "group_advantages",
    "histogram",
    "iterate_lab",
    "kl_estimate",
    "kl_estimator_drift",
    "kl_per_token",
    "masked_mean",
    "normalize_advantages",
    "policy_loss",
    "ppo_total_loss",
    "run_lab",
    "seed_example_batch",
    "value_loss",
    "value_loss_curve",
    "whiten",
]
