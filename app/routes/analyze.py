"""``POST /api/v1/analyze``: a whole rollout batch, as JSON or as ``.npy`` uploads.

The body is read here (async, bounded by the body-size middleware) and handed to a worker
process, as received, that joins, parses, validates and computes, so a 1M-token batch never
stalls the event loop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.analysis import TENSOR_FIELDS, analyze_json, analyze_npy
from app.deps import HeavyDep, SettingsDep
from app.errors import RequestInvalid, error_item
from app.multipart import read_form
from app.schemas import AnalyzeRequest, AnalyzeResponse, ErrorResponse
from app.tensors import JsonFieldCounter
from ppo_core.conventions import CONVENTIONS

router = APIRouter(prefix="/api/v1", tags=["analyze"])

_CONVENTION_DOC = "\n".join(
    f"- `{c.name}` ({c.library}): `{c.formula()}`. {c.notes}" for c in CONVENTIONS.values()
)

_multipart_schema = {
    "type": "object",
    "properties": {
        **{name: {"type": "string", "format": "binary"} for name in TENSOR_FIELDS},
        **{
            name: {"type": "string"}
            for name in AnalyzeRequest.model_fields
            if name not in TENSOR_FIELDS
        },
    },
    "required": ["logprobs", "old_logprobs"],
}


@router.post(
    "/analyze",
    response_model=AnalyzeResponse,
    responses={
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": AnalyzeRequest.model_json_schema()},
                "multipart/form-data": {"schema": _multipart_schema},
            },
        }
    },
    description="Loss breakdown, every diagnostic and histograms for a rollout batch. "
    "Send JSON (`AnalyzeRequest`) or multipart with one `.npy` file per tensor field "
    "(never unpickled) and knobs as text fields. Conventions:\n" + _CONVENTION_DOC,
)
async def analyze(request: Request, settings: SettingsDep, runner: HeavyDep) -> Any:
    runner.check_capacity()  # a busy server answers 503 before reading a large body
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        files, fields = await _read_form(request, settings.max_body_bytes)
        return await runner.in_process(analyze_npy, files, fields, settings.max_tensor_elements)
    if content_type.split(";")[0].strip() not in ("application/json", ""):
        raise RequestInvalid(
            [
                error_item(
                    ["header", "content-type"],
                    "expected application/json or multipart/form-data",
                    "content_type",
                )
            ]
        )
    # The body goes to the worker as the chunks received, joined there: joining 100 MB here
    # would hold the event loop for ~50 ms. (Pickling for the worker happens on the executor's
    # own thread, whole body or list alike.)
    # Each chunk is scanned as it arrives: a tensor over the element limit is refused without
    # reading the rest of the body (JsonFieldCounter), not seconds later after parsing it.
    counter = JsonFieldCounter(frozenset(TENSOR_FIELDS), settings.max_tensor_elements)
    chunks = []
    async for chunk in request.stream():
        if chunk:
            counter.feed(chunk)
            chunks.append(chunk)
    return await runner.in_process(analyze_json, chunks, settings.max_tensor_elements)


async def _read_form(request: Request, max_bytes: int) -> tuple[dict[str, bytes], dict[str, str]]:
    form = await read_form(
        request, max_file_bytes=max_bytes, max_files=len(TENSOR_FIELDS), max_fields=64
    )
    files = {name: bytes(upload.data) for name, upload in form.files.items()}
    fields = {
        name: value
        for name, value in form.fields.items()
        if value.strip().lower() not in ("", "null", "none")
    }
    return files, fields
