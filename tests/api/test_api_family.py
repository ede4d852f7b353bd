"""The policy-loss family over HTTP: /policy-loss modes and presets, per-sequence advantages,
rollout correction, logprob_gradient; /objective-curves, /aggregation-weights,
/rollout-correction, /advantages/reinforce-plus-plus, the group estimators, GAE dones, and the
KL estimators' gradients. Expected values come from ppo_core on the same tensors, or by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from api_support import as_lists, assert_error, npy_bytes
from fastapi.testclient import TestClient

from ppo_core import gae, group_advantages
from ppo_core.advantages import reinforce_plus_plus
from ppo_core.conventions import CONVENTIONS, get_convention
from ppo_core.curves import objective_curves
from ppo_core.policy import POLICY_LOSS_MODES
from ppo_core.rollout import rollout_correction
from ppo_core.total import convention_policy_loss

POLICY = "/api/v1/policy-loss"
FAMILY_PRESETS = [name for name in CONVENTIONS if "-" in name]


def batch(seed: int = 0, rows: int = 3, width: int = 5) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(rows, width, generator=gen, dtype=torch.float64) * 2 - 0.1
    lengths = torch.tensor([width, width - 2, 1][:rows])
    return {
        "logprobs": old + 0.4 * torch.randn(rows, width, generator=gen, dtype=torch.float64),
        "old_logprobs": old,
        "advantages": torch.randn(rows, generator=gen, dtype=torch.float64),
        "rollout_logprobs": old
        + 0.2 * torch.randn(rows, width, generator=gen, dtype=torch.float64),
        "mask": (torch.arange(width)[None, :] < lengths[:, None]).to(torch.float64),
    }


def expected_policy(t: dict[str, torch.Tensor], name: str, **overrides: object) -> dict:
    """ppo_core's answer for the same request: loss, per-token loss, gradient, weights."""
    conv = get_convention(name).with_overrides(**overrides)
    weights = None
    if conv.rollout_is_level is not None:
        weights = rollout_correction(
            t["old_logprobs"],
            t["rollout_logprobs"],
            t["mask"],
            level=conv.rollout_is_level,
            mode=conv.rollout_is_mode,
            threshold=conv.rollout_is_threshold,
            threshold_low=conv.rollout_is_threshold_low,
        ).weights
    leaf = t["logprobs"].clone().requires_grad_(True)
    out = convention_policy_loss(
        leaf, t["old_logprobs"], t["advantages"], t["mask"], conv, rollout_is_weights=weights
    )
    (grad,) = torch.autograd.grad(out.loss, leaf, allow_unused=True)
    return {
        "loss": float(out.loss.detach()),
        "per_token_loss": out.per_token_loss.detach().tolist(),
        "logprob_gradient": (torch.zeros_like(leaf) if grad is None else grad).tolist(),
        "clip_fraction": out.clip_fraction,
        "rollout_weights": None if weights is None else weights.tolist(),
    }


def close(a: object, b: object) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12)


@pytest.mark.parametrize("name", FAMILY_PRESETS)
def test_every_family_preset_matches_ppo_core(client: TestClient, name: str) -> None:
    t = batch(seed=len(name))
    r = client.post(POLICY, json=as_lists(t) | {"convention": name})
    assert r.status_code == 200, r.text
    got, want = r.json(), expected_policy(t, name)
    for key in ("loss", "per_token_loss", "logprob_gradient", "clip_fraction"):
        close(got[key], want[key])
    assert got["policy_loss_mode"] == get_convention(name).policy_loss_mode
    assert got["rollout_correction"]["applied"] == (
        get_convention(name).rollout_is_level is not None
    )
    if want["rollout_weights"] is not None:
        close(got["rollout_weights"], want["rollout_weights"])


@pytest.mark.parametrize("mode", POLICY_LOSS_MODES)
def test_mode_knob_over_a_preset_and_sequence_advantages(client: TestClient, mode: str) -> None:
    t = batch(seed=3)
    body = as_lists(t) | {"convention": "verl", "policy_loss_mode": mode}
    del body["rollout_logprobs"]
    r = client.post(POLICY, json=body)
    assert r.status_code == 200, r.text
    want = expected_policy(t, "verl", policy_loss_mode=mode)
    close(r.json()["loss"], want["loss"])
    close(r.json()["logprob_gradient"], want["logprob_gradient"])
    # [batch] advantages are the same request as the same advantages tiled over the tokens.
    tiled = body | {"advantages": t["advantages"][:, None].expand(3, 5).tolist()}
    r2 = client.post(POLICY, json=tiled)
    assert r2.status_code == 200, r2.text
    close(r2.json()["logprob_gradient"], r.json()["logprob_gradient"])
    assert r.json()["rollout_correction"] is None


def test_gspo_forms_differ_only_in_the_gradient(client: TestClient) -> None:
    t = batch(seed=5)
    body = as_lists(t) | {"policy_loss_mode": "gspo", "clip_ratio": 0.5}
    token = client.post(POLICY, json=body | {"gspo_stop_gradient": True}).json()
    mean = client.post(POLICY, json=body | {"gspo_stop_gradient": False}).json()
    assert token["loss"] == pytest.approx(mean["loss"], rel=1e-12)
    # token-level advantages differ across a row: the two gradients differ.
    tok_adv = body | {"advantages": torch.randn(3, 5, dtype=torch.float64).tolist()}
    g1 = client.post(POLICY, json=tok_adv | {"gspo_stop_gradient": True}).json()
    g2 = client.post(POLICY, json=tok_adv | {"gspo_stop_gradient": False}).json()
    assert not np.allclose(g1["logprob_gradient"], g2["logprob_gradient"])


def test_rollout_correction_applied_only_with_a_level(client: TestClient) -> None:
    t = batch(seed=7)
    plain = client.post(POLICY, json=as_lists(t)).json()
    assert plain["rollout_correction"]["applied"] is False
    assert "rollout_is_eff_sample_size" in plain["rollout_correction"]["metrics"]
    without = as_lists(t)
    del without["rollout_logprobs"]
    assert client.post(POLICY, json=without).json()["loss"] == pytest.approx(plain["loss"])
    tis = client.post(POLICY, json=as_lists(t) | {"rollout_is_level": "token"}).json()
    assert tis["rollout_correction"]["applied"] is True
    close(tis["loss"], expected_policy(t, "seed", rollout_is_level="token")["loss"])
    assert tis["loss"] != pytest.approx(plain["loss"])
    # TIS with a threshold no weight reaches, and weights of exactly 1: nothing changes.
    same = as_lists(t) | {
        "rollout_logprobs": t["old_logprobs"].tolist(),
        "rollout_is_level": "token",
    }
    assert client.post(POLICY, json=same).json()["loss"] == pytest.approx(plain["loss"], rel=1e-12)


def test_dr_grpo_normaliser_is_verls(client: TestClient) -> None:
    # Per-token loss -A = -1 on 2 + 1 valid tokens of T = 3: verl 0.9.1 gives the mean over the
    # 2 rows of (row sum / T): (-2/3 - 1/3) / 2 = -0.5; loss_scale_factor L = 10: -0.15.
    body = {
        "logprobs": [[0.0] * 3] * 2,
        "old_logprobs": [[0.0] * 3] * 2,
        "advantages": [1.0, 1.0],
        "mask": [[1, 1, 0], [1, 0, 0]],
        "convention": "verl-dr_grpo",
    }
    assert client.post(POLICY, json=body).json()["loss"] == pytest.approx(-0.5)
    scaled = client.post(POLICY, json=body | {"loss_scale_factor": 10}).json()
    assert scaled["loss"] == pytest.approx(-0.15)
    assert scaled["convention"]["knobs"]["loss_scale_factor"] == 10


@pytest.mark.parametrize(
    ("knobs", "loc", "msg"),
    [
        ({"policy_loss_mode": "ppo"}, ["body", "policy_loss_mode"], "Input should be 'vanilla'..."),
        ({"rollout_is_threshold": 0}, ["body", "rollout_is_threshold"], None),
        ({"sapo_tau_pos": -1}, ["body", "sapo_tau_pos"], None),
        ({"loss_scale_factor": 0}, ["body", "loss_scale_factor"], None),
        (
            {"rollout_is_level": "token", "rollout_is_threshold": 2, "rollout_is_threshold_low": 3},
            ["body", "rollout_is_threshold_low"],
            "rollout_is_threshold_low: must be <= rollout_is_threshold (2.0), got 3.0",
        ),
    ],
)
def test_family_knob_errors_name_the_field(
    client: TestClient, knobs: dict, loc: list[str], msg: str | None
) -> None:
    r = client.post(POLICY, json=as_lists(batch()) | knobs)
    assert_error(r, 422, loc, msg)


def test_advantages_of_the_wrong_length_are_refused(client: TestClient) -> None:
    body = as_lists(batch()) | {"advantages": [1.0, 2.0]}
    assert_error(
        client.post(POLICY, json=body), 422, ["body", "advantages"], "advantages: shape..."
    )


# --- GET /objective-curves, /aggregation-weights --------------------------------------------


def test_objective_curves_match_ppo_core_and_teach_the_gradient(client: TestClient) -> None:
    q = {"advantage": 1.0, "points": 11, "ratio_min": 0.5, "ratio_max": 1.5}
    r = client.get("/api/v1/objective-curves", params=q)
    assert r.status_code == 200, r.text
    got = r.json()
    ratio, curves = objective_curves(list(POLICY_LOSS_MODES), 1.0, points=11)
    close(got["ratio"], ratio.tolist())
    for mode, c in curves.items():
        close(got["curves"][mode]["objective"], c.objective.tolist())
        close(got["curves"][mode]["gradient_weight"], c.gradient_weight.tolist())
    at = got["ratio"].index(1.4)  # past 1 + eps with A > 0
    weight = {m: got["curves"][m]["gradient_weight"][at] for m in POLICY_LOSS_MODES}
    assert weight["vanilla"] == 0.0 and weight["gspo"] == 0.0 and weight["geo_mean"] == 0.0
    assert weight["cispo"] == pytest.approx(1.2) and weight["gpg"] == pytest.approx(1.0)
    assert 0 < weight["sapo"] < 1.4
    assert got["clip_bounds"] == {"low": 0.8, "high": 1.2, "dual_clip": None}


def test_objective_curves_refuse_an_unknown_mode(client: TestClient) -> None:
    r = client.get("/api/v1/objective-curves", params={"modes": "vanilla,grpo"})
    assert_error(r, 422, ["query", "modes"], "modes: unknown mode 'grpo'...")


def test_aggregation_weights_by_hand(client: TestClient) -> None:
    r = client.get("/api/v1/aggregation-weights", params={"lengths": "1,3", "padded_length": 4})
    assert r.status_code == 200, r.text
    modes = r.json()["modes"]
    assert modes["token-mean"]["token_weight"] == pytest.approx([0.25, 0.25])
    assert modes["seq-mean-token-mean"]["token_weight"] == pytest.approx([0.5, 1 / 6])
    assert modes["seq-mean-token-mean"]["sequence_weight"] == pytest.approx([0.5, 0.5])
    assert modes["seq-mean-token-sum"]["sequence_weight"] == pytest.approx([0.5, 1.5])
    assert modes["seq-mean-token-sum-norm"]["token_weight"] == pytest.approx([1 / 8, 1 / 8])
    assert modes["token-sum"]["sequence_weight"] == pytest.approx([1.0, 3.0])
    bad = client.get("/api/v1/aggregation-weights", params={"lengths": "4,x"})
    assert_error(bad, 422, ["query", "lengths"], "lengths: expected comma-separated integers")
    short = client.get("/api/v1/aggregation-weights", params={"lengths": "9", "padded_length": 4})
    assert_error(short, 422, ["query", "padded_length"], "padded_length: must be >= ...")


# --- POST /rollout-correction ---------------------------------------------------------------


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("mode", ["truncate", "mask"])
def test_rollout_correction_matches_ppo_core(client: TestClient, level: str, mode: str) -> None:
    t = batch(seed=11)
    body = {
        "old_logprobs": t["old_logprobs"].tolist(),
        "rollout_logprobs": t["rollout_logprobs"].tolist(),
        "mask": t["mask"].tolist(),
        "level": level,
        "mode": mode,
        "threshold": 1.5,
    }
    r = client.post("/api/v1/rollout-correction", json=body)
    assert r.status_code == 200, r.text
    c = rollout_correction(
        t["old_logprobs"], t["rollout_logprobs"], t["mask"], level=level, mode=mode, threshold=1.5
    )
    close(r.json()["weights"], c.weights.tolist())
    assert r.json()["kept"] == c.kept.tolist()
    assert r.json()["metrics"] == pytest.approx(c.metrics, rel=1e-12)
    for key in ("rollout_is_eff_sample_size", "chi2_token", "chi2_seq", "kl", "k3_kl"):
        assert key in r.json()["metrics"]


def test_rollout_correction_hand_checked(client: TestClient) -> None:
    # rho = 1, 3, 1/4; TIS at 2: weights 1, 2, 1/4; one of three truncated.
    body = {
        "old_logprobs": [0.0, math.log(3.0), math.log(0.25)],
        "rollout_logprobs": [0.0, 0.0, 0.0],
        "threshold": 2.0,
    }
    got = client.post("/api/v1/rollout-correction", json=body).json()
    assert got["weights"] == pytest.approx([1.0, 2.0, 0.25])
    assert got["metrics"]["truncated_fraction"] == pytest.approx(1 / 3)
    assert got["metrics"]["chi2_token"] == pytest.approx((1 + 9 + 1 / 16) / 3 - 1)
    masked = client.post("/api/v1/rollout-correction", json=body | {"mode": "mask"}).json()
    assert masked["weights"] == [1.0, 0.0, 0.0]
    assert masked["kept"] == [True, False, False]


# --- advantages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "estimator", ["grpo", "dr_grpo", "rloo", "reinforce_plus_plus_baseline", "gpg"]
)
def test_group_estimators_match_ppo_core(client: TestClient, estimator: str) -> None:
    rewards, ids = [1.0, 0.0, 0.5, 0.3, 0.3, 2.0], [0, 0, 0, 1, 1, 2]
    body = {"rewards": rewards, "group_ids": ids, "estimator": estimator}
    r = client.post("/api/v1/advantages/group", json=body)
    assert r.status_code == 200, r.text
    want = group_advantages(
        torch.tensor(rewards, dtype=torch.float64), torch.tensor(ids), estimator=estimator
    )
    close(r.json()["advantages"], want.tolist())
    assert r.json()["estimator"] == estimator


def test_rloo_by_hand(client: TestClient) -> None:
    body = {"rewards": [1.0, 0.0, 0.0, 5.0], "group_ids": [0, 0, 0, 1], "estimator": "rloo"}
    got = client.post("/api/v1/advantages/group", json=body).json()["advantages"]
    assert got == pytest.approx([1.0, -0.5, -0.5, 5.0])  # a group of one keeps its reward


def test_reinforce_plus_plus_matches_ppo_core(client: TestClient) -> None:
    rewards = [[0.0, 0.0, 1.0], [0.0, 2.0, 0.0], [0.0, 0.0, -1.0]]
    mask = [[1, 1, 1], [1, 1, 0], [1, 1, 1]]
    body = {"token_level_rewards": rewards, "mask": mask, "gamma": 0.9}
    r = client.post("/api/v1/advantages/reinforce-plus-plus", json=body)
    assert r.status_code == 200, r.text
    out = reinforce_plus_plus(
        torch.tensor(rewards, dtype=torch.float64),
        torch.tensor(mask, dtype=torch.float64),
        gamma=0.9,
    )
    close(r.json()["advantages"], out.advantages.tolist())
    assert r.json()["returns"][0] == pytest.approx([0.81, 0.9, 1.0])
    grouped = client.post(
        "/api/v1/advantages/reinforce-plus-plus", json=body | {"group_ids": [0, 0, 1]}
    )
    assert grouped.status_code == 200, grouped.text
    assert grouped.json()["advantages"] == grouped.json()["returns"]
    bad = client.post("/api/v1/advantages/reinforce-plus-plus", json=body | {"group_ids": [0]})
    assert_error(bad, 422, ["body", "group_ids"], "group_ids: expected one per row...")


def test_gae_with_dones_and_last_value(client: TestClient) -> None:
    # gamma = lam = 1: the episode ends after step 0, so A_0 = 1 - 0; step 1 bootstraps 5.
    body = {
        "rewards": [1.0, 1.0],
        "values": [0.0, 0.0],
        "gamma": 1.0,
        "lam": 1.0,
        "dones": [1, 0],
        "last_value": 5.0,
    }
    r = client.post("/api/v1/advantages/gae", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["advantages"] == pytest.approx([1.0, 6.0])
    rows = {"rewards": [[1.0, 1.0]] * 2, "values": [[0.0, 0.0]] * 2, "last_value": [0.0, 2.0]}
    got = client.post("/api/v1/advantages/gae", json=rows | {"gamma": 1.0, "lam": 1.0}).json()
    want = gae(
        torch.ones(2, 2, dtype=torch.float64),
        torch.zeros(2, 2, dtype=torch.float64),
        gamma=1.0,
        lam=1.0,
        last_value=torch.tensor([0.0, 2.0], dtype=torch.float64),
    )
    close(got["advantages"], want.advantages.tolist())
    bad = client.post("/api/v1/advantages/gae", json=rows | {"last_value": [1.0, 2.0, 3.0]})
    assert_error(bad, 422, ["body", "last_value"], "last_value: expected one value per row...")
    text = client.post("/api/v1/advantages/gae", json=rows | {"last_value": "x"})
    assert_error(text, 422, ["body", "last_value"], "last_value: expected a number or a list...")


# --- /kl: k3+, abs, clamps, gradients -----------------------------------------------------------


@pytest.mark.parametrize(
    ("estimator", "clamp", "value", "gradient"),
    [
        # d = lp - ref = 30 on token 1: verl clamps k3 to 10 (gradient 0); k3+ keeps d.
        ("k3", "verl", [0.5 - 1 + math.log(2), 10.0], [0.5, 0.0]),
        ("k3+", "verl", [0.5 - 1 + math.log(2), 10.0], [math.log(2), 30.0]),
        ("k1", "openrlhf", [math.log(2), 10.0], [1.0, 0.0]),  # every estimate within ±10
        ("abs", "none", [math.log(2), 30.0], [1.0, 1.0]),
    ],
)
def test_kl_estimators_clamps_and_gradients(
    client: TestClient, estimator: str, clamp: str, value: list, gradient: list
) -> None:
    body = {
        "logprobs": [math.log(0.5), 0.0],
        "ref_logprobs": [math.log(0.25), -30.0],
        "estimator": estimator,
        "clamp": clamp,
    }
    r = client.post("/api/v1/kl", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["per_token"] == pytest.approx(value)
    assert r.json()["gradient"] == pytest.approx(gradient)
    assert r.json()["true_gradient_weight"] == pytest.approx([math.log(2), 30.0])


# --- /analyze with the family's knobs -------------------------------------------------------------


def test_analyze_takes_the_family_knobs_and_rollout_logprobs(client: TestClient) -> None:
    t = batch(seed=13)
    body = as_lists(t) | {"convention": "verl-gspo", "rollout_is_level": "sequence"}
    r = client.post("/api/v1/analyze", json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    want = expected_policy(t, "verl-gspo", rollout_is_level="sequence")
    assert got["policy_loss_mode"] == "gspo"
    assert got["breakdown"]["policy_loss"] == pytest.approx(want["loss"], rel=1e-12)
    close(got["logprob_gradient"], want["logprob_gradient"])
    assert got["rollout_correction"]["applied"] is True
    assert got["rollout_correction"]["level"] == "sequence"
    assert "logprob_gradient" in got["histograms"]
    # The same batch as .npy uploads gives the same numbers.
    files = {name: (f"{name}.npy", npy_bytes(t[name].numpy())) for name in t}
    form = {"convention": "verl-gspo", "rollout_is_level": "sequence"}
    r2 = client.post("/api/v1/analyze", files=files, data=form)
    assert r2.status_code == 200, r2.text
    assert r2.json()["breakdown"] == pytest.approx(got["breakdown"])
    close(r2.json()["logprob_gradient"], got["logprob_gradient"])


# --- regressions found in review -------------------------------------------------------------


def test_kl_estimators_beyond_the_dtype_limit_are_exact(client: TestClient) -> None:
    # d = 1000: k1 = 1000 and its gradient 1 (no saturation at 709.78); k3+ keeps the gradient
    # d even though verl clamps its value to 10.
    body = {"logprobs": [0.0], "ref_logprobs": [-1000.0]}
    k1 = client.post("/api/v1/kl", json=body | {"estimator": "k1"}).json()
    assert k1["per_token"] == [1000.0] and k1["gradient"] == [1.0]
    k3p = client.post("/api/v1/kl", json=body | {"estimator": "k3+", "clamp": "verl"}).json()
    assert k3p["per_token"] == [10.0] and k3p["gradient"] == [1000.0]


def test_sequence_rollout_metrics_do_not_overflow(client: TestClient) -> None:
    # Every row's summed log-ratio (800) is past exp's float64 range: the weights clamp at ±20
    # (verl) and rollout_is_min saturates instead of raising.
    body = {"old_logprobs": [[400.0, 400.0]], "rollout_logprobs": [[0.0, 0.0]]}
    r = client.post("/api/v1/rollout-correction", json=body | {"level": "sequence"})
    assert r.status_code == 200, r.text
    assert r.json()["weights"] == [[2.0, 2.0]]  # min(e^20, 2)
    assert math.isfinite(r.json()["metrics"]["rollout_is_min"])
    p = client.post(
        POLICY,
        json={
            "logprobs": [[400.0, 400.0]],
            "old_logprobs": [[400.0, 400.0]],
            "advantages": [1.0],
            "rollout_logprobs": [[0.0, 0.0]],
            "rollout_is_level": "sequence",
        },
    )
    assert p.status_code == 200, p.text


def test_objective_curves_report_each_modes_band(client: TestClient) -> None:
    q = {"modes": "vanilla,geo_mean,cispo,sapo", "epsilon": 0.2, "points": 3}
    curves = client.get("/api/v1/objective-curves", params=q).json()["curves"]
    assert curves["vanilla"]["band"] == pytest.approx([0.8, 1.2])
    assert curves["geo_mean"]["band"] == pytest.approx([math.exp(-0.2), math.exp(0.2)])
    assert curves["cispo"]["band"] == pytest.approx([0.8, 1.2])
    assert curves["sapo"]["band"] is None
    absolute = client.get(
        "/api/v1/objective-curves",
        params={"modes": "cispo", "cispo_clip": "absolute", "epsilon_high": 5, "points": 3},
    ).json()
    assert absolute["curves"]["cispo"]["band"] == pytest.approx([0.0, 5.0])
