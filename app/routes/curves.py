"""Interactive curves for the page: small, computed on the event loop in well under 1 ms."""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

import orjson
import torch
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from app.batching import MicroBatcher
from app.cache import JSONBytes, ResponseCache
from app.query import QueryModel, openapi_query, parse_query
from app.results import breakdown, finite_list, loss_diagnostics
from app.schemas import (
    AggregationModeOut,
    AggregationWeightsResponse,
    ClipBoundsOut,
    ClipObjectiveBothSignsResponse,
    ClipObjectiveResponse,
    EntropyCaseOut,
    EntropyComparisonResponse,
    KLDriftResponse,
    ObjectiveCurveOut,
    ObjectiveCurvesResponse,
    SampleLossResponse,
    TemperatureCurve,
    ValueCurveResponse,
)
from ppo_core import (
    PPOInputError,
    entropy_comparison,
    entropy_vs_temperature,
    get_convention,
    kl_estimator_drift,
    ppo_total_loss,
    seed_example_batch,
    value_loss_curve,
)
from ppo_core.aggregation import MAX_LENGTH_TABLE, weights_by_length
from ppo_core.curves import (
    MAX_CURVE_POINTS,
    ClipCurveSpec,
    ClipPoint,
    clip_curve_spec,
    clip_objective_curves,
    objective_curves,
)
from ppo_core.policy import clip_bounds

router = APIRouter(prefix="/api/v1", tags=["curves"])

CACHEABLE_PATHS: set[str] = set()
"""GET endpoints that are pure functions of their query (filled by :func:`pure_get`)."""


class ClipObjectiveQuery(QueryModel):
    epsilon: float = Field(0.2, gt=0, lt=1, description="Symmetric clip epsilon.")
    advantage: float = Field(1.0, ge=-1e6, le=1e6, description="Advantage A.")
    ratio_min: float = Field(0.5, ge=0, le=100, description="Left end of the ratio axis.")
    ratio_max: float = Field(1.5, gt=0, le=100, description="Right end of the ratio axis.")
    points: int = Field(100, ge=2, le=MAX_CURVE_POINTS, description="Samples on the axis.")
    epsilon_low: float | None = Field(None, gt=0, lt=1, description="Lower epsilon.")
    epsilon_high: float | None = Field(None, gt=0, le=10, description="Upper epsilon.")
    dual_clip: float | None = Field(None, gt=1, le=100, description="Dual-clip c > 1.")
    ratio: float | None = Field(None, ge=0, le=100, description="A ratio to read out.")


class ClipObjectiveBothSignsQuery(ClipObjectiveQuery):
    advantage: float = Field(
        1.0, gt=0, le=1e6, description="|A|: the answer holds A = +|A| and A = -|A|."
    )


class ValueCurveQuery(QueryModel):
    returns: float = Field(1.0, ge=-1e4, le=1e4, description="Target return R.")
    old_value: float = Field(0.0, ge=-1e4, le=1e4, description="Rollout prediction V_old.")
    clip_range: float = Field(0.2, gt=0, le=1e4, description="Absolute clip around V_old.")
    prediction_min: float = Field(-2.0, ge=-1e4, le=1e4, description="Left end of V axis.")
    prediction_max: float = Field(3.0, ge=-1e4, le=1e4, description="Right end of V axis.")
    points: int = Field(200, ge=2, le=MAX_CURVE_POINTS, description="Samples on the axis.")


class EntropyComparisonQuery(QueryModel):
    vocab_size: int = Field(1000, ge=2, le=65_536, description="Vocabulary size V.")
    batch_size: int = Field(16, ge=1, le=256, description="Rows per case.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Generator seed.")
    temperature: float = Field(
        1.0, ge=0.01, le=100, description="Softmax temperature (bounded so logits / T is finite)."
    )
    peak_logit: float = Field(10.0, ge=-100, le=100, description="The peaked case's logit.")
    uniform_scale: float = Field(0.1, gt=0, le=10, description="Near-uniform logit scale.")
    top_k: int = Field(50, ge=1, le=1000, description="Probabilities returned per example.")


class KLDriftQuery(QueryModel):
    vocab_size: int = Field(50, ge=2, le=1000, description="Vocabulary size.")
    max_drift: float = Field(2.0, gt=0, le=10, description="Largest drift of the logits.")
    steps: int = Field(21, ge=2, le=101, description="Drift values from 0 to max_drift.")
    samples: int = Field(256, ge=1, le=4096, description="Tokens sampled per drift.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Generator seed.")


class SampleLossQuery(QueryModel):
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Generator seed of the batch.")
    batch_size: int = Field(16, ge=2, le=4096, description="Tokens in the sample batch.")
    vocab_size: int = Field(1000, ge=2, le=4096, description="Vocabulary of the logits.")
    clip_ratio: float = Field(0.2, gt=0, lt=1, description="PPO epsilon.")
    vf_coef: float = Field(0.5, ge=0, le=100, description="Value-loss weight.")
    entropy_coef: float = Field(0.01, ge=0, le=100, description="Entropy weight.")


class ObjectiveCurvesQuery(QueryModel):
    modes: str = Field(
        "vanilla,gspo,cispo,sapo,gpg,geo_mean",
        max_length=200,
        description="Comma-separated policy_loss_modes: vanilla, gspo, cispo, sapo, gpg, geo_mean.",
    )
    advantage: float = Field(1.0, ge=-1e6, le=1e6, description="Advantage A.")
    epsilon: float = Field(0.2, gt=0, lt=1, description="Symmetric clip epsilon.")
    epsilon_low: float | None = Field(None, gt=0, lt=1, description="Lower epsilon.")
    epsilon_high: float | None = Field(
        None, gt=0, le=10, description="Upper epsilon (cispo_clip=absolute: the cap on r)."
    )
    dual_clip: float | None = Field(None, gt=1, le=100, description="Dual clip (vanilla, gspo).")
    sapo_tau_pos: float = Field(1.0, gt=0, le=100, description="SAPO τ for A > 0.")
    sapo_tau_neg: float = Field(1.05, gt=0, le=100, description="SAPO τ for A ≤ 0.")
    cispo_clip: Literal["band", "absolute"] = Field("band", description="CISPO weight clip.")
    ratio_min: float = Field(0.5, gt=0, le=100, description="Left end of the ratio axis (> 0).")
    ratio_max: float = Field(1.5, gt=0, le=100, description="Right end of the ratio axis.")
    points: int = Field(101, ge=2, le=MAX_CURVE_POINTS, description="Samples on the axis.")


class AggregationWeightsQuery(QueryModel):
    lengths: str = Field(
        "16,64,256,1024",
        max_length=400,
        description="Comma-separated valid-token counts, one per sequence (0 = empty row).",
    )
    padded_length: int | None = Field(
        None, ge=1, le=MAX_LENGTH_TABLE, description="T (default: the longest length)."
    )
    loss_scale_factor: float | None = Field(
        None, ge=1e-6, le=1e9, description="L of seq-mean-token-sum-norm (default T)."
    )
    count_empty_rows: bool = Field(False, description="TRL's rule: empty rows count.")


MAX_COMPARISON_ELEMENTS = 262_144
TEMPERATURES = [round(10 ** (-1.3 + 0.1 * i), 4) for i in range(27)]  # 0.05 ... 20

Q = TypeVar("Q", bound=QueryModel)
R = TypeVar("R", bound=BaseModel)


def _register(
    path: str,
    query: type[QueryModel],
    response: type[BaseModel],
    endpoint: Callable[[Request], Awaitable[Response]],
    documented_by: Callable[..., object],
) -> None:
    """Route ``GET path`` to ``endpoint``, named and described by the function it serves,
    with the query model's fields in OpenAPI, and list the path in :data:`CACHEABLE_PATHS`."""
    router.add_api_route(
        path,
        endpoint,
        methods=["GET"],
        name=documented_by.__name__,
        response_model=response,
        description=inspect.getdoc(documented_by),
        openapi_extra=openapi_query(query),
    )
    CACHEABLE_PATHS.add(router.prefix + path)


def _cache_key(path: str, q: QueryModel, names: tuple[str, ...]) -> tuple[object, ...]:
    return (path, *(q.__dict__[name] for name in names))


def pure_get(
    path: str, query: type[Q], response: type[R]
) -> Callable[[Callable[[Q], R]], Callable[[Q], R]]:
    """Serve ``build(query) -> response`` as ``GET path``: the query string parsed by the
    ``query`` model (each field documented in OpenAPI; an unknown parameter is a 422 naming
    it), and the answer kept as JSON in the app's :class:`app.cache.ResponseCache`, keyed by
    the validated field values. The path is listed in :data:`CACHEABLE_PATHS`."""

    def register(build: Callable[[Q], R]) -> Callable[[Q], R]:
        names = tuple(query.model_fields)

        async def endpoint(request: Request) -> Response:
            q = parse_query(request, query)
            cache: ResponseCache = request.app.state.response_cache
            key = _cache_key(path, q, names)
            return JSONBytes(cache.get_or_build(key, lambda: build(q).model_dump_json().encode()))

        _register(path, query, response, endpoint, build)
        return build

    return register


S = TypeVar("S")


def batched_get(
    path: str,
    query: type[Q],
    response: type[R],
    *,
    prepare: Callable[[Q], S],
    size: Callable[[S], int],
) -> Callable[[Callable[[Sequence[S]], Sequence[bytes]]], Callable[[Sequence[S]], Sequence[bytes]]]:
    """As :func:`pure_get`, but a cache miss is answered with the other misses that reach the
    event loop with it, in one call of ``build_many(items) -> JSON bodies``
    (:class:`app.batching.MicroBatcher`, one per app and path in ``app.state.batchers``).
    ``prepare(query)`` checks a query and makes its item in the request's own task, so a bad
    query is its own 422 and never reaches the batch; ``size(item)`` bounds a batch's work."""

    def register(
        build_many: Callable[[Sequence[S]], Sequence[bytes]],
    ) -> Callable[[Sequence[S]], Sequence[bytes]]:
        names = tuple(query.model_fields)

        async def endpoint(request: Request) -> Response:
            q = parse_query(request, query)
            state = request.app.state
            cache: ResponseCache = state.response_cache
            key = _cache_key(path, q, names)
            body = cache.get(key)
            if body is None:
                item = prepare(q)
                batcher = state.batchers.get(path)
                if batcher is None:
                    batcher = state.batchers[path] = MicroBatcher(
                        build_many, size=size, max_size=MAX_BATCH_POINTS
                    )
                body = await batcher.submit(item)
                cache.put(key, body)
            return JSONBytes(body)

        _register(path, query, response, endpoint, build_many)
        return build_many

    return register


MAX_BATCH_POINTS = 65_536
"""Curve points computed in one batched pass at most (a single query's up to 10,000 fit)."""


def _clip_spec(q: ClipObjectiveQuery) -> ClipCurveSpec:
    return clip_curve_spec(
        q.epsilon,
        q.advantage,
        ratio_min=q.ratio_min,
        ratio_max=q.ratio_max,
        points=q.points,
        epsilon_low=q.epsilon_low,
        epsilon_high=q.epsilon_high,
        dual_clip=q.dual_clip,
        at=q.ratio,
    )


@batched_get(
    "/clip-objective",
    ClipObjectiveQuery,
    ClipObjectiveResponse,
    prepare=_clip_spec,
    size=lambda spec: spec.points + 1,
)
def clip_objective(specs: Sequence[ClipCurveSpec]) -> list[bytes]:
    """The PPO objective ``min(rA, clip(r)A)`` vs the ratio, with d/dr by autograd.

    Responses are memoised per parameter set (a pure function of the query): slider
    positions repeat, and a cached answer costs what ``/healthz`` costs. Queries never seen
    before that reach the server together are computed in one autograd pass (each answer is
    bit for bit what it is alone).
    """
    batch = clip_objective_curves(specs)
    ratio, unclipped, clipped, objective, gradient = (
        t.numpy()
        for t in (batch.ratio, batch.unclipped, batch.clipped, batch.objective, batch.gradient)
    )
    # The queries of a batch mostly share their ratio axis (the page asks for one): a fifth
    # of each answer's numbers, serialised once per axis.
    axes: dict[tuple[float, float, int], orjson.Fragment] = {}
    bodies = []
    for spec, start, point in zip(batch.specs, batch.starts, batch.points, strict=True):
        part = slice(start, start + spec.points)
        axis = (spec.ratio_min, spec.ratio_max, spec.points)
        axis_json = axes.get(axis)
        if axis_json is None:
            axis_json = axes[axis] = orjson.Fragment(orjson.dumps(ratio[part], option=NUMPY))
        b = spec.bounds
        body = {
            "ratio": axis_json,
            "unclipped": unclipped[part],
            "clipped": clipped[part],
            "objective": objective[part],
            "gradient": gradient[part],
            "clip_bounds": {"low": b.low, "high": b.high, "dual_clip": b.dual_clip},
            "point": None if point is None else _point(point),
        }
        bodies.append(orjson.dumps(body, option=NUMPY))
    return bodies


NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _clip_specs_both_signs(q: ClipObjectiveBothSignsQuery) -> tuple[ClipCurveSpec, ClipCurveSpec]:
    positive = _clip_spec(q)
    return positive, dataclasses.replace(positive, advantage=-positive.advantage)


@batched_get(
    "/clip-objective/both-signs",
    ClipObjectiveBothSignsQuery,
    ClipObjectiveBothSignsResponse,
    prepare=_clip_specs_both_signs,
    size=lambda pair: 2 * (pair[0].points + 1),
)
def clip_objective_both_signs(pairs: Sequence[tuple[ClipCurveSpec, ClipCurveSpec]]) -> list[bytes]:
    """``/clip-objective`` for A = +|A| and A = -|A| in one answer (``positive``,
    ``negative``), each exactly what ``/clip-objective`` answers for that advantage: the
    page's clip panel draws both signs side by side from one request instead of two."""
    bodies = clip_objective([spec for pair in pairs for spec in pair])
    return [
        b'{"positive":' + positive + b',"negative":' + negative + b"}"
        for positive, negative in zip(bodies[::2], bodies[1::2], strict=True)
    ]


def _point(p: ClipPoint) -> dict[str, float | bool]:
    """:class:`app.schemas.PointReadout`'s fields (``dataclasses.asdict`` costs ~10x more)."""
    return {
        "ratio": p.ratio,
        "objective": p.objective,
        "gradient": p.gradient,
        "clipped": p.clipped,
    }


@pure_get("/value-loss-curve", ValueCurveQuery, ValueCurveResponse)
def value_curve(q: ValueCurveQuery) -> ValueCurveResponse:
    """Squared error vs prediction: unclipped, seed/CleanRL ``max`` and SB3 ``clipped``."""
    c = value_loss_curve(
        q.returns,
        q.old_value,
        q.clip_range,
        prediction_min=q.prediction_min,
        prediction_max=q.prediction_max,
        points=q.points,
    )
    return ValueCurveResponse(
        prediction=c.prediction.tolist(),
        unclipped=c.unclipped.tolist(),
        clipped_max=c.clipped_max.tolist(),
        clipped_only=c.clipped_only.tolist(),
        clip_low=c.clip_low,
        clip_high=c.clip_high,
    )


@pure_get("/entropy-comparison", EntropyComparisonQuery, EntropyComparisonResponse)
def entropy_cmp(q: EntropyComparisonQuery) -> EntropyComparisonResponse:
    """The seed's comparison: random, peaked, near-uniform and maximum (log V) entropies."""
    if q.vocab_size * q.batch_size > MAX_COMPARISON_ELEMENTS:
        raise PPOInputError(
            "batch_size", f"vocab_size x batch_size must be <= {MAX_COMPARISON_ELEMENTS}"
        )
    cases = entropy_comparison(
        q.vocab_size, q.batch_size, q.seed, q.temperature, q.peak_logit, q.uniform_scale
    )
    out = []
    first_rows = []
    for case in cases.values():
        probs = torch.softmax(case.logits[0] / q.temperature, dim=-1)
        top = torch.sort(probs, descending=True).values[: q.top_k]
        out.append(
            EntropyCaseOut(
                name=case.name,
                description=case.description,
                entropy=case.mean,
                per_row=case.per_row.tolist(),
                example_probs=top.tolist(),
                example_tail_mass=max(0.0, 1.0 - float(top.sum())),
            )
        )
        first_rows.append(case.logits[:1])
    curve = {
        name: entropy_vs_temperature(row, TEMPERATURES).tolist()
        for name, row in zip(cases, first_rows, strict=True)
    }
    return EntropyComparisonResponse(
        vocab_size=q.vocab_size,
        max_entropy=math.log(q.vocab_size),
        cases=out,
        temperature_curve=TemperatureCurve(temperature=TEMPERATURES, entropy=curve),
    )


@pure_get("/kl-drift", KLDriftQuery, KLDriftResponse)
def kl_drift(q: KLDriftQuery) -> KLDriftResponse:
    """k1 / k2 / k3 sample estimates against the exact KL as the policy drifts."""
    drifts = torch.linspace(0.0, q.max_drift, q.steps, dtype=torch.float64)
    d = kl_estimator_drift(q.vocab_size, drifts, q.samples, q.seed)
    return KLDriftResponse(
        drift=d.drift.tolist(),
        true_kl=d.true_kl.tolist(),
        mean={k: v.tolist() for k, v in d.mean.items()},
        std={k: v.tolist() for k, v in d.std.items()},
        samples=q.samples,
        true_gradient=d.true_gradient.tolist(),
        reverse_kl_gradient=d.reverse_kl_gradient.tolist(),
        gradient={k: v.tolist() for k, v in d.gradient.items()},
    )


@pure_get("/loss/sample", SampleLossQuery, SampleLossResponse)
def sample_loss(q: SampleLossQuery) -> SampleLossResponse:
    """The seed's total-loss example on a reproducible batch, as a stacked breakdown."""
    if q.batch_size * q.vocab_size > MAX_COMPARISON_ELEMENTS:
        raise PPOInputError(
            "batch_size", f"batch_size x vocab_size must be <= {MAX_COMPARISON_ELEMENTS}"
        )
    b = seed_example_batch(q.seed, q.batch_size, q.vocab_size)
    conv = get_convention("seed").with_overrides(
        clip_ratio=q.clip_ratio, vf_coef=q.vf_coef, entropy_coef=q.entropy_coef
    )
    res = ppo_total_loss(
        b["policy_logprobs"],
        b["old_logprobs"],
        b["advantages"],
        b["values"],
        b["returns"],
        logits=b["logits"],
        convention=conv,
    )
    return SampleLossResponse(
        breakdown=breakdown(res, conv),
        diagnostics=loss_diagnostics(res),
    )


@pure_get("/objective-curves", ObjectiveCurvesQuery, ObjectiveCurvesResponse)
def objective_family(q: ObjectiveCurvesQuery) -> ObjectiveCurvesResponse:
    """The policy-loss family side by side: per ``policy_loss_mode``, the objective of a
    one-token sequence and its gradient weight ``d objective / d log π`` against the ratio
    (``log π_old = 0``), by autograd through the same code as ``POST /policy-loss``."""
    modes = [m.strip() for m in q.modes.split(",") if m.strip()]
    ratio, curves = objective_curves(
        modes,
        q.advantage,
        epsilon=q.epsilon,
        epsilon_low=q.epsilon_low,
        epsilon_high=q.epsilon_high,
        dual_clip=q.dual_clip,
        sapo_tau_pos=q.sapo_tau_pos,
        sapo_tau_neg=q.sapo_tau_neg,
        cispo_clip=q.cispo_clip,
        ratio_min=q.ratio_min,
        ratio_max=q.ratio_max,
        points=q.points,
    )
    bounds = clip_bounds(q.epsilon, q.epsilon_low, q.epsilon_high, q.dual_clip)
    return ObjectiveCurvesResponse(
        ratio=ratio.tolist(),
        advantage=q.advantage,
        clip_bounds=ClipBoundsOut(low=bounds.low, high=bounds.high, dual_clip=q.dual_clip),
        curves={
            mode: ObjectiveCurveOut(
                objective=finite_list("objective", c.objective),
                gradient_weight=finite_list("gradient_weight", c.gradient_weight),
                band=c.band,
            )
            for mode, c in curves.items()
        },
    )


@pure_get("/aggregation-weights", AggregationWeightsQuery, AggregationWeightsResponse)
def aggregation_weights_route(q: AggregationWeightsQuery) -> AggregationWeightsResponse:
    """Each ``loss_agg_mode``'s weight of one token, and of a whole sequence, for sequences of
    the given lengths: how long and short answers count in the loss."""
    try:
        lengths = [int(x) for x in q.lengths.split(",") if x.strip()]
    except ValueError:
        raise PPOInputError("lengths", "expected comma-separated integers") from None
    table = weights_by_length(
        lengths,
        q.padded_length,
        loss_scale_factor=q.loss_scale_factor,
        count_empty_rows=q.count_empty_rows,
    )
    padded = q.padded_length or max(lengths)
    modes = {
        mode: AggregationModeOut(
            token_weight=finite_list("token_weight", token),
            sequence_weight=finite_list("sequence_weight", sequence),
        )
        for mode, (token, sequence) in table.items()
    }
    return AggregationWeightsResponse(lengths=lengths, padded_length=padded, modes=modes)
