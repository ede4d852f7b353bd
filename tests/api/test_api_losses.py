"""POST /loss, /policy-loss, /value-loss, /entropy, /kl: hand-checked bodies and agreement
with ppo_core on the same tensors."""

from __future__ import annotations

import math

import pytest
import torch
from api_support import approx, as_lists, convention_json
from fastapi.testclient import TestClient

from ppo_core import (
    compute_ppo_total_loss,
    entropy_from_logits,
    kl_estimate,
    policy_loss,
    seed_example_batch,
    value_loss,
)

LN2 = math.log(2.0)


# --- /loss: the seed's compute_ppo_total_loss -----------------------------------------------


def test_loss_hand_checked(client: TestClient) -> None:
    # ratio 1, A = 1: policy -1; (V - R)^2 = 1; uniform logits over 4: H = ln 4.
    body = {
        "policy_logprobs": [0.0, 0.0],
        "old_logprobs": [0.0, 0.0],
        "advantages": [1.0, 1.0],
        "values": [0.0, 0.0],
        "returns": [1.0, 1.0],
        "logits": [[0.0] * 4, [0.0] * 4],
    }
    r = client.post("/api/v1/loss", json=body)
    assert r.status_code == 200, r.text
    zero_diag = dict.fromkeys(
        ["clip_fraction", "clip_fraction_lower", "ratio_outside_fraction"], 0.0
    ) | dict.fromkeys(["approx_kl", "approx_kl_k2", "approx_kl_k3"], 0.0)
    assert r.json() == approx(
        {
            "total_loss": -1.0 + 0.5 * 1.0 - 0.01 * math.log(4),
            "policy_loss": -1.0,
            "value_loss": 1.0,
            "entropy": math.log(4),
            "diagnostics": zero_diag
            | {"ratio_min": 1.0, "ratio_mean": 1.0, "ratio_max": 1.0, "explained_variance": None},
        }
    )


@pytest.mark.parametrize(
    ("clip_ratio", "vf_coef", "entropy_coef"), [(0.2, 0.5, 0.01), (0.1, 1.0, 0.2)]
)
def test_loss_equals_seed_function(
    client: TestClient, clip_ratio: float, vf_coef: float, entropy_coef: float
) -> None:
    batch = {k: v.double() for k, v in seed_example_batch(3, batch_size=12, vocab_size=7).items()}
    knobs = {"clip_ratio": clip_ratio, "vf_coef": vf_coef, "entropy_coef": entropy_coef}
    r = client.post("/api/v1/loss", json=as_lists(batch) | knobs)
    assert r.status_code == 200, r.text
    expected = compute_ppo_total_loss(**batch, **knobs)
    got = r.json()
    for key, value in expected.items():
        assert got[key] == pytest.approx(float(value), rel=1e-12), key
    assert got["diagnostics"]["ratio_max"] == pytest.approx(
        float(torch.exp(batch["policy_logprobs"] - batch["old_logprobs"]).max()), rel=1e-12
    )


# --- /policy-loss -------------------------------------------------------------------------


def test_policy_loss_hand_checked(client: TestClient) -> None:
    # r = 1.5 (A = 1) clips to 1.2; r = 0.5 (A = -1) clips to 0.8: losses -1.2 and 0.8.
    lr = [math.log(1.5), math.log(0.5)]
    body = {"logprobs": lr, "old_logprobs": [0.0, 0.0], "advantages": [1.0, -1.0]}
    r = client.post("/api/v1/policy-loss", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == approx(
        {
            "loss": -0.2,
            "per_token_loss": [-1.2, 0.8],
            "clip_fraction": 1.0,
            "clip_fraction_lower": 0.0,
            "ratio_outside_fraction": 1.0,
            "approx_kl": -(lr[0] + lr[1]) / 2,
            "approx_kl_k2": (lr[0] ** 2 + lr[1] ** 2) / 4,
            "approx_kl_k3": ((0.5 - lr[0]) + (-0.5 - lr[1])) / 2,
            "ratio_min": 0.5,
            "ratio_mean": 1.0,
            "ratio_max": 1.5,
            # token-mean over 2 tokens; both clipped, so no gradient reaches either.
            "logprob_gradient": [0.0, 0.0],
            "ratio": [1.5, 0.5],
            "rollout_weights": None,
            "rollout_correction": None,
            "policy_loss_mode": "vanilla",
            "convention": convention_json("seed"),
        }
    )


@pytest.mark.parametrize(
    ("convention", "knobs", "per_token", "lower"),
    [
        ("seed", {}, 5.0, 0.0),
        ("cleanrl", {}, 5.0, 0.0),
        ("verl", {}, 3.0, 1.0),  # dual clip c = 3 bounds -A r = 5 at -c A = 3
        ("verl", {"dual_clip": None}, 5.0, 0.0),  # explicit null turns it off
        ("seed", {"dual_clip": 2.0}, 2.0, 1.0),
    ],
)
def test_policy_loss_conventions(
    client: TestClient,
    convention: str,
    knobs: dict[str, float | None],
    per_token: float,
    lower: float,
) -> None:
    body = {"logprobs": [math.log(5.0)], "old_logprobs": [0.0], "advantages": [-1.0]}
    r = client.post("/api/v1/policy-loss", json=body | {"convention": convention} | knobs)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["per_token_loss"] == [pytest.approx(per_token)]
    assert got["loss"] == pytest.approx(per_token)
    assert got["clip_fraction_lower"] == lower
    assert got["convention"] == convention_json(convention, **knobs)


def test_policy_loss_verl_clamps_log_ratio(client: TestClient) -> None:
    body = {"logprobs": [30.0], "old_logprobs": [0.0], "advantages": [1.0], "convention": "verl"}
    r = client.post("/api/v1/policy-loss", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["ratio_max"] == pytest.approx(math.exp(20.0))


@pytest.mark.parametrize(
    ("mode", "loss"),
    [
        ("token-mean", 1.75),
        ("seq-mean-token-mean", 2.5),
        ("seq-mean-token-sum", 3.5),
        # verl 0.9.1: mean over the 2 rows of (row sum / T = 3); was 7/3 before the fix.
        ("seq-mean-token-sum-norm", 7 / 6),
        ("token-sum", 7.0),
    ],
)
def test_policy_loss_agg_modes_with_mask(client: TestClient, mode: str, loss: float) -> None:
    # ratio 1 and A = -x make the per-token loss x; the mask drops the padding of row 2.
    x = [[1.0, 1.0, 1.0], [4.0, 9.0, 9.0]]
    mask = [[1, 1, 1], [1, 0, 0]]
    body = {
        "logprobs": [[0.0] * 3] * 2,
        "old_logprobs": [[0.0] * 3] * 2,
        "advantages": [[-v for v in row] for row in x],
        "mask": mask,
        "loss_agg_mode": mode,
    }
    r = client.post("/api/v1/policy-loss", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["loss"] == pytest.approx(loss)
    assert r.json()["per_token_loss"] == x


@pytest.mark.parametrize("convention", ["seed", "cleanrl", "verl"])
def test_policy_loss_agrees_with_ppo_core(client: TestClient, convention: str) -> None:
    gen = torch.Generator().manual_seed(7)
    lp, old, adv = (torch.randn(3, 5, generator=gen, dtype=torch.float64) for _ in range(3))
    mask = (torch.rand(3, 5, generator=gen) < 0.7).double()
    mask[:, 0] = 1.0
    body = as_lists({"logprobs": lp, "old_logprobs": old, "advantages": adv, "mask": mask})
    r = client.post("/api/v1/policy-loss", json=body | {"convention": convention})
    assert r.status_code == 200, r.text
    c = convention_json(convention)["knobs"]
    out = policy_loss(
        lp,
        old,
        adv,
        mask,
        clip_ratio=c["clip_ratio"],
        dual_clip=c["dual_clip"],
        log_ratio_clamp=c["log_ratio_clamp"],
        loss_agg_mode=c["loss_agg_mode"],
    )
    got = r.json()
    assert got["loss"] == pytest.approx(float(out.loss), rel=1e-12)
    assert got["per_token_loss"] == approx(out.per_token_loss.tolist())
    for name in ("clip_fraction", "ratio_outside_fraction", "approx_kl", "approx_kl_k3"):
        assert got[name] == pytest.approx(getattr(out, name), rel=1e-12), name


# --- /value-loss --------------------------------------------------------------------------

V_R_OLD = {"values": [2.0], "returns": [0.0], "old_values": [1.0]}


@pytest.mark.parametrize(
    ("knobs", "loss", "clip_fraction", "applied"),
    [
        ({"clip_range": 0.5, "mode": "max"}, 4.0, 0.0, True),  # max(2^2, 1.5^2)
        ({"clip_range": 0.5, "mode": "clipped"}, 2.25, 1.0, True),  # SB3: 1.5^2 only
        ({"clip_range": 0.5, "mode": "clipped", "scale": 0.5}, 1.125, 1.0, True),
        ({"convention": "sb3", "clip_range": 0.5}, 2.25, 1.0, True),
        ({"convention": "cleanrl"}, 0.5 * 4.0, 0.0, True),  # clip 0.2, scale 0.5, max
        ({}, 4.0, 0.0, False),  # seed: no value clip
    ],
)
def test_value_loss_modes(
    client: TestClient, knobs: dict[str, object], loss: float, clip_fraction: float, applied: bool
) -> None:
    r = client.post("/api/v1/value-loss", json=V_R_OLD | knobs)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["loss"] == pytest.approx(loss)
    assert got["per_token_loss"] == [pytest.approx(loss)]
    assert got["clip_fraction"] == clip_fraction
    assert got["clip_applied"] is applied


def test_value_loss_whole_body_without_old_values(client: TestClient) -> None:
    # CleanRL clips the value, but not without old_values: 0.5 * mean((V - R)^2).
    body = {"values": [[1.0, 2.0], [3.0, 0.0]], "returns": [[0.0, 0.0], [1.0, 0.0]]}
    r = client.post("/api/v1/value-loss", json=body | {"convention": "cleanrl"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "loss": 0.5 * (1 + 4 + 4 + 0) / 4,
        "per_token_loss": [[0.5, 2.0], [2.0, 0.0]],
        "clip_fraction": 0.0,
        "clip_applied": False,
        "convention": convention_json("cleanrl"),
    }


def test_value_loss_agrees_with_ppo_core(client: TestClient) -> None:
    gen = torch.Generator().manual_seed(11)
    v, ret, old = (torch.randn(2, 6, generator=gen, dtype=torch.float64) for _ in range(3))
    body = as_lists({"values": v, "returns": ret, "old_values": old})
    r = client.post("/api/v1/value-loss", json=body | {"clip_range": 0.3, "scale": 0.5})
    assert r.status_code == 200, r.text
    out = value_loss(v, ret, old, clip_range=0.3, mode="max", scale=0.5)
    assert r.json()["loss"] == pytest.approx(float(out.loss), rel=1e-12)
    assert r.json()["clip_fraction"] == pytest.approx(out.clip_fraction)


# --- /entropy -----------------------------------------------------------------------------


def test_entropy_hand_checked(client: TestClient) -> None:
    r = client.post("/api/v1/entropy", json={"logits": [[0.0, 0.0], [5.0, 5.0]]})
    assert r.status_code == 200, r.text
    assert r.json() == approx({"entropy": LN2, "per_row": [LN2, LN2], "max_entropy": LN2})


def test_entropy_1d_is_one_row_and_temperature_applies(client: TestClient) -> None:
    p = 1 / (1 + math.exp(-2.0))  # softmax([2, 0])[0]
    h = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    r = client.post("/api/v1/entropy", json={"logits": [4.0, 0.0], "temperature": 2.0})
    assert r.status_code == 200, r.text
    assert r.json() == approx({"entropy": h, "per_row": h, "max_entropy": LN2})


def test_entropy_agrees_with_ppo_core(client: TestClient) -> None:
    logits = torch.randn(2, 3, 11, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    r = client.post("/api/v1/entropy", json={"logits": logits.tolist(), "temperature": 0.7})
    assert r.status_code == 200, r.text
    per_row = entropy_from_logits(logits, 0.7)
    assert r.json()["per_row"] == approx(per_row.tolist())
    assert r.json()["entropy"] == pytest.approx(float(per_row.mean()), rel=1e-12)


# --- /kl ----------------------------------------------------------------------------------

KL_BODY = {"logprobs": [math.log(0.5), 0.0], "ref_logprobs": [math.log(0.25), 0.0]}


@pytest.mark.parametrize(
    ("estimator", "value"),
    [("k1", LN2), ("k2", LN2**2 / 2), ("k3", 0.5 - 1 + LN2)],  # d = ln 2 on token 0
)
def test_kl_estimators_with_mask(client: TestClient, estimator: str, value: float) -> None:
    body = KL_BODY | {"estimator": estimator, "mask": [1, 0]}
    r = client.post("/api/v1/kl", json=body)
    assert r.status_code == 200, r.text
    # d k / d log pi per token (k1: 1, k2: d, k3: 1 - e^-d = 0.5 at d = ln 2; d = 0 on token 1).
    gradient = {"k1": [1.0, 1.0], "k2": [LN2, 0.0], "k3": [0.5, 0.0]}[estimator]
    assert r.json() == approx(
        {
            "kl": value,
            "per_token": [value, 0.0],
            "estimator": estimator,
            "gradient": gradient,
            "true_gradient_weight": [LN2, 0.0],
        }
    )


def test_kl_default_is_k3_and_agrees_with_ppo_core(client: TestClient) -> None:
    gen = torch.Generator().manual_seed(2)
    lp, ref = (torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    r = client.post("/api/v1/kl", json=as_lists({"logprobs": lp, "ref_logprobs": ref}))
    assert r.status_code == 200, r.text
    mean, per_token = kl_estimate(lp, ref, estimator="k3")
    assert r.json() == approx(
        {
            "kl": float(mean),
            "per_token": per_token.tolist(),
            "estimator": "k3",
            "gradient": (1 - torch.exp(ref - lp)).tolist(),
            "true_gradient_weight": (lp - ref).tolist(),
        }
    )


def test_boolean_mask_counts_as_zero_one(client: TestClient) -> None:
    body = KL_BODY | {"estimator": "k1"}
    as_bools = client.post("/api/v1/kl", json=body | {"mask": [True, False]})
    as_numbers = client.post("/api/v1/kl", json=body | {"mask": [1, 0]})
    assert as_bools.status_code == 200, as_bools.text
    assert as_bools.json() == as_numbers.json()
