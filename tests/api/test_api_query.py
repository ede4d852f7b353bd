"""The GET curve endpoints parse their query with one pydantic model each (app.query): the
parameters stay documented in OpenAPI and bad values still get FastAPI's 422 shape."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.routes.curves import CACHEABLE_PATHS

CLIP = "/api/v1/clip-objective"


def parameters(client: TestClient, path: str) -> dict[str, dict[str, Any]]:
    spec = client.get("/openapi.json").json()
    return {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}


def test_every_query_parameter_is_documented_with_its_bounds(client: TestClient) -> None:
    params = parameters(client, CLIP)
    assert list(params) == [
        "epsilon",
        "advantage",
        "ratio_min",
        "ratio_max",
        "points",
        "epsilon_low",
        "epsilon_high",
        "dual_clip",
        "ratio",
    ]
    eps = params["epsilon"]
    assert eps["in"] == "query" and eps["required"] is False
    assert eps["description"] == "Symmetric clip epsilon."
    assert eps["schema"] == {
        "type": "number",
        "default": 0.2,
        "exclusiveMinimum": 0.0,
        "exclusiveMaximum": 1.0,
    }
    assert params["points"]["schema"]["maximum"] == 10_000
    dual = params["dual_clip"]["schema"]
    assert {"type": "null"} in dual["anyOf"]
    assert {"type": "number", "exclusiveMinimum": 1.0, "maximum": 100.0} in dual["anyOf"]
    for path in CACHEABLE_PATHS:
        for name, p in parameters(client, path).items():
            assert p["description"], (path, name)
            # A default, or "omit it" (nullable, no default: the knob is off).
            assert "default" in p["schema"] or {"type": "null"} in p["schema"]["anyOf"]


@pytest.mark.parametrize(
    ("query", "field", "kind"),
    [
        ("epsilon=1", "epsilon", "less_than"),
        ("epsilon=nan", "epsilon", "finite_number"),
        ("advantage=inf", "advantage", "finite_number"),
        ("points=abc", "points", "int_parsing"),
        ("points=2.5", "points", "int_parsing"),
        ("points=1", "points", "greater_than_equal"),
        ("dual_clip=1", "dual_clip", "greater_than"),
        ("ratio=-0.5", "ratio", "greater_than_equal"),
    ],
)
def test_bad_query_values_name_the_parameter(
    client: TestClient, query: str, field: str, kind: str
) -> None:
    r = client.get(f"{CLIP}?{query}")
    assert r.status_code == 422
    (item,) = r.json()["detail"]
    assert item["loc"] == ["query", field]
    assert item["type"] == kind
    assert item["msg"]


def test_all_bad_parameters_are_reported_at_once(client: TestClient) -> None:
    r = client.get(f"{CLIP}?epsilon=2&points=0&advantage=x")
    assert r.status_code == 422
    locs = sorted(tuple(item["loc"]) for item in r.json()["detail"])
    assert locs == [("query", "advantage"), ("query", "epsilon"), ("query", "points")]


def test_unknown_parameters_are_refused_and_the_last_repeat_wins(client: TestClient) -> None:
    plain = client.get(f"{CLIP}?epsilon=0.3&points=5").json()
    r = client.get(f"{CLIP}?epsilon=0.3&points=5&colour=blue")
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {
            "loc": ["query", "colour"],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    ]
    assert client.get(f"{CLIP}?epsilon=0.9&epsilon=0.3&points=5").json() == plain
    assert plain["clip_bounds"]["high"] == pytest.approx(1.3)


def test_every_curve_endpoint_refuses_a_bad_value(client: TestClient) -> None:
    bad = {
        "/api/v1/clip-objective": "epsilon=0",
        "/api/v1/clip-objective/both-signs": "advantage=0",
        "/api/v1/value-loss-curve": "clip_range=0",
        "/api/v1/entropy-comparison": "vocab_size=1",
        "/api/v1/kl-drift": "steps=1",
        "/api/v1/loss/sample": "clip_ratio=1",
        "/api/v1/objective-curves": "ratio_min=0",
        "/api/v1/aggregation-weights": "padded_length=0",
    }
    assert set(bad) == CACHEABLE_PATHS
    for path, query in bad.items():
        r = client.get(f"{path}?{query}")
        assert r.status_code == 422, path
        assert r.json()["detail"][0]["loc"] == ["query", query.split("=")[0]], path
