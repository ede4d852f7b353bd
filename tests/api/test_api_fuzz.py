"""Property-based fuzz of every operation in the OpenAPI schema (schemathesis): valid and
invalid inputs must never give a 5xx, every response must match its own schema, and no
response may carry NaN or Infinity (strict JSON cannot)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from api_support import assert_no_non_finite
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.main import create_app
from app.settings import Settings

APP = create_app(
    Settings(heavy_concurrency=1, max_tensor_elements=10_000, lab_max_work=20_000, log_json=False)
)


class _HTTPOnly:
    """Forwards HTTP to ``APP`` and acknowledges lifespan events itself.

    schemathesis starts and stops an ASGI app's lifespan around every test item; on this app
    that would spawn a fresh worker-process pool per operation. The module fixture below runs
    the real lifespan once instead.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await APP(scope, receive, send)
            return
        while True:
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            if message["type"] == "lifespan.shutdown":
                return


schema = schemathesis.openapi.from_asgi("/openapi.json", _HTTPOnly())


@pytest.fixture(scope="module", autouse=True)
def heavy_pools() -> Iterator[None]:
    """The app's own lifespan (heavy pools up, then shut down), once for the module."""
    with TestClient(APP):
        yield


def test_schema_lists_every_contract_endpoint() -> None:
    paths = set(APP.openapi()["paths"])
    contract = {
        "/healthz",
        "/api/v1/clip-objective",
        "/api/v1/loss",
        "/api/v1/policy-loss",
        "/api/v1/value-loss",
        "/api/v1/entropy",
        "/api/v1/entropy-comparison",
        "/api/v1/kl",
        "/api/v1/advantages/gae",
        "/api/v1/advantages/group",
        "/api/v1/analyze",
        "/api/v1/hyperparameters",
    }
    assert contract <= paths


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_no_server_error_and_schema_conformance(case: schemathesis.Case) -> None:
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    content_type = response.headers.get("content-type") or [""]  # lower-case name -> values
    if content_type[0].startswith("application/json"):
        assert_no_non_finite(response.text)
    if response.status_code < 400:
        assert "NaN" not in response.text and "Infinity" not in response.text
