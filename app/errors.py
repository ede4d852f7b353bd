"""Error responses: every failure is JSON in FastAPI's ``{"detail": [...]}`` shape."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.heavy import Overloaded
from ppo_core import PPOInputError

log = logging.getLogger("app.errors")


class RequestInvalid(Exception):
    """Validation errors found away from FastAPI's own parsing (e.g. in a worker process)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors

    def __reduce__(self) -> tuple[type[RequestInvalid], tuple[list[dict[str, Any]]]]:
        return (RequestInvalid, (self.errors,))


def error_item(loc: Sequence[str | int], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def pydantic_errors(errors: Sequence[Any], prefix: str | None = "body") -> list[dict[str, Any]]:
    """Pydantic's error dicts reduced to loc / msg / type.

    The input is never echoed: it may be a large tensor sent under a misspelled name, or a NaN
    that strict JSON cannot even encode.
    """
    items = []
    for e in errors:
        loc = list(e.get("loc", ()))
        msg = str(e.get("msg", "invalid"))
        if e.get("type") == "json_invalid" and "error" in e.get("ctx", {}):
            msg = f"invalid JSON: {e['ctx']['error']}"
        items.append(error_item(loc if prefix is None else [prefix, *loc], msg, e.get("type", "")))
    return items


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into 4xx / 503 JSON responses."""

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": pydantic_errors(exc.errors(), prefix=None)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail: Any = exc.detail
        if not isinstance(detail, list):  # e.g. 404 / 405: wrap in the one error shape
            detail = [error_item([], str(detail), "http_error")]
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(PPOInputError)
    async def on_input_error(request: Request, exc: PPOInputError) -> JSONResponse:
        loc = ["query" if request.method == "GET" else "body", exc.field]
        return JSONResponse(
            {"detail": [error_item(loc, f"{exc.field}: {exc.problem}")]}, status_code=422
        )

    @app.exception_handler(RequestInvalid)
    async def on_invalid(request: Request, exc: RequestInvalid) -> JSONResponse:
        return JSONResponse({"detail": exc.errors}, status_code=422)

    @app.exception_handler(Overloaded)
    async def on_overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return JSONResponse(
            {"detail": [error_item([], exc.message, "overloaded")]},
            status_code=503,
            headers={"Retry-After": str(exc.retry_after)},
        )

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": [error_item([], "internal error", "internal")]}, status_code=500
        )
