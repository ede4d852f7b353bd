"""Bad input, one test per case: a 4xx JSON whose first error names the field (``loc``) and
states the problem (``msg``); never a 500, never a silent NaN."""

from __future__ import annotations

import json

import pytest
from api_support import assert_error, post_text
from fastapi.testclient import TestClient

from ppo_core.conventions import CONVENTIONS

POLICY = "/api/v1/policy-loss"
OK_POLICY = {"logprobs": [0.0, 0.0], "old_logprobs": [0.0, 0.0], "advantages": [1.0, -1.0]}


# --- tensors ------------------------------------------------------------------------------


def test_shape_mismatch_between_fields(client: TestClient) -> None:
    r = client.post(POLICY, json=OK_POLICY | {"old_logprobs": [0.0, 0.0, 0.0]})
    assert_error(
        r, 422, ["body", "old_logprobs"], "old_logprobs: shape [3] does not match logprobs [2]"
    )


def test_shape_mismatch_on_loss_logits(client: TestClient) -> None:
    body = {k: [0.0, 0.0] for k in ("policy_logprobs", "old_logprobs", "advantages")}
    body |= {"values": [0.0, 0.0], "returns": [0.0, 0.0], "logits": [[0.0, 0.0]] * 3}
    r = client.post("/api/v1/loss", json=body)
    assert_error(
        r, 422, ["body", "logits"], "logits: leading shape [3] does not match logprobs [2]"
    )


def test_mask_of_wrong_shape(client: TestClient) -> None:
    r = client.post(POLICY, json=OK_POLICY | {"mask": [1, 1, 0]})
    assert_error(r, 422, ["body", "mask"], "mask: shape [3] does not match [2]")


def test_mask_not_zero_one(client: TestClient) -> None:
    r = client.post(POLICY, json=OK_POLICY | {"mask": [1, 0.5]})
    assert_error(r, 422, ["body", "mask"], "mask: values must be 0 or 1")


def test_mask_selecting_nothing(client: TestClient) -> None:
    r = client.post("/api/v1/kl", json={"logprobs": [0.0], "ref_logprobs": [0.0], "mask": [0]})
    assert_error(r, 422, ["body", "mask"], "mask: selects no token (all zeros)")


@pytest.mark.parametrize(
    ("literal", "shown"), [("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf")]
)
def test_non_finite_in_tensor(client: TestClient, literal: str, shown: str) -> None:
    text = json.dumps(OK_POLICY | {"advantages": [[1.0, 2.0], [3.0, float(literal)]]})
    assert literal in text  # Python's json.dumps writes the bare literal
    r = post_text(client, POLICY, text)
    assert_error(
        r, 422, ["body", "advantages"], f"advantages: non-finite value {shown} at index [1, 1]"
    )


def test_non_finite_knob(client: TestClient) -> None:
    r = post_text(client, POLICY, json.dumps(OK_POLICY | {"clip_ratio": float("nan")}))
    assert_error(r, 422, ["body", "clip_ratio"], "Input should be a finite number")


@pytest.mark.parametrize(
    ("value", "msg"),
    [
        (["a", 1.0], "logprobs: expected a number, got str 'a' at index [0]"),
        ([1.0, None], "logprobs: expected a number, got null at index [1]"),
        ([[1.0, {"x": 1}]], "logprobs: expected a number, got dict \"{'x': 1}\" at index [0, 1]"),
        ({"a": 1}, "logprobs: expected a list of numbers, got dict"),
        ("0.0, 0.0", "logprobs: expected a list of numbers, got str"),
        ([[1.0, 2.0], [3.0]], "logprobs: rows have different lengths (ragged)"),
    ],
)
def test_garbage_in_tensor(client: TestClient, value: object, msg: str) -> None:
    r = client.post(POLICY, json=OK_POLICY | {"logprobs": value})
    assert_error(r, 422, ["body", "logprobs"], msg)


def test_lists_nested_too_deep(client: TestClient) -> None:
    deep = "[" * 500 + "1.0" + "]" * 500  # deeper than NumPy (64-D) or a naive recursion goes
    text = json.dumps(OK_POLICY).replace('"logprobs": [0.0, 0.0]', f'"logprobs": {deep}')
    r = post_text(client, POLICY, text)
    assert_error(
        r, 422, ["body", "logprobs"], "logprobs: lists nested more than 2 deep at index [0, 0]"
    )


def test_integer_beyond_float64(client: TestClient) -> None:
    text = json.dumps(OK_POLICY | {"advantages": [1, 10**400]})
    r = post_text(client, POLICY, text)
    assert_error(
        r, 422, ["body", "advantages"], "advantages: integer too large for float64 at index [1]"
    )


@pytest.mark.parametrize("empty", [[], [[]]])
def test_empty_tensor(client: TestClient, empty: list[object]) -> None:
    r = client.post(POLICY, json=OK_POLICY | {"logprobs": empty})
    assert_error(r, 422, ["body", "logprobs"], "logprobs: is empty")


def test_3d_where_2d_expected(client: TestClient) -> None:
    r = client.post(POLICY, json=OK_POLICY | {"logprobs": [[[0.0, 0.0]], [[0.0, 0.0]]]})
    assert_error(
        r, 422, ["body", "logprobs"], "logprobs: expected 1-D or 2-D, got 3-D shape [2, 1, 2]"
    )


def test_4d_logits(client: TestClient) -> None:
    r = client.post("/api/v1/entropy", json={"logits": [[[[0.0, 1.0]]]]})
    assert_error(
        r, 422, ["body", "logits"], "logits: expected 1-D or 2-D or 3-D, got 4-D shape [1, 1, 1, 2]"
    )


def test_group_ids_not_integers(client: TestClient) -> None:
    r = client.post("/api/v1/advantages/group", json={"rewards": [1.0, 2.0], "group_ids": [0, 0.5]})
    assert_error(
        r, 422, ["body", "group_ids"], "group_ids: expected an integer at index [1], got 0.5"
    )


# --- knobs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eps", "msg"), [(0.0, "Input should be greater than 0"), (1.0, "Input should be less than 1")]
)
def test_epsilon_out_of_range_body(client: TestClient, eps: float, msg: str) -> None:
    r = client.post(POLICY, json=OK_POLICY | {"clip_ratio": eps})
    assert_error(r, 422, ["body", "clip_ratio"], msg)


@pytest.mark.parametrize(
    ("eps", "msg"), [(-0.1, "Input should be greater than 0"), (1.5, "Input should be less than 1")]
)
def test_epsilon_out_of_range_query(client: TestClient, eps: float, msg: str) -> None:
    r = client.get("/api/v1/clip-objective", params={"epsilon": eps})
    assert_error(r, 422, ["query", "epsilon"], msg)


def test_dual_clip_not_above_one_body(client: TestClient) -> None:
    r = client.post(POLICY, json=OK_POLICY | {"dual_clip": 1.0})
    assert_error(r, 422, ["body", "dual_clip"], "Input should be greater than 1")


def test_dual_clip_not_above_one_query(client: TestClient) -> None:
    r = client.get("/api/v1/clip-objective", params={"dual_clip": 0.5})
    assert_error(r, 422, ["query", "dual_clip"], "Input should be greater than 1")


@pytest.mark.parametrize(
    ("points", "msg"),
    [
        (10_001, "Input should be less than or equal to 10000"),
        (1, "Input should be greater than or equal to 2"),
    ],
)
def test_clip_objective_points_beyond_limit(client: TestClient, points: int, msg: str) -> None:
    r = client.get("/api/v1/clip-objective", params={"points": points})
    assert_error(r, 422, ["query", "points"], msg)


def test_clip_objective_empty_ratio_range(client: TestClient) -> None:
    r = client.get("/api/v1/clip-objective", params={"ratio_min": 1.0, "ratio_max": 1.0})
    assert_error(
        r, 422, ["query", "ratio_max"], "ratio_max: must be greater than ratio_min (1.0), got 1.0"
    )


def test_unknown_convention(client: TestClient) -> None:
    r = client.post(POLICY, json=OK_POLICY | {"convention": "ppo2"})
    assert_error(
        r,
        422,
        ["body", "convention"],
        "Input should be 'seed', 'cleanrl', 'sb3', 'verl', 'openrlhf', 'trl', "
        + ", ".join(f"'{name}'" for name in list(CONVENTIONS)[6:-1])
        + f" or '{list(CONVENTIONS)[-1]}'",
    )


def test_unknown_loss_agg_mode(client: TestClient) -> None:
    r = client.post(POLICY, json=OK_POLICY | {"loss_agg_mode": "sum"})
    assert_error(
        r,
        422,
        ["body", "loss_agg_mode"],
        "Input should be 'token-mean', 'token-sum', 'seq-mean-token-mean', "
        "'seq-mean-token-sum' or 'seq-mean-token-sum-norm'",
    )


def test_unknown_kl_estimator(client: TestClient) -> None:
    body = {"logprobs": [0.0], "ref_logprobs": [0.0], "estimator": "k4"}
    r = client.post("/api/v1/kl", json=body)
    assert_error(r, 422, ["body", "estimator"], "Input should be 'k1', 'k2', 'k3', 'abs' or 'k3+'")


def test_unknown_field_is_not_echoed(client: TestClient) -> None:
    r = client.post(POLICY, json=OK_POLICY | {"logprob": list(range(1000))})
    assert_error(r, 422, ["body", "logprob"], "Extra inputs are not permitted")
    assert len(r.content) < 200


def test_value_clip_without_old_values(client: TestClient) -> None:
    body = {"values": [1.0], "returns": [0.0], "clip_range": 0.2}
    r = client.post("/api/v1/value-loss", json=body)
    assert_error(r, 422, ["body", "old_values"], "old_values: required when clip_range is set")


def test_result_overflow_is_refused_not_nan(client: TestClient) -> None:
    # r saturates at 1.8e308 (log-ratio 1000, no clamp); -A·r with A = -2 overflows float64.
    body = {"logprobs": [1000.0], "old_logprobs": [0.0], "advantages": [-2.0]}
    r = client.post(POLICY, json=body)
    assert_error(r, 422, ["body", "loss"], "loss: result is inf: ...")


def test_entropy_temperature_overflow(client: TestClient) -> None:
    r = client.post("/api/v1/entropy", json={"logits": [1e15, 0.0], "temperature": 1e-300})
    assert_error(r, 422, ["body", "temperature"], "temperature: logits / temperature overflows ...")


# --- bodies -------------------------------------------------------------------------------


def test_malformed_json(client: TestClient) -> None:
    r = post_text(client, POLICY, '{"logprobs": [0.0,')
    assert_error(r, 422, ["body", 18], "invalid JSON: Expecting value")


def test_missing_field(client: TestClient) -> None:
    r = client.post(POLICY, json={"logprobs": [0.0], "old_logprobs": [0.0]})
    assert_error(r, 422, ["body", "advantages"], "Field required")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_analyze_wrong_content_type(client: TestClient, content_type: str) -> None:
    r = client.post(
        "/api/v1/analyze", content=json.dumps(OK_POLICY), headers={"content-type": content_type}
    )
    assert_error(
        r,
        422,
        ["header", "content-type"],
        "expected application/json or multipart/form-data",
    )


def test_magnitude_beyond_the_limit_is_refused(client: TestClient) -> None:
    body = {"rewards": [1e300, 1.0, 2.0], "group_ids": [0, 0, 0]}
    r = client.post("/api/v1/advantages/group", json=body)
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["body", "rewards"]
    assert "beyond the limit of ±1e+15" in detail["msg"]
