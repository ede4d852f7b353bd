"""GET endpoints for the page: curves, comparisons, the sample loss, reference data, health."""

from __future__ import annotations

import math

import pytest
import torch
from api_support import approx, assert_error, convention_json
from fastapi.testclient import TestClient

from app import __version__
from ppo_core import (
    CONVENTIONS,
    compute_ppo_total_loss,
    entropy_comparison,
    kl_estimator_drift,
    seed_example_batch,
)

# --- /clip-objective ----------------------------------------------------------------------


def test_clip_objective_hand_checked(client: TestClient) -> None:
    params = {"epsilon": 0.2, "advantage": 1.0, "ratio_min": 0.5, "ratio_max": 1.5, "points": 3}
    r = client.get("/api/v1/clip-objective", params=params)
    assert r.status_code == 200, r.text
    assert r.json() == approx(
        {
            "ratio": [0.5, 1.0, 1.5],
            "unclipped": [0.5, 1.0, 1.5],
            "clipped": [0.8, 1.0, 1.2],
            "objective": [0.5, 1.0, 1.2],  # min(rA, clip(r)A)
            "gradient": [1.0, 1.0, 0.0],  # flat past 1 + eps
            "clip_bounds": {"low": 0.8, "high": 1.2, "dual_clip": None},
            "point": None,
        }
    )


def test_clip_objective_negative_advantage_and_dual_clip(client: TestClient) -> None:
    params = {"advantage": -1.0, "ratio_min": 0.5, "ratio_max": 5.0, "points": 4, "dual_clip": 3}
    r = client.get("/api/v1/clip-objective", params=params)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["ratio"] == [0.5, 2.0, 3.5, 5.0]
    # A < 0: flat at -0.8 below 1 - eps; -r above; dual clip floors it at c A = -3.
    assert got["objective"] == approx([-0.8, -2.0, -3.0, -3.0])
    assert got["gradient"] == [0.0, -1.0, 0.0, 0.0]
    assert got["clip_bounds"] == approx({"low": 0.8, "high": 1.2, "dual_clip": 3.0})


@pytest.mark.parametrize("advantage", [2.0, -2.0])
def test_clip_objective_gradient_zero_in_flat_region(client: TestClient, advantage: float) -> None:
    params = {"advantage": advantage, "ratio_min": 0.0, "ratio_max": 2.0, "points": 401}
    r = client.get("/api/v1/clip-objective", params=params)
    assert r.status_code == 200, r.text
    got = r.json()
    flat = 0
    for ratio, grad in zip(got["ratio"], got["gradient"], strict=True):
        clipped_side = ratio > 1.2 + 1e-9 if advantage > 0 else ratio < 0.8 - 1e-9
        live_side = ratio < 1.2 - 1e-9 if advantage > 0 else ratio > 0.8 + 1e-9
        if clipped_side:
            assert grad == 0.0, ratio
            flat += 1
        elif live_side:
            assert grad == advantage, ratio
    assert flat > 100


def test_clip_objective_asymmetric_bounds(client: TestClient) -> None:
    params = {"epsilon_low": 0.1, "epsilon_high": 0.28, "points": 2}
    r = client.get("/api/v1/clip-objective", params=params)
    assert r.status_code == 200, r.text
    assert r.json()["clip_bounds"] == approx({"low": 0.9, "high": 1.28, "dual_clip": None})


@pytest.mark.parametrize(
    ("ratio", "objective", "gradient", "clipped"),
    [(1.5, 1.2, 0.0, True), (1.0, 1.0, 1.0, False), (0.5, 0.5, 1.0, False)],
)
def test_clip_objective_ratio_readout(
    client: TestClient, ratio: float, objective: float, gradient: float, clipped: bool
) -> None:
    r = client.get("/api/v1/clip-objective", params={"ratio": ratio, "points": 2})
    assert r.status_code == 200, r.text
    assert r.json()["point"] == approx(
        {"ratio": ratio, "objective": objective, "gradient": gradient, "clipped": clipped}, 1e-6
    )


# --- /value-loss-curve --------------------------------------------------------------------


def test_value_loss_curve_hand_checked(client: TestClient) -> None:
    params = {"returns": 1.0, "old_value": 0.0, "clip_range": 0.2}
    params |= {"prediction_min": 0.0, "prediction_max": 1.0, "points": 2}
    r = client.get("/api/v1/value-loss-curve", params=params)
    assert r.status_code == 200, r.text
    # V = 1 clips to 0.2 around V_old = 0: (0.2 - 1)^2 = 0.64 for max and clipped-only.
    assert r.json() == approx(
        {
            "prediction": [0.0, 1.0],
            "unclipped": [1.0, 0.0],
            "clipped_max": [1.0, 0.64],
            "clipped_only": [1.0, 0.64],
            "clip_low": -0.2,
            "clip_high": 0.2,
        }
    )


# --- /entropy-comparison, /kl-drift -------------------------------------------------------


def test_entropy_comparison_seed_numbers(client: TestClient) -> None:
    r = client.get("/api/v1/entropy-comparison", params={"top_k": 5})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["vocab_size"] == 1000
    assert got["max_entropy"] == pytest.approx(math.log(1000))
    names = [c["name"] for c in got["cases"]]
    assert names == ["random", "peaked", "near_uniform", "maximum"]
    # The seed tutorial's printed means.
    assert [round(c["entropy"], 2) for c in got["cases"]] == [6.39, 0.68, 6.9, 6.91]
    expected = entropy_comparison(vocab_size=1000, batch_size=16, seed=0)
    for case in got["cases"]:
        assert case["per_row"] == approx(expected[case["name"]].per_row.tolist(), 1e-6)
        probs = case["example_probs"]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True)
        assert case["example_tail_mass"] == pytest.approx(1 - sum(probs), abs=1e-6)
    assert got["cases"][3]["example_probs"] == approx([1e-3] * 5, 1e-6)
    curve = got["temperature_curve"]
    assert len(curve["temperature"]) == len(curve["entropy"]["random"]) == 27
    assert curve["entropy"]["random"] == sorted(curve["entropy"]["random"])  # rises with T


def test_kl_drift_agrees_with_ppo_core(client: TestClient) -> None:
    params = {"vocab_size": 20, "max_drift": 1.0, "steps": 5, "samples": 64, "seed": 3}
    r = client.get("/api/v1/kl-drift", params=params)
    assert r.status_code == 200, r.text
    d = kl_estimator_drift(20, torch.linspace(0.0, 1.0, 5, dtype=torch.float64), 64, 3)
    assert r.json() == approx(
        {
            "drift": [0.0, 0.25, 0.5, 0.75, 1.0],
            "true_kl": d.true_kl.tolist(),
            "mean": {k: v.tolist() for k, v in d.mean.items()},
            "std": {k: v.tolist() for k, v in d.std.items()},
            "samples": 64,
            "true_gradient": d.true_gradient.tolist(),
            "reverse_kl_gradient": d.reverse_kl_gradient.tolist(),
            "gradient": {k: v.tolist() for k, v in d.gradient.items()},
        }
    )
    got = r.json()
    assert got["true_kl"][0] == 0.0 and got["true_kl"] == sorted(got["true_kl"])
    zero = {"k1": 0.0, "k2": 0.0, "k3": 0.0, "abs": 0.0, "k3+": 0.0}
    assert {k: v[0] for k, v in got["mean"].items()} == zero
    # Used as a loss, k2 and k3+ follow the true gradient, k1 gives none, k3 the reverse KL's.
    assert got["gradient"]["k2"] == approx(got["true_gradient"])
    assert got["gradient"]["k3+"] == approx(got["true_gradient"])
    assert max(abs(g) for g in got["gradient"]["k1"]) < 1e-12
    assert got["gradient"]["k3"] == approx(got["reverse_kl_gradient"])
    assert got["gradient"]["k3"][-1] != approx(got["true_gradient"][-1])


# --- /loss/sample -------------------------------------------------------------------------


def test_sample_loss_equals_seed_function(client: TestClient) -> None:
    params = {"seed": 5, "batch_size": 8, "vocab_size": 50, "vf_coef": 0.25, "entropy_coef": 0.1}
    r = client.get("/api/v1/loss/sample", params=params)
    assert r.status_code == 200, r.text
    expected = compute_ppo_total_loss(
        **seed_example_batch(5, 8, 50), vf_coef=0.25, entropy_coef=0.1
    )
    b = r.json()["breakdown"]
    for key in ("total_loss", "policy_loss", "value_loss", "entropy"):
        assert b[key] == pytest.approx(float(expected[key]), rel=1e-5), key
    assert b["value_term"] == pytest.approx(0.25 * b["value_loss"])
    assert b["entropy_term"] == pytest.approx(-0.1 * b["entropy"])
    assert b["kl"] is None and b["kl_term"] == 0.0
    assert set(r.json()["diagnostics"]) >= {"clip_fraction", "approx_kl", "explained_variance"}


# --- reference data -----------------------------------------------------------------------


def test_hyperparameters_are_the_seed_table(client: TestClient) -> None:
    r = client.get("/api/v1/hyperparameters")
    assert r.status_code == 200, r.text
    assert r.json() == [
        {
            "name": "clip_ratio",
            "symbol": "ε",
            "default": 0.2,
            "controls": "How much policy can change per update",
            "too_high": "More aggressive updates, risk of instability",
            "too_low": "Too conservative, slow learning",
            "control": "clip-epsilon",
        },
        {
            "name": "vf_coef",
            "symbol": "c₁",
            "default": 0.5,
            "controls": "Weight on value function loss",
            "too_high": "Model focuses on prediction over policy",
            "too_low": "Value function trains slowly, poor advantages",
            "control": "total-vf",
        },
        {
            "name": "entropy_coef",
            "symbol": "c₂",
            "default": 0.01,
            "controls": "Weight on entropy bonus",
            "too_high": "Model stays random, never converges",
            "too_low": "Model becomes deterministic too fast, gets stuck",
            "control": "total-ent",
        },
        {
            "name": "ppo_epochs",
            "symbol": "K",
            "default": 4,
            "controls": "How many times to reuse each batch",
            "too_high": "Better sample efficiency, risk overfitting",
            "too_low": "Less sample efficiency, more data needed",
            "control": None,
        },
        {
            "name": "learning_rate",
            "symbol": "α",
            "default": 1e-5,
            "controls": "Step size for optimizer",
            "too_high": "Training instability, divergence",
            "too_low": "Slow convergence",
            "control": None,
        },
    ]


def test_conventions_list_every_preset(client: TestClient) -> None:
    r = client.get("/api/v1/conventions")
    assert r.status_code == 200, r.text
    assert r.json() == [convention_json(name) for name in CONVENTIONS]
    names = [c["name"] for c in r.json()]
    assert names[:6] == ["seed", "cleanrl", "sb3", "verl", "openrlhf", "trl"]
    for required in ("trl-dapo", "trl-dr_grpo", "trl-cispo", "verl-gspo", "verl-cispo"):
        assert required in names
    assert "openrlhf-gspo" in names
    assert all(n.split("-")[0] in ("verl", "trl", "openrlhf") for n in names[6:])


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": __version__, "torch": torch.__version__}


def test_repeated_curve_queries_are_built_once_per_validated_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api_support import make_client

    import app.routes.curves as curves

    calls: list[object] = []  # one per curve computed
    original = curves.clip_objective_curves

    def counting(specs: list[object]) -> object:
        calls.extend(specs)
        return original(specs)  # type: ignore[arg-type]

    monkeypatch.setattr(curves, "clip_objective_curves", counting)
    with make_client() as c:
        url = "/api/v1/clip-objective?epsilon=0.13&points=7"
        first, second = c.get(url), c.get(url)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content
        assert len(calls) == 1  # the second answer came from the response cache
        assert first.headers["x-request-id"] != second.headers["x-request-id"]
        assert "script-src 'self'" in second.headers["content-security-policy"]
        # The same validated query spelled differently is the same entry.
        c.get("/api/v1/clip-objective?points=7.0&epsilon=0.130")
        assert len(calls) == 1
        bad = "/api/v1/clip-objective?epsilon=7"
        assert c.get(bad).status_code == c.get(bad).status_code == 422  # errors never cached
        # Unknown parameters are refused, so they cannot add entries.
        for i in range(3):
            r = c.get(f"{url}&x={i}")
            assert_error(r, 422, ["query", "x"], "Extra inputs are not permitted")
        assert len(c.app.state.response_cache) == 1  # type: ignore[attr-defined]


def test_response_cache_is_bounded_in_bytes() -> None:
    from api_support import make_client

    with make_client(response_cache_bytes=200_000) as c:
        cache = c.app.state.response_cache  # type: ignore[attr-defined]
        sizes = []
        for i in range(12):  # ~100 KB each at 2000 points: the budget holds one or two
            r = c.get(f"/api/v1/clip-objective?points=2000&advantage={1 + i / 10}")
            assert r.status_code == 200
            sizes.append(len(r.content))
            assert cache.bytes <= 200_000
        assert cache.bytes == sum(sizes[-len(cache) :])
        assert 1 <= len(cache) < 12
    with make_client(response_cache_bytes=0) as off:
        assert off.get("/api/v1/clip-objective?points=5").status_code == 200
        assert len(off.app.state.response_cache) == 0  # type: ignore[attr-defined]
