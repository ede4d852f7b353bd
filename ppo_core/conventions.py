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

``<library>-<loss type>`` presets set the GRPO-era objective of each loss type a library offers,
read from verl 0.9.1 (``verl/trainer/ppo/core_algos.py``, ``verl/workers/config/actor.py``,
its ``recipe`` / ``examples`` scripts), TRL 1.16.0 (``trl/trainer/grpo_trainer.py``,
``grpo_config.py``) and OpenRLHF 0.11.2 (``openrlhf/models/loss.py``,
``trainer/ppo_utils/experience_maker.py``, ``cli/train_ppo_ray.py``); each record's ``source``
and ``notes`` say which file and which choice. Under such a preset every knob keeps the meaning
that library gives it (e.g. under ``trl-cispo`` ``clip_ratio_high`` is TRL's absolute cap).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from ppo_core._checks import PPOInputError
from ppo_core.aggregation import LossAggMode
from ppo_core.kl import KLClamp, KLEstimator
from ppo_core.policy import CispoClip, PolicyLossMode
from ppo_core.rollout import RolloutISLevel, RolloutISMode
from ppo_core.value import ValueClipMode

AdvantageNorm = Literal["none", "minibatch", "whiten"]
AdvantageEstimator = Literal[
    "gae", "grpo", "dr_grpo", "rloo", "reinforce_plus_plus", "reinforce_plus_plus_baseline", "gpg"
]
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
    policy_loss_mode: PolicyLossMode = "vanilla"
    loss_scale_factor: float | None = None
    count_empty_rows: bool = False
    sapo_tau_pos: float = 1.0
    sapo_tau_neg: float = 1.05
    cispo_clip: CispoClip = "band"
    gspo_stop_gradient: bool = True
    gspo_log_ratio_max: float | None = None
    advantage_estimator: AdvantageEstimator = "gae"
    group_std_eps: float = 1e-6
    kl_clamp: KLClamp = "none"
    rollout_is_level: RolloutISLevel | None = None
    rollout_is_mode: RolloutISMode = "truncate"
    rollout_is_threshold: float = 2.0
    rollout_is_threshold_low: float | None = None
    approx_kl_clamped: bool = True
    notes: str = ""

    def with_overrides(self, **overrides: Any) -> Convention:
        """A copy with some knobs changed; unknown names raise :class:`PPOInputError`."""
        known = set(asdict(self))
        for key in overrides:
            if key not in known:
                raise PPOInputError(key, f"not a convention knob; expected one of {sorted(known)}")
        return replace(self, **overrides)

    def rollout_knobs(self) -> dict[str, Any]:
        """The rollout-correction keyword arguments of :func:`ppo_core.rollout.rollout_correction`
        and :func:`~ppo_core.rollout.rollout_weights` (token level when unset)."""
        return {
            "level": self.rollout_is_level or "token",
            "mode": self.rollout_is_mode,
            "threshold": self.rollout_is_threshold,
            "threshold_low": self.rollout_is_threshold_low,
        }

    def policy_formula(self) -> str:
        """The per-token policy loss this convention selects, as one line of text."""
        lo = self.clip_ratio if self.clip_ratio_low is None else self.clip_ratio_low
        hi = self.clip_ratio if self.clip_ratio_high is None else self.clip_ratio_high
        mode = self.policy_loss_mode
        if mode in ("vanilla", "gspo"):
            x = "r" if mode == "vanilla" else "s"
            policy = f"max(-A·{x}, -A·clip({x}, {1 - lo:g}, {1 + hi:g}))"
            if self.dual_clip is not None:
                policy = f"[A<0: min({policy}, -{self.dual_clip:g}·A)]"
            if mode == "gspo":
                cap = "" if self.gspo_log_ratio_max is None else f" ≤ {self.gspo_log_ratio_max:g}"
                grad = "log π - sg(log π) + sg(·)" if self.gspo_stop_gradient else "through mean"
                policy += f", log s = mean_t(log r){cap} [{grad}]"
        elif mode == "cispo":
            w = (
                f"clip(r, {1 - lo:g}, {1 + hi:g})"
                if self.cispo_clip == "band"
                else f"min(r, {hi:g})"
            )
            policy = f"-sg({w})·A·log π"
        elif mode == "sapo":
            policy = f"-(4/τ)·σ(τ(r-1))·A, τ = {self.sapo_tau_pos:g} (A>0) | {self.sapo_tau_neg:g}"
        elif mode == "gpg":
            policy = "-A·log π"
        else:
            clipped = f"clip(log r, -{lo:g}, {hi:g})"
            policy = f"-mean_rows[Ā·exp(mean_t sgn(A)·min(sgn(A)·log r, sgn(A)·{clipped}))]"
        if self.log_ratio_clamp is not None and mode != "gpg":
            policy += f", r = exp(clamp(log r, ±{self.log_ratio_clamp:g}))"
        if self.rollout_is_level is not None:
            op = "min" if self.rollout_is_mode == "truncate" else "mask"
            policy += (
                f", × w_rollout ({self.rollout_is_level} {op} at {self.rollout_is_threshold:g})"
            )
        return policy

    def aggregation_formula(self) -> str:
        """The reduction name with its ``L`` and empty-row rule when they matter."""
        agg: str = self.loss_agg_mode
        if agg == "seq-mean-token-sum-norm":
            agg += f"(L={'T' if self.loss_scale_factor is None else f'{self.loss_scale_factor:g}'})"
        if self.count_empty_rows and agg.startswith("seq-"):
            agg += "(all rows)"
        return agg

    def formula(self) -> str:
        """The total loss this convention implies, as one line of text."""
        policy = self.policy_formula()
        agg = self.aggregation_formula()
        policy_term = policy if self.policy_loss_mode == "geo_mean" else f"{agg}[{policy}]"
        if self.value_clip_range is None:
            value = "(V-R)²"
        elif self.value_mode == "max":
            value = f"max((V-R)², (V_old+clip(V-V_old, ±{self.value_clip_range:g})-R)²)"
        else:
            value = f"(V_old+clip(V-V_old, ±{self.value_clip_range:g})-R)²"
        scale = "" if self.value_scale == 1.0 else f"{self.value_scale:g}·"
        text = (
            f"L = {policy_term} + {self.vf_coef:g}·{scale}{agg}[{value}] - {self.entropy_coef:g}·H"
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
            source="the tutorial's compute_ppo_total_loss (ppo_core.compute_ppo_total_loss)",
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
            kl_clamp="verl",
            notes="Separate critic (vf_coef shown as 1); KL in the reward by default.",
        ),
        Convention(
            name="openrlhf",
            library="OpenRLHF",
            source="openrlhf/models/loss.py, cli/train_ppo_ray.py",
            log_ratio_clamp=20.0,
            approx_kl_clamped=False,
            value_clip_range=0.5,
            value_scale=0.5,
            vf_coef=1.0,
            entropy_coef=0.0,
            advantage_norm="whiten",
            gamma=1.0,
            lam=1.0,
            kl_coef=0.01,
            kl_placement="reward",
            kl_clamp="openrlhf",
            notes="Separate critic (vf_coef shown as 1); KL in the reward; no entropy term; "
            "log-ratio clamped to ±20 before exp (loss.py L186-188), every KL estimate to ±10.",
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


_VERL = "verl/trainer/ppo/core_algos.py, verl/workers/config/actor.py"
_TRL = "trl/trainer/grpo_trainer.py::_compute_loss, trl/trainer/grpo_config.py"
_OPENRLHF = "openrlhf/models/loss.py, trainer/ppo_utils/experience_maker.py"

# verl's actor defaults for the GRPO family: dual clip c = 3 (always on), log-ratio clamped to
# ±20 in vanilla / sapo / cispo, token-mean, no entropy, no critic (outcome advantages).
_VERL_FAMILY: dict[str, Any] = {
    "library": "verl",
    "dual_clip": 3.0,
    "log_ratio_clamp": 20.0,
    "vf_coef": 0.0,
    "entropy_coef": 0.0,
    "gamma": 1.0,
    "lam": 1.0,
    "advantage_estimator": "grpo",
    "group_std_eps": 1e-6,
    "kl_clamp": "verl",
}
# TRL GRPOTrainer defaults: eps 0.2 both sides (epsilon_high=None), no log-ratio clamp, no dual
# clip, beta = 0 (no KL), group std + 1e-4, empty rows counted in sequence means, vLLM IS
# correction on by default in sequence_mask mode with clip_max = 3 (clip_min None).
_TRL_FAMILY: dict[str, Any] = {
    "library": "TRL",
    "vf_coef": 0.0,
    "entropy_coef": 0.0,
    "gamma": 1.0,
    "lam": 1.0,
    "advantage_estimator": "grpo",
    "group_std_eps": 1e-4,
    "count_empty_rows": True,
    "rollout_is_level": "sequence",
    "rollout_is_mode": "mask",
    "rollout_is_threshold": 3.0,
    "rollout_is_threshold_low": 0.0,
}
# OpenRLHF PolicyLoss defaults: eps 0.2, no dual clip, ratio from clamp(log r, ±20) (ppo),
# token-level loss, group std + 1e-9, every KL estimate clamped to ±10.
_OPENRLHF_FAMILY: dict[str, Any] = {
    "library": "OpenRLHF",
    "log_ratio_clamp": 20.0,
    "approx_kl_clamped": False,
    "vf_coef": 0.0,
    "entropy_coef": 0.0,
    "gamma": 1.0,
    "lam": 1.0,
    "group_std_eps": 1e-9,
    "kl_clamp": "openrlhf",
}


def _family(base: dict[str, Any], name: str, source: str, notes: str, **knobs: Any) -> Convention:
    return Convention(name=name, source=source, notes=notes, **{**base, **knobs})


_FAMILY_PRESETS = (
    _family(
        _VERL_FAMILY,
        "verl-grpo",
        _VERL + ", examples/grpo_trainer",
        "adv_estimator=grpo (std + 1e-6), vanilla loss, actor.use_kl_loss with low_var_kl "
        "(k3, verl clamps) 0.001 in the loss.",
        kl_coef=0.001,
        kl_estimator="k3",
        kl_placement="loss",
    ),
    _family(
        _VERL_FAMILY,
        "verl-dr_grpo",
        _VERL + ", docs/algo/drgrpo",
        "norm_adv_by_std_in_grpo=False, loss_agg_mode=seq-mean-token-sum-norm (÷ rows ÷ "
        "loss_scale_factor, default the padded length), no KL loss.",
        advantage_estimator="dr_grpo",
        loss_agg_mode="seq-mean-token-sum-norm",
    ),
    _family(
        _VERL_FAMILY,
        "verl-dapo",
        _VERL + ", recipe/dapo",
        "clip_ratio_low 0.2, clip_ratio_high 0.28, clip_ratio_c 10, token-mean, no KL.",
        clip_ratio_low=0.2,
        clip_ratio_high=0.28,
        dual_clip=10.0,
    ),
    _family(
        _VERL_FAMILY,
        "verl-gspo",
        _VERL + " L1546-1619, recipe/gspo",
        "GSPO-token (stop-gradient form), log s ≤ 10, no ±20 clamp, no dual clip, eps 3e-4 / "
        "4e-4, seq-mean-token-mean.",
        policy_loss_mode="gspo",
        clip_ratio_low=3e-4,
        clip_ratio_high=4e-4,
        dual_clip=None,
        log_ratio_clamp=None,
        gspo_log_ratio_max=10.0,
        loss_agg_mode="seq-mean-token-mean",
    ),
    _family(
        _VERL_FAMILY,
        "verl-sapo",
        _VERL + " L1623-1704",
        "tau_pos 1.0, tau_neg 1.05; verl always aggregates SAPO by seq-mean-token-mean "
        "(loss_agg_mode ignored), set here.",
        policy_loss_mode="sapo",
        loss_agg_mode="seq-mean-token-mean",
        dual_clip=None,
    ),
    _family(
        _VERL_FAMILY,
        "verl-cispo",
        _VERL + " L2048-2105",
        "weight sg(clip(r, 1-eps_low, 1+eps_high)), two-sided, ActorConfig's 0.2 / 0.2.",
        policy_loss_mode="cispo",
        dual_clip=None,
    ),
    _family(
        _VERL_FAMILY,
        "verl-gpg",
        _VERL + " L1708-1740, L771-830",
        "loss -A·log π; adv_estimator=gpg (alpha = B / #nonzero scores).",
        policy_loss_mode="gpg",
        advantage_estimator="gpg",
        dual_clip=None,
        log_ratio_clamp=None,
    ),
    _family(
        _VERL_FAMILY,
        "verl-geo_mean",
        _VERL + " L1929-2011, examples/gmpo_trainer",
        "GMPO: log-space clip ±0.4, geometric mean per sequence, mean over rows.",
        policy_loss_mode="geo_mean",
        clip_ratio=0.4,
        dual_clip=None,
        log_ratio_clamp=None,
    ),
    _family(
        _VERL_FAMILY,
        "verl-rloo",
        _VERL + " L588-636",
        "adv_estimator=rloo (leave-one-out baseline), vanilla loss.",
        advantage_estimator="rloo",
    ),
    _family(
        _VERL_FAMILY,
        "verl-reinforce_plus_plus",
        _VERL + " L694-731",
        "adv_estimator=reinforce_plus_plus: discounted token returns (gamma 1), whitened.",
        advantage_estimator="reinforce_plus_plus",
    ),
    _family(
        _VERL_FAMILY,
        "verl-reinforce_plus_plus_baseline",
        _VERL + " L536-584",
        "score minus group mean, whitened over tokens.",
        advantage_estimator="reinforce_plus_plus_baseline",
    ),
    _family(
        _TRL_FAMILY,
        "trl-grpo",
        _TRL + " L3152-3184",
        "loss_type=grpo: per-sequence token mean, mean over all rows.",
        loss_agg_mode="seq-mean-token-mean",
    ),
    _family(
        _TRL_FAMILY,
        "trl-bnpo",
        _TRL,
        "loss_type=bnpo: token mean over the batch.",
        loss_agg_mode="token-mean",
    ),
    _family(
        _TRL_FAMILY,
        "trl-dr_grpo",
        _TRL,
        "loss_type=dr_grpo: sum / (B · max_completion_length = 512); advantages keep TRL's "
        "default scale_rewards='group' (the paper uses 'none': estimator dr_grpo).",
        loss_agg_mode="seq-mean-token-sum-norm",
        loss_scale_factor=512.0,
    ),
    _family(
        _TRL_FAMILY,
        "trl-dapo",
        _TRL + ", grpo_config.py L801",
        "loss_type=dapo (TRL's default): token mean over the global batch; epsilon_high "
        "defaults to epsilon (0.2; the DAPO paper uses 0.28).",
        loss_agg_mode="token-mean",
    ),
    _family(
        _TRL_FAMILY,
        "trl-cispo",
        _TRL + " L3109-3111",
        "loss_type=cispo: weight sg(min(r, epsilon_high)), an absolute cap; epsilon_high 5.0 as "
        "TRL's docs recommend; token mean.",
        policy_loss_mode="cispo",
        cispo_clip="absolute",
        clip_ratio_high=5.0,
        loss_agg_mode="token-mean",
    ),
    _family(
        _TRL_FAMILY,
        "trl-sapo",
        _TRL + " L3121-3124",
        "loss_type=sapo: sapo_temperature_pos 1.0 / neg 1.05, grpo aggregation.",
        policy_loss_mode="sapo",
        loss_agg_mode="seq-mean-token-mean",
    ),
    _family(
        _TRL_FAMILY,
        "trl-gspo",
        _TRL + " L3087",
        "importance_sampling_level='sequence' (gradient through the mean), loss_type=grpo, "
        "epsilon 3e-4, epsilon_high 4e-4 (TRL's GSPO example).",
        policy_loss_mode="gspo",
        gspo_stop_gradient=False,
        clip_ratio_low=3e-4,
        clip_ratio_high=4e-4,
        loss_agg_mode="seq-mean-token-mean",
    ),
    _family(
        _TRL_FAMILY,
        "trl-luspo",
        _TRL,
        "loss_type=luspo: per-sequence token sum, mean over all rows.",
        loss_agg_mode="seq-mean-token-sum",
    ),
    _family(
        _OPENRLHF_FAMILY,
        "openrlhf-gspo",
        _OPENRLHF + " L189-196",
        "policy_loss_type=gspo: sequence ratio through the mean, no clamp, forces "
        "token_level_loss=False (seq-mean-token-mean).",
        policy_loss_mode="gspo",
        gspo_stop_gradient=False,
        log_ratio_clamp=None,
        loss_agg_mode="seq-mean-token-mean",
        advantage_estimator="grpo",
    ),
    _family(
        _OPENRLHF_FAMILY,
        "openrlhf-group_norm",
        _OPENRLHF + " L273-274",
        "advantage_estimator=group_norm: (r - mean) / (std + 1e-9), PPO loss.",
        advantage_estimator="grpo",
    ),
    _family(
        _OPENRLHF_FAMILY,
        "openrlhf-dr_grpo",
        _OPENRLHF + " L271-272",
        "advantage_estimator=dr_grpo: r - mean only; the loss aggregation is unchanged.",
        advantage_estimator="dr_grpo",
    ),
    _family(
        _OPENRLHF_FAMILY,
        "openrlhf-rloo",
        _OPENRLHF + " L268-270",
        "advantage_estimator=rloo: r - mean of the others.",
        advantage_estimator="rloo",
    ),
)
CONVENTIONS.update({c.name: c for c in _FAMILY_PRESETS})


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
