"""POST /advantages/gae and /advantages/group: hand-checked values and agreement with ppo_core."""

from __future__ import annotations

import math

import pytest
import torch
from api_support import approx, as_lists
from fastapi.testclient import TestClient

from ppo_core import gae, group_advantages, whiten


def test_gae_gamma_lam_one(client: TestClient) -> None:
    # Reward 1 at the end, V = 0.5: A = R - V = 0.5 everywhere, returns 1.
    body = {"rewards": [0.0, 1.0], "values": [0.5, 0.5], "gamma": 1.0, "lam": 1.0}
    r = client.post("/api/v1/advantages/gae", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"advantages": [0.5, 0.5], "returns": [1.0, 1.0]}


def test_gae_discounted_by_hand(client: TestClient) -> None:
    # t=1: delta = 1 - 0.5 = 0.5 = A1; t=0: delta = 0.5*0.5 - 0.5 = -0.25, A0 = -0.25 + 0.25*0.5.
    body = {"rewards": [0.0, 1.0], "values": [0.5, 0.5], "gamma": 0.5, "lam": 0.5}
    r = client.post("/api/v1/advantages/gae", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"advantages": [-0.125, 0.5], "returns": [0.375, 1.0]}


def test_gae_whiten(client: TestClient) -> None:
    body = {"rewards": [0.0, 1.0], "values": [0.5, 0.5], "gamma": 0.5, "lam": 0.5, "whiten": True}
    r = client.post("/api/v1/advantages/gae", json=body)
    assert r.status_code == 200, r.text
    # mean 0.1875, unbiased var 2 * 0.3125^2; returns stay un-whitened.
    w = 0.3125 / math.sqrt(2 * 0.3125**2 + 1e-8)
    assert r.json() == approx({"advantages": [-w, w], "returns": [0.375, 1.0]})


def test_gae_mask_skips_padding(client: TestClient) -> None:
    # The padded step's value (9) must not leak into the valid steps.
    body = {
        "rewards": [[0.0, 1.0, 0.0]],
        "values": [[0.5, 0.5, 9.0]],
        "mask": [[1, 1, 0]],
        "gamma": 1.0,
        "lam": 1.0,
    }
    r = client.post("/api/v1/advantages/gae", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"advantages": [[0.5, 0.5, 0.0]], "returns": [[1.0, 1.0, 9.0]]}


@pytest.mark.parametrize("whitened", [False, True])
def test_gae_agrees_with_ppo_core(client: TestClient, whitened: bool) -> None:
    gen = torch.Generator().manual_seed(4)
    rewards, values = (torch.randn(3, 8, generator=gen, dtype=torch.float64) for _ in range(2))
    mask = torch.ones(3, 8, dtype=torch.float64)
    mask[1, 5:] = 0.0
    body = as_lists({"rewards": rewards, "values": values, "mask": mask})
    r = client.post("/api/v1/advantages/gae", json=body | {"whiten": whitened})
    assert r.status_code == 200, r.text
    out = gae(rewards, values, mask)  # defaults: gamma 0.99, lam 0.95
    adv = whiten(out.advantages, mask) if whitened else out.advantages
    assert r.json() == approx({"advantages": adv.tolist(), "returns": out.returns.tolist()})


def test_group_advantages_grpo(client: TestClient) -> None:
    # Group 0: rewards 1, 0 -> mean 0.5, unbiased std sqrt(0.5); group 1 is a singleton.
    body = {"rewards": [1.0, 0.0, 5.0], "group_ids": [0, 0, 1]}
    r = client.post("/api/v1/advantages/group", json=body)
    assert r.status_code == 200, r.text
    a = 0.5 / (math.sqrt(0.5) + 1e-6)
    assert r.json() == approx({"advantages": [a, -a, 5.0 / (1.0 + 1e-6)], "estimator": "grpo"})


def test_group_advantages_dr_grpo(client: TestClient) -> None:
    body = {"rewards": [1.0, 0.0, 5.0, 3.0], "group_ids": [7, 7, -2, -2], "normalize_std": False}
    r = client.post("/api/v1/advantages/group", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"advantages": [0.5, -0.5, 1.0, -1.0], "estimator": "grpo"}


def test_group_advantages_agree_with_ppo_core(client: TestClient) -> None:
    rewards = torch.randn(12, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    ids = [i % 4 for i in range(12)]
    r = client.post(
        "/api/v1/advantages/group",
        json={"rewards": rewards.tolist(), "group_ids": ids, "eps": 1e-3},
    )
    assert r.status_code == 200, r.text
    expected = group_advantages(rewards, torch.tensor(ids), eps=1e-3)
    assert r.json() == approx({"advantages": expected.tolist(), "estimator": "grpo"})
