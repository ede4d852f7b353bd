"""Every library's metric names mapped onto one canonical set, with what each library computes.

The map is data: :data:`CANONICAL` (meaning, the panel that teaches it) and :data:`ALIASES`
(library, logged name, canonical name, the library's formula, and a scale when the library
logs the quantity with another sign). ``GET /api/v1/runs/metric-map`` returns both; the docs
table (``docs/runs.md``) is checked against them by a test.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Canonical:
    meaning: str
    formula: str
    panel: str | None


@dataclass(frozen=True)
class Alias:
    library: str
    name: str
    canonical: str
    formula: str
    scale: float = 1.0
    """The logged value times ``scale`` is the canonical one (SB3 logs entropy as a loss)."""


CANONICAL: dict[str, Canonical] = {
    "policy_loss": Canonical("the policy (actor) loss", "agg(-min(rA, clip(r)A))", "clip"),
    "value_loss": Canonical("the critic's loss", "agg(max((V-R)², (V_clip-R)²))", "value"),
    "entropy": Canonical("mean entropy of the policy, nats", "mean_t H(π(·|s_t))", "entropy"),
    "clip_fraction": Canonical(
        "share of tokens the clip acts on", "mean(clipped term taken) or mean(|r-1| > ε)", "clip"
    ),
    "clip_fraction_lower": Canonical(
        "share of tokens under the dual clip (verl) / the low clip (TRL)",
        "mean(dual clip binds)",
        "clip",
    ),
    "approx_kl": Canonical(
        "how far the update moved the policy from the one that sampled",
        "mean(k1) or mean(k3)",
        "kl",
    ),
    "kl_to_reference": Canonical(
        "KL of the policy to the reference model", "mean(k1 | k3)(π, π_ref)", "kl"
    ),
    "reward_mean": Canonical("mean reward (score) of the batch", "mean_i R_i", "family"),
    "response_length_mean": Canonical("mean generated length, tokens", "mean_i n_i", "family"),
    "grad_norm": Canonical("gradient norm before clipping", "||∇θ L||₂", "total"),
    "explained_variance": Canonical(
        "how much of the returns' variance the critic explains", "1 - Var(R-V)/Var(R)", "value"
    ),
    "learning_rate": Canonical("the optimiser's learning rate", "lr(step)", "hyper"),
    "ratio_max": Canonical("largest probability ratio in the batch", "max_t r_t", "clip"),
}

_K1 = "mean(old - new log-probs) (k1)"
_K3 = "mean((r - 1) - log r) (k3)"

ALIASES: tuple[Alias, ...] = (
    # verl (trainer.logger=['file'] / console): actor/* and critic/* keys of the update.
    Alias("verl", "actor/pg_loss", "policy_loss", "agg_loss of the policy_loss_mode's loss"),
    Alias("verl", "critic/vf_loss", "value_loss", "0.5·max((V-R)², (V_clip-R)²)"),
    Alias("verl", "actor/entropy", "entropy", "mean token entropy of the actor"),
    Alias("verl", "actor/pg_clipfrac", "clip_fraction", "mean(clipped term taken)"),
    Alias("verl", "actor/pg_clipfrac_lower", "clip_fraction_lower", "mean(dual clip binds, A<0)"),
    Alias("verl", "actor/ppo_kl", "approx_kl", _K1 + " of the clamped log-ratio"),
    Alias("verl", "actor/kl_loss", "kl_to_reference", "kl_loss_type (low_var_kl: k3) to ref"),
    Alias("verl", "critic/score/mean", "reward_mean", "mean sequence score"),
    Alias("verl", "response_length/mean", "response_length_mean", "mean response tokens"),
    Alias("verl", "actor/grad_norm", "grad_norm", "clip_grad_norm_ of the actor"),
    Alias("verl", "critic/vf_explained_var", "explained_variance", "1 - Var(R-V)/Var(R)"),
    Alias("verl", "actor/lr", "learning_rate", "actor optimiser lr"),
    # TRL GRPOTrainer / PPOTrainer (trainer_state.json log_history).
    Alias("trl", "loss", "policy_loss", "GRPO loss_type's aggregate (+ beta·KL)"),
    Alias("trl", "entropy", "entropy", "mean token entropy"),
    Alias("trl", "clip_ratio/region_mean", "clip_fraction", "mean((r<1-ε, A<0) or (r>1+ε, A>0))"),
    Alias("trl", "clip_ratio/low_mean", "clip_fraction_lower", "mean(r<1-ε and A<0), one-sided"),
    Alias("trl", "kl", "kl_to_reference", "mean k3 to the reference (× ratio if corrected)"),
    Alias("trl", "reward", "reward_mean", "mean of the summed reward functions"),
    Alias("trl", "completions/mean_length", "response_length_mean", "mean completion tokens"),
    Alias("trl", "grad_norm", "grad_norm", "Trainer's gradient norm"),
    Alias("trl", "learning_rate", "learning_rate", "scheduler lr"),
    Alias("trl", "policy/approxkl_avg", "approx_kl", "0.5·mean((log r)²) (k2), PPOTrainer"),
    Alias("trl", "policy/clipfrac_avg", "clip_fraction", "mean(clipped term taken), PPOTrainer"),
    Alias("trl", "loss/value_avg", "value_loss", "0.5·max((V-R)², (V_clip-R)²), PPOTrainer"),
    Alias("trl", "objective/kl", "kl_to_reference", "sum of k1 to the reference, PPOTrainer"),
    Alias("trl", "objective/scores", "reward_mean", "mean score, PPOTrainer"),
    Alias("trl", "policy/entropy_avg", "entropy", "mean entropy, PPOTrainer"),
    # OpenRLHF (TensorBoard / wandb: train/<name>).
    Alias("openrlhf", "policy_loss", "policy_loss", "PolicyLoss (token-level mean)"),
    Alias("openrlhf", "critic_loss", "value_loss", "0.5·max((V-R)², (V_clip-R)²)"),
    Alias("openrlhf", "ppo_clip_ratio", "clip_fraction", "mean(surr2 < surr1)"),
    Alias("openrlhf", "ppo_kl", "approx_kl", _K1 + " of the raw log-ratio"),
    Alias("openrlhf", "reward", "reward_mean", "mean reward"),
    Alias("openrlhf", "response_length", "response_length_mean", "mean response tokens"),
    Alias("openrlhf", "actor_lr", "learning_rate", "actor scheduler lr"),
    # Stable-Baselines3 (TensorBoard train/*, rollout/*).
    Alias("sb3", "train/policy_gradient_loss", "policy_loss", "-mean(min(rA, clip(r)A))"),
    Alias("sb3", "train/value_loss", "value_loss", "mse(R, V_clipped or V)"),
    Alias("sb3", "train/entropy_loss", "entropy", "-mean(H): logged as a loss", scale=-1.0),
    Alias("sb3", "train/clip_fraction", "clip_fraction", "mean(|r - 1| > ε)"),
    Alias("sb3", "train/approx_kl", "approx_kl", _K3),
    Alias("sb3", "train/explained_variance", "explained_variance", "1 - Var(R-V)/Var(R)"),
    Alias("sb3", "train/learning_rate", "learning_rate", "lr schedule"),
    Alias("sb3", "rollout/ep_rew_mean", "reward_mean", "mean episode return"),
    # CleanRL ppo.py (TensorBoard losses/*, charts/*).
    Alias("cleanrl", "losses/policy_loss", "policy_loss", "-mean(min(rA, clip(r)A))"),
    Alias("cleanrl", "losses/value_loss", "value_loss", "0.5·max((V-R)², (V_clip-R)²)"),
    Alias("cleanrl", "losses/entropy", "entropy", "mean entropy"),
    Alias("cleanrl", "losses/clipfrac", "clip_fraction", "mean(|r - 1| > ε)"),
    Alias("cleanrl", "losses/approx_kl", "approx_kl", _K3),
    Alias("cleanrl", "losses/explained_variance", "explained_variance", "1 - Var(R-V)/Var(R)"),
    Alias("cleanrl", "charts/learning_rate", "learning_rate", "annealed lr"),
    Alias("cleanrl", "charts/episodic_return", "reward_mean", "episode return"),
    # Generic names some loggers use.
    Alias("any", "ratio_max", "ratio_max", "max_t r_t"),
    Alias("any", "actor/ratio_max", "ratio_max", "max_t r_t"),
)

_BY_NAME: dict[str, Alias] = {}
for _alias in ALIASES:
    _BY_NAME.setdefault(_alias.name, _alias)

PREFIXES = ("train/", "train_", "eval/")
"""Prefixes loggers add (OpenRLHF's TensorBoard ``train/``): a name is matched as logged,
then without them."""


def lookup(name: str) -> Alias | None:
    """The alias a logged metric name maps to, if any.

    Examples:
        >>> lookup("actor/pg_clipfrac").canonical, lookup("train/ppo_kl").library
        ('clip_fraction', 'openrlhf')
        >>> lookup("my/custom") is None
        True
    """
    if name in _BY_NAME:
        return _BY_NAME[name]
    for prefix in PREFIXES:
        if name.startswith(prefix) and name[len(prefix) :] in _BY_NAME:
            return _BY_NAME[name[len(prefix) :]]
    return None
