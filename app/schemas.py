"""Request and response models: every field described and bounded, so OpenAPI documents it.

Tensor fields are declared as (nested) lists of numbers for the schema but are not validated
element by element by pydantic (``SkipValidation``): :mod:`app.tensors` converts them with
NumPy, which is ~10x faster on large batches and reports the exact index of a bad entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from ppo_core.advantages import GroupEstimator
from ppo_core.aggregation import LossAggMode
from ppo_core.conventions import CONVENTIONS, AdvantageEstimator
from ppo_core.kl import KLClamp, KLEstimator
from ppo_core.policy import CispoClip, PolicyLossMode
from ppo_core.rollout import RolloutISLevel, RolloutISMode
from ppo_core.value import ValueClipMode

# Every preset by name (library defaults and <library>-<loss type>), read from ppo_core: a
# Literal at run time (pydantic validates and documents the names), a str for the type checker.
if TYPE_CHECKING:
    ConventionName = str
else:
    ConventionName = Literal[tuple(CONVENTIONS)]

Tensor = Annotated[
    list[float] | list[list[float]],
    SkipValidation,
    Field(description="Finite numbers, 1-D [tokens] or 2-D [batch, tokens]."),
]
OptTensor = Annotated[
    list[float] | list[list[float]] | None,
    SkipValidation,
    Field(description="Optional; same shape as the main tensor."),
]
Mask = Annotated[
    list[float] | list[list[float]] | None,
    SkipValidation,
    Field(description="Optional 0/1 mask of valid tokens, same shape; omitted = all valid."),
]
Logits = Annotated[
    list[float] | list[list[float]] | list[list[list[float]]],
    SkipValidation,
    Field(description="Logits [..., vocab] (1-D to 3-D), finite; -inf is not JSON."),
]


class Strict(BaseModel):
    # NaN / Infinity (which Python's JSON parser accepts) fail as "not a finite number".
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx / 5xx body: FastAPI's validation format, one item per problem."""

    detail: list[ErrorItem]


# --- knobs shared by the policy / value / analyze requests --------------------------------


class PolicyKnobs(Strict):
    """Policy-loss knobs. Omitted: the convention's value; explicit ``null``: off."""

    convention: ConventionName | None = Field(
        None, description="Preset whose knobs apply (default: seed). Any knob overrides it."
    )
    clip_ratio: float | None = Field(None, gt=0, lt=1, description="Symmetric epsilon.")
    clip_ratio_low: float | None = Field(None, gt=0, lt=1, description="Lower epsilon.")
    clip_ratio_high: float | None = Field(None, gt=0, le=10, description="Upper epsilon.")
    dual_clip: float | None = Field(
        None, gt=1, le=100, description="Dual-clip c > 1 (bounds the loss for A < 0)."
    )
    log_ratio_clamp: float | None = Field(
        None, gt=0, le=700, description="Clamp |log ratio| before exp (verl: 20)."
    )
    loss_agg_mode: LossAggMode | None = Field(None, description="Reduction of per-token terms.")
    policy_loss_mode: PolicyLossMode | None = Field(
        None,
        description="Objective (verl's names): vanilla (PPO clip), gspo (sequence ratio), cispo "
        "(clipped IS weight × log π), sapo (soft gate), gpg (-A·log π), geo_mean (GMPO).",
    )
    loss_scale_factor: float | None = Field(
        None, ge=1e-6, le=1e9, description="L of seq-mean-token-sum-norm (null: padded length)."
    )
    count_empty_rows: bool | None = Field(
        None, description="Sequence means over every row, empty ones as 0 (TRL); else skip them."
    )
    sapo_tau_pos: float | None = Field(None, gt=0, le=100, description="SAPO τ for A > 0.")
    sapo_tau_neg: float | None = Field(None, gt=0, le=100, description="SAPO τ for A ≤ 0.")
    cispo_clip: CispoClip | None = Field(
        None,
        description="CISPO weight: band = clip(r, 1-eps_low, 1+eps_high) (verl); absolute = "
        "min(r, clip_ratio_high) (TRL).",
    )
    gspo_stop_gradient: bool | None = Field(
        None, description="GSPO-token form (verl) or gradient through the mean (TRL, OpenRLHF)."
    )
    gspo_log_ratio_max: float | None = Field(
        None, gt=0, le=700, description="Cap on GSPO's log sequence ratio (verl: 10)."
    )
    rollout_is_level: RolloutISLevel | None = Field(
        None,
        description="Rollout correction of the policy loss with rollout_logprobs: token or "
        "sequence (product of ratios) weights; null = off.",
    )
    rollout_is_mode: RolloutISMode | None = Field(
        None, description="truncate (TIS: min(w, C)) or mask (MIS / IcePop: 0 outside the band)."
    )
    rollout_is_threshold: float | None = Field(
        None, gt=0, le=1e6, description="Upper threshold C of the rollout weights."
    )
    rollout_is_threshold_low: float | None = Field(
        None, ge=0, le=1e6, description="Lower threshold (mask: default 1/C)."
    )


class ValueKnobs(Strict):
    convention: ConventionName | None = Field(None, description="Preset (default: seed).")
    clip_range: float | None = Field(
        None, gt=0, le=1e6, description="Absolute value clip around old_values; null = off."
    )
    mode: ValueClipMode | None = Field(
        None, description="max: max of clipped/unclipped errors; clipped: SB3's clipped only."
    )
    scale: float | None = Field(None, ge=0, le=100, description="Multiplier (0.5 or 1).")
    loss_agg_mode: LossAggMode | None = Field(None, description="Reduction.")


# --- requests -------------------------------------------------------------------------------


class LossRequest(Strict):
    """The seed's ``compute_ppo_total_loss`` inputs."""

    policy_logprobs: Tensor
    old_logprobs: Tensor
    advantages: Tensor
    values: Tensor
    returns: Tensor
    logits: Logits = Field(description="[..., vocab] whose leading shape is the tokens' shape.")
    clip_ratio: float = Field(0.2, gt=0, lt=1, description="PPO epsilon.")
    vf_coef: float = Field(0.5, ge=0, le=100, description="Value-loss weight c1.")
    entropy_coef: float = Field(0.01, ge=0, le=100, description="Entropy-bonus weight c2.")


SeqOrTokenTensor = Annotated[
    list[float] | list[list[float]],
    SkipValidation,
    Field(description="[batch, tokens] like logprobs, or [batch]: one per sequence, broadcast."),
]


class PolicyLossRequest(PolicyKnobs):
    logprobs: Tensor
    old_logprobs: Tensor
    advantages: SeqOrTokenTensor
    mask: Mask = None
    rollout_logprobs: OptTensor = Field(
        None, description="The inference engine's log-probs, for rollout correction."
    )


class ValueLossRequest(ValueKnobs):
    values: Tensor
    returns: Tensor
    old_values: OptTensor = None
    mask: Mask = None


class EntropyRequest(Strict):
    logits: Logits
    temperature: float = Field(1.0, gt=0, le=1e4, description="Softmax temperature.")


class KLRequest(Strict):
    logprobs: Tensor
    ref_logprobs: Tensor
    mask: Mask = None
    estimator: KLEstimator = Field(
        "k3",
        description="With d = logprobs - ref_logprobs: k1 = d, k2 = d²/2, k3 = e^-d - 1 + d, "
        "abs = |d|, k3+ = k3's value with k2's gradient.",
    )
    log_ratio_clamp: float | None = Field(None, gt=0, le=700, description="Clamp |d|.")
    clamp: KLClamp = Field(
        "none",
        description="A library's clamps: verl (k3: d to ±20, value to ±10), openrlhf (k3: d ≥ "
        "-10; every value to ±10), none (TRL).",
    )


class GAERequest(Strict):
    rewards: Tensor
    values: Tensor
    mask: Mask = None
    gamma: float = Field(0.99, ge=0, le=1, description="Discount.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    whiten: bool = Field(False, description="Masked whitening of the advantages (verl / TRL).")
    dones: OptTensor = Field(
        None,
        description="0/1, same shape: 1 where the episode ends at that step (no bootstrap "
        "past it). CleanRL's dones shifted left by one.",
    )
    last_value: Annotated[
        float | list[float] | None,
        SkipValidation,
        Field(description="Bootstrap value after the last step: a number or one per row."),
    ] = None


class GroupRequest(Strict):
    rewards: Annotated[list[float], SkipValidation, Field(description="One per response.")]
    group_ids: Annotated[list[int], SkipValidation, Field(description="Group (prompt) ids.")]
    estimator: GroupEstimator = Field(
        "grpo",
        description="grpo (÷ std + eps), dr_grpo (no std), rloo (leave-one-out), "
        "reinforce_plus_plus_baseline (r - mean, whitened over tokens), gpg (× B/#nonzero).",
    )
    normalize_std: bool = Field(True, description="grpo only: divide by the group std.")
    eps: float = Field(
        1e-6, gt=0, le=1, description="Added to the std (verl 1e-6, OpenRLHF 1e-9, TRL 1e-4)."
    )
    lengths: Annotated[
        list[float] | None,
        SkipValidation,
        Field(description="Tokens per response (reinforce_plus_plus_baseline's whitening)."),
    ] = None


class ReinforcePPRequest(Strict):
    token_level_rewards: Annotated[
        list[list[float]], SkipValidation, Field(description="[batch, tokens] rewards.")
    ]
    mask: Mask = None
    gamma: float = Field(1.0, ge=0, le=1, description="Discount (verl default 1).")
    group_ids: Annotated[
        list[int] | None,
        SkipValidation,
        Field(description="One per row: the group-baseline form (reinforce_plus_plus_baseline)."),
    ] = None


class RolloutCorrectionRequest(Strict):
    old_logprobs: Tensor
    rollout_logprobs: Tensor
    mask: Mask = None
    level: RolloutISLevel = Field("token", description="token, or sequence (product of ratios).")
    mode: RolloutISMode = Field("truncate", description="truncate (TIS) or mask (MIS / IcePop).")
    threshold: float = Field(2.0, gt=0, le=1e6, description="Upper threshold C.")
    threshold_low: float | None = Field(
        None, ge=0, le=1e6, description="Lower threshold (mask: default 1/C)."
    )


class AnalyzeRequest(PolicyKnobs):
    """A rollout batch. ``advantages``, or ``rewards`` (then GAE per the convention), or
    ``scores`` (one per sequence; then the ``advantage_estimator``, with ``group_ids``)."""

    logprobs: Tensor
    old_logprobs: Tensor
    advantages: OptTensor = None
    rewards: OptTensor = None
    values: OptTensor = None
    returns: OptTensor = None
    old_values: OptTensor = None
    ref_logprobs: OptTensor = None
    rollout_logprobs: OptTensor = None
    entropy: OptTensor = None
    logits: Annotated[
        list[float] | list[list[float]] | list[list[list[float]]] | None,
        SkipValidation,
        Field(description="Optional logits [..., vocab] for the entropy."),
    ] = None
    mask: Mask = None
    value_clip_range: float | None = Field(None, gt=0, le=1e6, description="Value clip.")
    value_mode: ValueClipMode | None = Field(None, description="Value clip mode.")
    value_scale: float | None = Field(None, ge=0, le=100, description="Value scale.")
    vf_coef: float | None = Field(None, ge=0, le=100, description="Value-loss weight.")
    entropy_coef: float | None = Field(None, ge=0, le=100, description="Entropy weight.")
    kl_coef: float | None = Field(None, ge=0, le=100, description="KL weight.")
    kl_estimator: KLEstimator | None = Field(None, description="KL estimator.")
    kl_clamp: KLClamp | None = Field(None, description="A library's KL clamps.")
    kl_placement: Literal["none", "reward", "loss"] | None = Field(
        None, description="Where the KL goes: loss adds kl_coef·KL to the total."
    )
    gamma: float | None = Field(None, ge=0, le=1, description="GAE discount (with rewards).")
    lam: float | None = Field(None, ge=0, le=1, description="GAE lambda (with rewards).")
    bins: int = Field(40, ge=2, le=200, description="Histogram bins.")
    scores: Annotated[
        list[float] | None,
        SkipValidation,
        Field(description="One reward per sequence; advantages then come from the estimator."),
    ] = None
    group_ids: Annotated[
        list[int] | None,
        SkipValidation,
        Field(description="One group (prompt) id per sequence (uid in verl)."),
    ] = None
    advantage_estimator: AdvantageEstimator | None = Field(
        None,
        description="With scores: grpo, dr_grpo, rloo, reinforce_plus_plus_baseline, gpg (need "
        "group_ids) or reinforce_plus_plus (score on the last valid token). Default: the "
        "preset's, grpo when the preset's is gae.",
    )
    group_std_eps: float | None = Field(
        None, gt=0, le=1, description="grpo's std epsilon (verl 1e-6, OpenRLHF 1e-9, TRL 1e-4)."
    )
    first_epoch: bool = Field(
        False, description="This is the first update on the batch: the ratio must be 1."
    )
    micro_batches: int = Field(
        1,
        ge=1,
        le=64,
        description="Split the rows into k micro-batches, accumulate as trainers do, and "
        "compare with the full batch per loss_agg_mode (1: skip).",
    )


# --- responses ------------------------------------------------------------------------------


class ConventionOut(BaseModel):
    name: str
    library: str
    source: str
    formula: str
    notes: str
    knobs: dict[str, Any]


class PolicyDiagnostics(BaseModel):
    clip_fraction: float = Field(description="Share of valid tokens where the clip is taken.")
    clip_fraction_lower: float = Field(description="Share where the dual clip binds.")
    ratio_outside_fraction: float = Field(description="Share with r outside [1-eps, 1+eps].")
    approx_kl: float = Field(description="k1: mean(old - new log-probs).")
    approx_kl_k2: float = Field(description="mean((log r)²/2) (TRL's approxkl).")
    approx_kl_k3: float = Field(description="mean((r - 1) - log r) (CleanRL / SB3).")
    ratio_min: float
    ratio_mean: float
    ratio_max: float


class HistogramOut(BaseModel):
    edges: list[float]
    counts: list[int]


class RolloutCorrectionOut(BaseModel):
    applied: bool = Field(description="False: rollout_is_level is null, metrics only.")
    level: RolloutISLevel
    mode: RolloutISMode
    threshold: float
    threshold_low: float | None = Field(
        description="The lower threshold applied (mask mode: 1/threshold unless set)."
    )
    metrics: dict[str, float] = Field(description="verl's rollout_corr/* without the prefix.")
    histogram: HistogramOut | None = Field(
        None, description="The raw weights (before the threshold) over valid tokens (analyze)."
    )


class PolicyLossResponse(PolicyDiagnostics):
    loss: float = Field(description="The aggregated policy loss (to minimise).")
    per_token_loss: list[float] | list[list[float]] = Field(
        description="Per-token loss before aggregation (after rollout weights)."
    )
    logprob_gradient: list[float] | list[list[float]] = Field(
        description="d loss / d logprobs per token, by autograd."
    )
    ratio: list[float] | list[list[float]] = Field(
        description="The ratio the objective uses (sequence ratio for gspo / geo_mean)."
    )
    rollout_weights: list[float] | list[list[float]] | None = Field(
        None, description="Weights applied to the per-token loss (with rollout_logprobs)."
    )
    rollout_correction: RolloutCorrectionOut | None = None
    policy_loss_mode: PolicyLossMode
    convention: ConventionOut


class ValueLossResponse(BaseModel):
    loss: float
    per_token_loss: list[float] | list[list[float]]
    clip_fraction: float
    clip_applied: bool = Field(description="False when no clip range or no old_values.")
    convention: ConventionOut


class LossDiagnostics(PolicyDiagnostics):
    explained_variance: float | None = Field(description="1 - Var(R - V)/Var(R); null if Var(R)=0.")


class LossResponse(BaseModel):
    total_loss: float
    policy_loss: float
    value_loss: float
    entropy: float
    diagnostics: LossDiagnostics


class EntropyResponse(BaseModel):
    entropy: float = Field(description="Mean entropy over rows, nats.")
    per_row: float | list[float] | list[list[float]]
    max_entropy: float = Field(description="log V.")


class KLResponse(BaseModel):
    kl: float
    per_token: list[float] | list[list[float]]
    estimator: KLEstimator
    gradient: list[float] | list[list[float]] = Field(
        description="d estimate / d logprobs per token (autograd): what a KL loss pushes."
    )
    true_gradient_weight: list[float] | list[list[float]] = Field(
        description="log π - log π_ref per token: E_π[w ∇log π] = ∇KL(π‖π_ref) exactly. An "
        "estimator used as a loss is unbiased iff its gradient matches w in expectation."
    )


class GAEResponse(BaseModel):
    advantages: list[float] | list[list[float]]
    returns: list[float] | list[list[float]]


class GroupResponse(BaseModel):
    advantages: list[float] = Field(description="One per response, in the order sent.")
    estimator: GroupEstimator


class ReinforcePPResponse(BaseModel):
    advantages: list[list[float]] = Field(description="Whitened over valid tokens, 0 at padding.")
    returns: list[list[float]] = Field(
        description="Discounted token returns G_t (the baseline form: its advantages)."
    )


class RolloutCorrectionResponse(BaseModel):
    weights: list[float] | list[list[float]] = Field(
        description="π_old / μ per token (or per sequence), after the threshold; 0 at padding."
    )
    kept: list[bool] | list[list[bool]] = Field(description="Valid and not masked out.")
    metrics: dict[str, float] = Field(
        description="verl's rollout_corr/* metrics without the prefix (docs/family.md)."
    )


class ClipBoundsOut(BaseModel):
    low: float
    high: float
    dual_clip: float | None


class PointReadout(BaseModel):
    ratio: float
    objective: float
    gradient: float
    clipped: bool = Field(description="True where the objective is flat in r (zero gradient).")


class ClipObjectiveResponse(BaseModel):
    ratio: list[float]
    unclipped: list[float]
    clipped: list[float]
    objective: list[float]
    gradient: list[float]
    clip_bounds: ClipBoundsOut
    point: PointReadout | None


class ClipObjectiveBothSignsResponse(BaseModel):
    positive: ClipObjectiveResponse = Field(description="The answer for A = +|A|.")
    negative: ClipObjectiveResponse = Field(description="The answer for A = -|A|.")


class ValueCurveResponse(BaseModel):
    prediction: list[float]
    unclipped: list[float]
    clipped_max: list[float]
    clipped_only: list[float]
    clip_low: float
    clip_high: float


class EntropyCaseOut(BaseModel):
    name: str
    description: str
    entropy: float
    per_row: list[float]
    example_probs: list[float] = Field(description="Row 0's largest probabilities, descending.")
    example_tail_mass: float = Field(description="Probability left outside example_probs.")


class TemperatureCurve(BaseModel):
    temperature: list[float]
    entropy: dict[str, list[float]]


class EntropyComparisonResponse(BaseModel):
    vocab_size: int
    max_entropy: float
    cases: list[EntropyCaseOut]
    temperature_curve: TemperatureCurve


class KLDriftResponse(BaseModel):
    drift: list[float]
    true_kl: list[float]
    mean: dict[str, list[float]]
    std: dict[str, list[float]]
    samples: int
    true_gradient: list[float] = Field(description="d KL(π‖π_ref) / d drift, exact.")
    reverse_kl_gradient: list[float] = Field(description="d KL(π_ref‖π) / d drift, exact.")
    gradient: dict[str, list[float]] = Field(
        description="Each estimator's expected gradient used as a loss (samples held fixed), "
        "exact over the vocabulary: k2 and k3+ follow the true gradient, k1's is 0, k3's is "
        "the reverse KL's."
    )


class ObjectiveCurveOut(BaseModel):
    objective: list[float] = Field(description="-loss of a one-token sequence, log π_old = 0.")
    gradient_weight: list[float] = Field(description="d objective / d log π (autograd).")
    band: tuple[float, float] | None = Field(
        description="Ratio interval the mode's clip leaves alone: [1-ε_low, 1+ε_high] "
        "(vanilla, gspo, cispo band), [e^-ε_low, e^ε_high] (geo_mean, log space), [0, cap] "
        "(cispo absolute); null for sapo and gpg, which do not clip."
    )


class ObjectiveCurvesResponse(BaseModel):
    ratio: list[float] = Field(description="The ratio axis (points from ratio_min to max).")
    advantage: float
    clip_bounds: ClipBoundsOut = Field(
        description="PPO's trust region [1-ε_low, 1+ε_high] and dual clip (see each band)."
    )
    curves: dict[str, ObjectiveCurveOut] = Field(description="Per policy_loss_mode.")


class AggregationModeOut(BaseModel):
    token_weight: list[float] = Field(description="Weight of one token of each sequence.")
    sequence_weight: list[float] = Field(description="Total weight of each sequence.")


class AggregationWeightsResponse(BaseModel):
    lengths: list[int]
    padded_length: int
    modes: dict[str, AggregationModeOut]


class BreakdownOut(BaseModel):
    policy_loss: float
    value_loss: float
    entropy: float
    value_term: float = Field(description="vf_coef x value_loss.")
    entropy_term: float = Field(description="-entropy_coef x entropy.")
    kl: float | None = None
    kl_term: float = 0.0
    total_loss: float


class SampleLossResponse(BaseModel):
    breakdown: BreakdownOut
    diagnostics: LossDiagnostics


class FindingOut(BaseModel):
    code: str = Field(description="Documented in docs/inspector.md.")
    severity: Literal["info", "warning", "error"]
    message: str
    value: float | None
    threshold: float | None
    panel: str = Field(description="The page panel that explains the idea (its id).")


class TokenViewOut(BaseModel):
    rule: str = Field(description="How the rows and token windows were chosen.")
    states: list[str] = Field(description="Legend of the state codes.")
    rows: list[int] = Field(description="Original row index of each row shown.")
    starts: list[int] = Field(description="First token (column) of each row's window.")
    lengths: list[int] = Field(description="Valid tokens in each row (whole row).")
    ratio: list[list[float]]
    loss: list[list[float]] = Field(description="Per-token policy loss.")
    advantage: list[list[float]]
    gradient: list[list[float]] = Field(
        description="d total_loss / d logprobs: negative reinforces, positive suppresses."
    )
    mask: list[list[int]]
    state: list[list[int]] = Field(description="Index into states.")
    rollout_weight: list[list[float]] | None


class AggregationModeRow(BaseModel):
    loss: float | None = Field(description="The policy loss under this mode (null: geo_mean).")
    sequence_weight: list[float] = Field(description="Each listed row's total weight.")


class AggregationOut(BaseModel):
    rows: list[int] = Field(description="Rows listed (all, or 256 spread over the lengths).")
    lengths: list[int]
    modes: dict[str, AggregationModeRow]


class MicrobatchModeRow(BaseModel):
    loss_full: float
    loss_accumulated: float
    gradient_relative_error: float


class MicrobatchOut(BaseModel):
    micro_batches: int
    modes: dict[str, MicrobatchModeRow]


class ConventionRowOut(BaseModel):
    name: str
    library: str
    policy_loss_mode: str
    loss: float = Field(description="Policy loss under this preset.")
    clip_fraction_as_logged: float
    approx_kl_as_logged: float
    clip_fraction_metric: str
    approx_kl_metric: str


class ConventionsOut(BaseModel):
    rows_used: int = Field(
        description="Rows the presets were computed on: every row when the batch has at most "
        "65,536 elements, else evenly spaced rows up to that many."
    )
    rows_total: int
    presets: list[ConventionRowOut]


class AnalyzeResponse(BaseModel):
    tokens: int = Field(description="Valid tokens.")
    shape: list[int]
    inputs: list[str] = Field(description="The tensor fields this batch provided, sorted.")
    breakdown: BreakdownOut
    diagnostics: dict[str, float | bool | None]
    histograms: dict[str, HistogramOut]
    logprob_gradient: list[float] | list[list[float]] | None = Field(
        description="d total_loss / d logprobs per token (autograd); null above "
        "65,536 elements (see histograms.logprob_gradient)."
    )
    rollout_correction: RolloutCorrectionOut | None = Field(
        description="With rollout_logprobs: the weights' metrics, and whether they were applied."
    )
    policy_loss_mode: PolicyLossMode
    findings: list[FindingOut] = Field(description="Errors first; a clean batch has none.")
    token_view: TokenViewOut
    aggregation: AggregationOut
    microbatch: MicrobatchOut | None
    conventions: ConventionsOut = Field(
        description="What each preset would compute and log for this batch."
    )
    convention: ConventionOut
    notes: list[str]


class HyperparameterRow(BaseModel):
    name: str
    symbol: str
    default: float | int
    controls: str
    too_high: str
    too_low: str
    control: str | None = Field(description="The page control this row describes.")


# --- the run report -------------------------------------------------------------------------


class CanonicalMetricOut(BaseModel):
    meaning: str
    formula: str
    panel: str | None = Field(description="The page panel that teaches the idea.")


class MetricAliasOut(BaseModel):
    library: str
    name: str = Field(description="The name in that library's logs.")
    canonical: str
    formula: str = Field(description="What that library computes under the name.")
    scale: float = Field(description="Logged value x scale = the canonical value.")


class MetricMapResponse(BaseModel):
    canonical: dict[str, CanonicalMetricOut]
    aliases: list[MetricAliasOut]


class RunSeriesOut(BaseModel):
    source: str = Field(description="The metric's name in the file.")
    points: int = Field(description="Points in the log (findings use all of them).")
    steps: list[int] = Field(
        description="Steps shown: every point up to 5,000, else per bucket the minimum, the "
        "maximum and the first NaN / inf (spikes survive the decimation)."
    )
    values: list[float | None] = Field(description="null where the log had NaN / inf.")


class RunFindingOut(BaseModel):
    code: str = Field(description="Documented in docs/runs.md.")
    severity: Literal["info", "warning", "error"]
    message: str
    step: int | None
    metric: str | None
    panel: str | None


class RunReportResponse(BaseModel):
    format: str
    steps: int = Field(description="Distinct steps in the log.")
    metrics: dict[str, RunSeriesOut] = Field(description="By canonical name.")
    unmapped: list[str] = Field(description="Metrics kept under their own names (not plotted).")
    findings: list[RunFindingOut]
