"""The training lab: vanilla PG vs PPO vs PPO + KL on a toy language policy.

``POST /api/v1/lab/run`` returns every series at once; ``GET /api/v1/lab/stream`` sends one
server-sent event per iteration as it is computed, stops when the client goes away, and is
bounded like every heavy request (admission, total work, timeout).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from typing import Annotated, Any, Literal, get_args

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from app.deps import HeavyDep, SettingsDep
from ppo_core import PPOInputError
from ppo_core.lab import (
    MAX_BATCH_SIZE,
    MAX_ENTROPY_COEF,
    MAX_EPOCHS,
    MAX_ITERATIONS,
    MAX_KL_COEF,
    MAX_LR,
    MAX_SEED,
    MAX_SEQ_LEN,
    MAX_TARGET_KL,
    MIN_BATCH_SIZE,
    MIN_SEQ_LEN,
    PRESETS,
    LabConfig,
    LabMetrics,
    LabStep,
    iterate_lab,
    run_lab,
)

router = APIRouter(prefix="/api/v1/lab", tags=["lab"])

AlgorithmName = Literal["pg", "ppo", "ppo-kl"]
PresetName = Literal["default", "high learning rate", "no entropy bonus", "with KL penalty"]
WORK_FORMULA = "iterations x epochs x batch_size x seq_len x algorithms"


class LabKnobs(BaseModel):
    """Lab knobs; omitted ones come from the preset (default: "default")."""

    algorithms: list[AlgorithmName] = Field(
        ["pg", "ppo", "ppo-kl"], min_length=1, max_length=3, description="Trainers to run."
    )
    preset: PresetName = Field("default", description="Starting knobs; any knob overrides.")
    iterations: int | None = Field(None, ge=1, le=MAX_ITERATIONS, description="Iterations.")
    lr: float | None = Field(None, gt=0, le=MAX_LR, description="Plain-SGD learning rate.")
    epochs: int | None = Field(None, ge=1, le=MAX_EPOCHS, description="Updates per batch.")
    batch_size: int | None = Field(
        None, ge=MIN_BATCH_SIZE, le=MAX_BATCH_SIZE, description="Sentences per rollout."
    )
    clip_ratio: float | None = Field(None, gt=0, lt=1, description="PPO epsilon.")
    entropy_coef: float | None = Field(None, ge=0, le=MAX_ENTROPY_COEF, description="Bonus.")
    kl_coef: float | None = Field(None, ge=0, le=MAX_KL_COEF, description="KL weight (ppo-kl).")
    target_kl: float | None = Field(
        None, gt=0, le=MAX_TARGET_KL, description="Adaptive KL target; omitted/null = fixed."
    )
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Seed (same seed, same run).")
    seq_len: int | None = Field(
        None, ge=MIN_SEQ_LEN, le=MAX_SEQ_LEN, description="Words per sentence."
    )

    def config(self, max_work: int) -> tuple[LabConfig, list[AlgorithmName]]:
        """The validated config, refusing runs over the server's work budget (422)."""
        algorithms = list(dict.fromkeys(self.algorithms))
        overrides = {
            name: getattr(self, name)
            for name in self.model_fields_set
            if name not in ("algorithms", "preset")
            and (getattr(self, name) is not None or name == "target_kl")
        }
        base = asdict(PRESETS[self.preset])
        config = LabConfig(**{**base, **overrides})
        work = (
            config.iterations * config.epochs * config.batch_size * config.seq_len * len(algorithms)
        )
        if work > max_work:
            raise PPOInputError(
                "iterations",
                f"run too large: {WORK_FORMULA} = {work} exceeds the limit of {max_work}",
            )
        return config, algorithms


class SampleOut(BaseModel):
    iteration: int
    sentences: list[str]


class SeriesOut(BaseModel):
    reward: list[float] = Field(description="Mean reward of each rollout.")
    kl_old: list[float] = Field(description="Exact KL(new || old) per word after the update.")
    kl_ref: list[float] = Field(description="Exact KL(policy || reference) per word.")
    entropy: list[float] = Field(description="Entropy per word, nats.")
    clip_fraction: list[float] = Field(description="Share of words where the clip is taken.")
    approx_kl: list[float] = Field(description="k1 approx KL of the update.")
    kl_coef: list[float] = Field(description="KL coefficient used (ppo-kl).")
    samples: list[SampleOut] = Field(description="Decoded sentences at checkpoints.")


class LabRunResponse(BaseModel):
    config: dict[str, Any]
    algorithms: list[str]
    runs: dict[str, SeriesOut]


def _metrics(m: LabMetrics) -> dict[str, Any]:
    return {
        "reward": m.mean_reward,
        "kl_old": m.update_kl,
        "kl_ref": m.ref_kl,
        "entropy": m.entropy,
        "clip_fraction": m.clip_fraction,
        "approx_kl": m.approx_kl,
        "kl_coef": m.kl_coef,
        "samples": list(m.samples),
    }


class KnobLimits(BaseModel):
    min: float = Field(description="Smallest value accepted.")
    max: float = Field(description="Largest value accepted.")
    min_exclusive: bool = Field(False, description="The minimum itself is refused.")
    max_exclusive: bool = Field(False, description="The maximum itself is refused.")
    integer: bool = False


class LabPresetsResponse(BaseModel):
    presets: dict[str, dict[str, Any]] = Field(
        description="Every preset's full knob set (the page's preset buttons read these)."
    )
    limits: dict[str, KnobLimits] = Field(description="Each knob's accepted range.")
    algorithms: list[str]
    max_work: int = Field(description="This server's budget for one run (422 beyond it).")
    work: str = Field(description="How a run's work is counted against ``max_work``.")


def _limits() -> dict[str, KnobLimits]:
    """The range of every numeric knob, read from ``LabKnobs``' own field constraints."""
    out: dict[str, KnobLimits] = {}
    for name, info in LabKnobs.model_fields.items():
        bounds: dict[str, Any] = {}
        for meta in info.metadata:
            for attr, key, exclusive in (
                ("ge", "min", False),
                ("gt", "min", True),
                ("le", "max", False),
                ("lt", "max", True),
            ):
                if getattr(meta, attr, None) is not None:
                    bounds[key] = getattr(meta, attr)
                    bounds[f"{key}_exclusive"] = exclusive
        if "min" in bounds and "max" in bounds:
            integer = int in getattr(info.annotation, "__args__", (info.annotation,))
            out[name] = KnobLimits(**bounds, integer=integer)
    return out


@router.get("/presets", response_model=LabPresetsResponse)
async def presets(settings: SettingsDep) -> LabPresetsResponse:
    """The lab's named presets (``ppo_core.lab.PRESETS``, the one source the page reads), each
    knob's range, and this server's work budget, so a client can say before a run whether it
    is too large."""
    return LabPresetsResponse(
        presets={name: asdict(config) for name, config in PRESETS.items()},
        limits=_limits(),
        algorithms=list(get_args(AlgorithmName)),
        max_work=settings.lab_max_work,
        work=WORK_FORMULA,
    )


@router.post("/run", response_model=LabRunResponse)
async def run(body: LabKnobs, settings: SettingsDep, heavy: HeavyDep) -> LabRunResponse:
    """Train each algorithm from the same seed and return every per-iteration series."""
    config, algorithms = body.config(settings.lab_max_work)
    series = await heavy.in_thread(run_lab, config, algorithms)
    return LabRunResponse(
        config=asdict(config),
        algorithms=list(algorithms),
        runs={
            name: SeriesOut(
                reward=s.mean_reward,
                kl_old=s.update_kl,
                kl_ref=s.ref_kl,
                entropy=s.entropy,
                clip_fraction=s.clip_fraction,
                approx_kl=s.approx_kl,
                kl_coef=s.kl_coef,
                samples=[SampleOut(iteration=i, sentences=list(t)) for i, t in s.samples.items()],
            )
            for name, s in series.items()
        },
    )


def _event(kind: str, data: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Events: start, step (one per iteration), done or error.",
        }
    },
)
async def stream(
    request: Request,
    knobs: Annotated[LabKnobs, Query()],
    settings: SettingsDep,
    runner: HeavyDep,
) -> StreamingResponse:
    """Server-sent events: ``start`` (config), one ``step`` per iteration with every
    algorithm's metrics, then ``done`` — or ``error`` if the run exceeds the time limit."""
    config, algorithms = knobs.config(settings.lab_max_work)
    runner.check_capacity()  # 503 now, before the stream starts, when the server is full

    async def events() -> AsyncIterator[bytes]:
        async with runner.admit():
            async for chunk in run_steps():
                yield chunk

    async def run_steps() -> AsyncIterator[bytes]:
        steps: Iterator[LabStep] = iterate_lab(config, algorithms)
        pending: asyncio.Future[LabStep | None] | None = None
        started = time.monotonic()
        try:
            yield _event("start", {"config": asdict(config), "algorithms": algorithms})
            while True:
                if time.monotonic() - started > settings.heavy_timeout_s:
                    yield _event(
                        "error",
                        {"detail": f"run took longer than {settings.heavy_timeout_s:g} s; stopped"},
                    )
                    return
                pending = runner.step(next, steps, None)
                # Shielded: if the client leaves, the step still finishes on its thread and
                # `finally` closes the trainer after it, never while it runs.
                step = await asyncio.shield(pending)
                pending = None
                if step is None:
                    break
                yield _event(
                    "step",
                    {
                        "iteration": step.iteration,
                        "iterations": config.iterations,
                        "metrics": {name: _metrics(m) for name, m in step.metrics.items()},
                    },
                )
            yield _event("done", {"iterations": config.iterations})
        finally:
            # The client may have gone: stop the generator once any running step is done.
            if pending is not None and not pending.done():
                pending.add_done_callback(lambda _: steps.close())  # type: ignore[attr-defined]
            else:
                steps.close()  # type: ignore[attr-defined]

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
