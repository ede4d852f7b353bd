"""Query strings parsed by one pydantic model per endpoint, for the hot GET curve endpoints.

FastAPI resolves each ``Query(...)`` parameter on its own, which costs about 50 us per request
for the clip objective's nine parameters, as much as the curve's autograd pass; one
``model_validate`` of the query dict costs a few. The models' JSON schemas still document
every parameter (name, bounds, default, description) in OpenAPI via :func:`openapi_query`, and
errors keep FastAPI's shape: a 422 with ``loc = ["query", name]``.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request

from app.errors import RequestInvalid, pydantic_errors


class QueryModel(BaseModel):
    """Base of the query models: an unknown parameter is a 422 naming it (as unknown JSON
    fields are), NaN and infinities are refused, and instances are frozen (their values key
    the response cache)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


Q = TypeVar("Q", bound=QueryModel)


def parse_query(request: Request, model: type[Q]) -> Q:
    """The request's query as ``model``; a 422 naming each bad parameter otherwise. A repeated
    parameter counts with its last value, as in FastAPI."""
    # Starlette's `request.query_params` parses the same way (latin-1, `+` as space, blank
    # values kept) into a multi-dict first: twice the time of the plain parse.
    raw = request.scope["query_string"].decode("latin-1")
    try:
        return model.model_validate(dict(parse_qsl(raw, keep_blank_values=True)))
    except ValidationError as exc:
        raise RequestInvalid(pydantic_errors(exc.errors(), prefix="query")) from None


def openapi_query(model: type[QueryModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring each field of ``model`` as a query parameter."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "description": description,
                "schema": prop,
            }
        )
    return {"parameters": parameters}
