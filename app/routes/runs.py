"""The run report: ``POST /api/v1/runs/report`` (a training log in, canonical metrics and
findings out) and ``GET /api/v1/runs/metric-map`` (every library's names, as data)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request

from app.deps import HeavyDep, SettingsDep
from app.multipart import read_form
from app.runs.formats import FORMATS
from app.runs.metric_map import ALIASES, CANONICAL
from app.runs.report import build_report
from app.schemas import ErrorResponse, MetricMapResponse, RunReportResponse
from ppo_core import PPOInputError

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])

_METRIC_MAP = MetricMapResponse(
    canonical={name: asdict(c) for name, c in CANONICAL.items()},
    aliases=[asdict(a) for a in ALIASES],
)


@router.get("/metric-map", response_model=MetricMapResponse)
async def metric_map() -> MetricMapResponse:
    """Every canonical metric (meaning, formula, the panel that teaches it) and every
    library's logged name that maps onto it, with the formula that library uses."""
    return _METRIC_MAP


@router.post(
    "/report",
    response_model=RunReportResponse,
    responses={413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "format": {"type": "string", "enum": list(FORMATS)},
                        },
                        "required": ["file"],
                    }
                }
            },
        }
    },
)
async def report(request: Request, settings: SettingsDep, heavy: HeavyDep) -> Any:
    """Read a training run's metric log (verl JSON lines or console text, TRL
    ``trainer_state.json``, TensorBoard events, CSV with a step column; ``format`` overrides
    the detection), map its metrics onto canonical names and diagnose the run. Nothing is
    stored: the report is computed for this request."""
    heavy.check_capacity()
    form = await read_form(request, max_file_bytes=settings.runs_max_bytes, max_fields=4)
    upload = form.files.get("file")
    if upload is None:
        raise PPOInputError("file", "field required (a log file)")
    fmt = form.fields.get("format", "").strip() or None
    return await heavy.in_process_with_data(build_report, upload.data, upload.filename, fmt)
