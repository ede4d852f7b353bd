"""Convention presets: every knob of the PPO loss as a library sets it by default.

Libraries disagree on details; a preset makes this library's numbers match a trainer's logs.
Each record lists the choice and its source. Defaults were read from these sources:

* ``seed``: the tutorial's ``compute_ppo_total_loss`` (plain means, unclipped MSE value loss).
* ``cleanrl``: ``cleanrl/ppo.py`` (``clip_coef=0.2``, ``clip_vloss=True``, ``vf_coef=0.5``,
  ``ent_coef=0.01``, ``norm_adv=True``; ``v_loss = 0.5 * max(...).mean()``).
* ``sb3``: ``stable_baselines3/ppo/ppo.py`` (``clip_range=0.2``, ``clip_range_vf=None``,
  ``ent_coef=0.0``, ``vf_coef=0.5``, ``normalize_advantage=True``, ``F.mse_loss``).
* ``verl``: ``verl/trainer/ppo/core_algos.py`` and its actor / critic configs (``clip_ratio=0.2``,
  ``clip_ratio_c=3.0``, log-ratio clamped to ±20, ``loss_agg_mode=token-mean``,
  ``entropy_coeff=0``, ``cliprange_value=0.5``, value loss ``0.5 * max``, GAE with
  ``gamma=lam=1`` and whitened advantages, fixed in-reward KL 0.001 with k1).
* ``openrlhf``: ``openrlhf/models/loss.py`` and ``train_ppo_ray.py`` (``eps_clip=0.2``, no dual
  clip, token-level loss, ``value_clip=0.5``, value loss ``0.5 * max``, no entropy,
  ``init_kl_coef=0.01`` in the reward with k1, ``gamma=lambd=1``, normalised advantages).
* ``trl``: ``trl/trainer/ppo_trainer.py`` / ``ppo_config.py`` (``cliprange=0.2``,
  ``cliprange_value=0.2``, ``vf_coef=0.1``, value loss ``0.5 * max``, no entropy term,
  ``kl_coef=0.05`` in the reward with k1, ``gamma=1``, ``lam=0.95``, whitened advantages;
  its ``approxkl`` is k2).

verl and OpenRLHF train the critic with its own optimiser, so they have no ``vf_coef``; their
presets use ``vf_coef = 1.0`` so that the "total" is actor loss + critic loss, each as logged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from ppo_core._checks import PPOInputError
from ppo_core.aggregation import LossAggMode
from ppo_core.kl import KLEstimator
from ppo_core.value import ValueClipMode

AdvantageNorm = Literal["none", "minibatch", "whiten"]
KLPlacement = Literal["none", "reward", "loss"]
ClipFractionMetric = Literal["clip_fraction", "ratio_outside_fraction"]
ApproxKLMetric = Literal["approx_kl", "approx_kl_k2", "approx_kl_k3"]


@dataclass(frozen=True)
class Convention:
    """Every knob of the PPO loss, frozen. Override one with :meth:`with_overrides`."""

    name: str
    library: str
    source: str
    clip_ratio: float = 0.2
    clip_ratio_low: float | None = None
    clip_ratio_high: float | None = None
    dual_clip: float | None = None
    log_ratio_clamp: float | None = None
    loss_agg_mode: LossAggMode = "token-mean"
    value_mode: ValueClipMode = "max"
    value_clip_range: float | None = None
    value_scale: float = 1.0
    vf_coef: float = 0.5
    entropy_coef: float = 0.01
    advantage_norm: AdvantageNorm = "none"
    gamma: float = 0.99
    lam: float = 0.95
    kl_coef: float = 0.0
    kl_estimator: KLEstimator = "k1"
    kl_placement: KLPlacement = "none"
    clip_fraction_metric: ClipFractionMetric = "clip_fraction"
    approx_kl_metric: ApproxKLMetric = "approx_kl"
    notes: str = ""

    def with_overrides(self, **overrides: Any) -> Convention:
        """A copy with some knobs changed; unknown names raise :class:`PPOInputError`."""
        known = set(asdict(self))
        for key in overrides:
            if key not in known:
                raise PPOInputError(key, f"not a convention knob; expected one of {sorted(known)}")
        return replace(self, **overrides)

    def formula(self) -> str:
        """The total loss this convention implies, as one line of text."""
        lo = self.clip_ratio if self.clip_ratio_low is None else self.clip_ratio_low
        hi = self.clip_ratio if self.clip_ratio_high is None else self.clip_ratio_high
        policy = f"max(-A·r, -A·clip(r, {1 - lo:g}, {1 + hi:g}))"
        if self.dual_clip is not None:
            policy = f"[A<0: min({policy}, -{self.dual_clip:g}·A)]"
        if self.log_ratio_clamp is not None:
            policy += f", r = exp(clamp(log r, ±{self.log_ratio_clamp:g}))"
        if self.value_clip_range is None:
            value = "(V-R)²"
        elif self.value_mode == "max":
            value = f"max((V-R)², (V_old+clip(V-V_old, ±{self.value_clip_range:g})-R)²)"
        else:
            value = f"(V_old+clip(V-V_old, ±{self.value_clip_range:g})-R)²"
        scale = "" if self.value_scale == 1.0 else f"{self.value_scale:g}·"
        text = (
            f"L = {self.loss_agg_mode}[{policy}] + {self.vf_coef:g}·{scale}"
            f"{self.loss_agg_mode}[{value}] - {self.entropy_coef:g}·H"
        )
        if self.kl_placement == "loss":
            text += f" + {self.kl_coef:g}·KL_{self.kl_estimator}"
        return text


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            name="seed",
            library="the tutorial (seed)",
            source="shared/seed: compute_ppo_total_loss",
            notes="Value loss unclipped in the total (clip_value=False); plain means.",
        ),
        Convention(
            name="cleanrl",
            library="CleanRL",
            source="cleanrl/ppo.py",
            value_clip_range=0.2,
            value_scale=0.5,
            advantage_norm="minibatch",
            clip_fraction_metric="ratio_outside_fraction",
            approx_kl_metric="approx_kl_k3",
            notes="Value clipped with the policy's clip_coef; logs old_approx_kl (k1) as well.",
        ),
        Convention(
            name="sb3",
            library="Stable-Baselines3",
            source="stable_baselines3/ppo/ppo.py",
            value_mode="clipped",
            entropy_coef=0.0,
            advantage_norm="minibatch",
            clip_fraction_metric="ratio_outside_fraction",
            approx_kl_metric="approx_kl_k3",
            notes="clip_range_vf=None by default; when set, only the clipped prediction counts.",
        ),
        Convention(
            name="verl",
            library="verl",
            source="verl/trainer/ppo/core_algos.py, actor.yaml, critic.yaml",
            dual_clip=3.0,
            log_ratio_clamp=20.0,
            value_clip_range=0.5,
            value_scale=0.5,
            vf_coef=1.0,
            entropy_coef=0.0,
            advantage_norm="whiten",
            gamma=1.0,
            lam=1.0,
            kl_coef=0.001,
            kl_placement="reward",
            notes="Separate critic (vf_coef shown as 1); KL in the reward by default.",
        ),
        Convention(
            name="openrlhf",
            library="OpenRLHF",
            source="openrlhf/models/loss.py, cli/train_ppo_ray.py",
            value_clip_range=0.5,
            value_scale=0.5,
            vf_coef=1.0,
            entropy_coef=0.0,
            advantage_norm="whiten",
            gamma=1.0,
            lam=1.0,
            kl_coef=0.01,
            kl_placement="reward",
            notes="Separate critic (vf_coef shown as 1); KL in the reward; no entropy term.",
        ),
        Convention(
            name="trl",
            library="TRL",
            source="trl/trainer/ppo_trainer.py, ppo_config.py",
            value_clip_range=0.2,
            value_scale=0.5,
            vf_coef=0.1,
            entropy_coef=0.0,
            advantage_norm="whiten",
            gamma=1.0,
            lam=0.95,
            kl_coef=0.05,
            kl_placement="reward",
            approx_kl_metric="approx_kl_k2",
            notes="Entropy is logged, not in the loss; approxkl = 0.5·mean(Δlogp²) (k2).",
        ),
    )
}


def get_convention(name: str) -> Convention:
    """Look a preset up by name.

    Examples:
        >>> get_convention("cleanrl").value_scale
        0.5
    """
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise PPOInputError(
            "convention", f"unknown convention {name!r}; expected one of {list(CONVENTIONS)}"
        ) from None
