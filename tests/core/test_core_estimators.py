"""Estimators: group-relative advantages, REINFORCE++, GAE with episode ends, and the KL
estimators (values, gradients, clamps, expected gradients under drift) against NumPy."""

from __future__ import annotations

import math

import numpy as np
import numpy_reference as ref
import pytest
import torch
from core_inputs import generator

from ppo_core import PPOInputError, gae, group_advantages, kl_estimator_drift, kl_per_token
from ppo_core.advantages import reinforce_plus_plus
from ppo_core.kl import KL_CLAMPS, KL_ESTIMATORS, kl_from_log_ratio, kl_gradient

F64 = torch.float64

# --------------------------------------------------------------------------- group advantages

# Shuffled, non-contiguous groups: 3 -> four members, 0 -> three, 1 -> two, 2 -> one (singleton).
GROUP_IDS = torch.tensor([3, 0, 3, 1, 0, 3, 2, 0, 1, 3])
REWARDS = torch.tensor([1.0, 0.0, 0.5, 2.0, 0.0, -1.0, 4.0, 1.5, 2.0, 0.0], dtype=F64)
LENGTHS = torch.tensor([3, 1, 4, 2, 0, 5, 2, 1, 3, 2], dtype=F64)


def np_group_mean(r: np.ndarray, ids: np.ndarray, i: int) -> float:
    """verl: a group's mean, 0 for a group of one."""
    members = r[ids == ids[i]]
    return 0.0 if len(members) == 1 else float(np.mean(members))


def np_centred(r: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.array([r[i] - np_group_mean(r, ids, i) for i in range(len(r))])


def np_rloo(r: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Literally the reward minus the mean of the other members (a group of one keeps r)."""
    out = np.empty_like(r)
    for i in range(len(r)):
        others = [r[j] for j in range(len(r)) if ids[j] == ids[i] and j != i]
        out[i] = r[i] - (np.mean(others) if others else 0.0)
    return out


def np_tiled_whiten(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """verl's masked_whiten of x broadcast over each response's tokens: tile x_i lengths_i
    times, whiten the tokens (unbiased variance, rsqrt(var + 1e-8)), read one token back."""
    tokens = np.repeat(x, lengths.astype(int))
    mean, var = tokens.mean(), tokens.var(ddof=1)
    out = (x - mean) / math.sqrt(var + 1e-8)
    return np.where(lengths > 0, out, 0.0)


@pytest.mark.parametrize("eps", [1e-6, 1e-4, 1e-9])
def test_grpo_matches_numpy(eps):
    got = group_advantages(REWARDS, GROUP_IDS, estimator="grpo", eps=eps)
    expected = ref.group_advantages(REWARDS.numpy(), GROUP_IDS.numpy(), eps=eps)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13, atol=1e-15)
    assert got[6].item() == pytest.approx(4.0 / (1.0 + eps), rel=1e-14)  # singleton: mean 0, std 1


def test_grpo_without_std_is_dr_grpo():
    legacy = group_advantages(REWARDS, GROUP_IDS, estimator="grpo", normalize_std=False)
    dr = group_advantages(REWARDS, GROUP_IDS, estimator="dr_grpo")
    assert torch.equal(legacy, dr)
    np.testing.assert_allclose(dr.numpy(), np_centred(REWARDS.numpy(), GROUP_IDS.numpy()),
                               rtol=1e-14, atol=1e-15)  # fmt: skip


def test_rloo_matches_leave_one_out():
    got = group_advantages(REWARDS, GROUP_IDS, estimator="rloo")
    np.testing.assert_allclose(got.numpy(), np_rloo(REWARDS.numpy(), GROUP_IDS.numpy()),
                               rtol=1e-13, atol=1e-15)  # fmt: skip
    assert got[6].item() == 4.0  # singleton keeps its reward (verl rloo)


def test_gpg_matches_numpy():
    # alpha = B / #nonzero = 10 / 7 (three rewards are 0).
    got = group_advantages(REWARDS, GROUP_IDS, estimator="gpg")
    alpha = len(REWARDS) / np.count_nonzero(REWARDS.numpy())
    assert alpha == 10 / 7
    expected = alpha * np_centred(REWARDS.numpy(), GROUP_IDS.numpy())
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13, atol=1e-15)
    # All rewards 0: alpha = B / max(0, 1), advantages 0.
    zeros = torch.zeros(4, dtype=F64)
    assert torch.equal(group_advantages(zeros, torch.tensor([0, 0, 1, 1]), estimator="gpg"), zeros)


@pytest.mark.parametrize("with_lengths", [False, True])
def test_reinforce_plus_plus_baseline_is_token_weighted_whitening(with_lengths):
    lengths = LENGTHS if with_lengths else torch.ones_like(REWARDS)
    got = group_advantages(REWARDS, GROUP_IDS, estimator="reinforce_plus_plus_baseline",
                           lengths=LENGTHS if with_lengths else None)  # fmt: skip
    centred = np_centred(REWARDS.numpy(), GROUP_IDS.numpy())
    expected = np_tiled_whiten(centred, lengths.numpy())
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-14)
    if with_lengths:
        assert got[4].item() == 0.0  # a response with no token gets 0


def test_group_advantages_hand_computed():
    # Group 0 = [1, 0, 5], group 1 = [2] (singleton).
    #   mean 2, unbiased std sqrt(((1-2)^2 + (0-2)^2 + (5-2)^2) / 2) = sqrt(7) = 2.645751
    #   grpo:    [-1, -2, 3] / (sqrt 7 + 1e-6);  singleton 2 / (1 + 1e-6)
    #   dr_grpo: [-1, -2, 3], 2;  rloo: 3/2 [-1, -2, 3] = [-1.5, -3, 4.5], 2
    #   gpg: alpha = 4 / 3 (one reward is 0): [-4/3, -8/3, 4], 8/3
    r = torch.tensor([1.0, 0.0, 5.0, 2.0], dtype=F64)
    ids = torch.tensor([0, 0, 0, 1])
    s7 = math.sqrt(7.0)
    cases = {
        "grpo": [-1 / (s7 + 1e-6), -2 / (s7 + 1e-6), 3 / (s7 + 1e-6), 2 / (1 + 1e-6)],
        "dr_grpo": [-1.0, -2.0, 3.0, 2.0],
        "rloo": [-1.5, -3.0, 4.5, 2.0],
        "gpg": [-4 / 3, -8 / 3, 4.0, 8 / 3],
    }
    for estimator, expected in cases.items():
        got = group_advantages(r, ids, estimator=estimator)  # type: ignore[arg-type]
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-14, err_msg=estimator)


# --------------------------------------------------------------------------- REINFORCE++


def np_reinforce_returns(r: np.ndarray, m: np.ndarray, gamma: float) -> np.ndarray:
    """FORMULAS.md §1.4: G_t = (r_t + gamma G_{t+1}) m_t; a masked step passes G through."""
    out = np.zeros_like(r)
    for b in range(r.shape[0]):
        g = 0.0
        for t in range(r.shape[1] - 1, -1, -1):
            if m[b, t] > 0:
                g = r[b, t] + gamma * g
                out[b, t] = g
    return out


RPP_REWARDS = torch.tensor(
    [[0.1, 0.0, 0.0, 0.0, 1.0], [0.0, 0.5, 0.0, 2.0, 0.0], [0.0, 0.0, -1.0, 0.0, 0.0]], dtype=F64
)
# Row 0: a masked middle token (t = 2); row 1: right padding; row 2: a hole and padding.
RPP_MASK = torch.tensor([[1, 1, 0, 1, 1], [1, 1, 1, 1, 0], [1, 0, 1, 0, 0]], dtype=F64)


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.0])
def test_reinforce_plus_plus_matches_numpy(gamma):
    out = reinforce_plus_plus(RPP_REWARDS, RPP_MASK, gamma=gamma)
    m = RPP_MASK.numpy()
    returns = np_reinforce_returns(RPP_REWARDS.numpy(), m, gamma)
    np.testing.assert_allclose(out.returns.numpy(), returns, rtol=1e-14, atol=1e-15)
    expected = ref.whiten(returns, m) * m
    np.testing.assert_allclose(out.advantages.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_reinforce_plus_plus_hand_computed():
    # gamma = 0.9, rewards [0, 0, 1], mask [1, 0, 1]:
    #   t = 2: G = 1; t = 1 (masked): returns 0, G = 1 passes through undiscounted;
    #   t = 0: G = 0 + 0.9 * 1 = 0.9.  (verl's loop resets G after a masked step instead —
    #   `running_return *= response_mask[:, t]` — giving G_0 = 0; see the report.)
    #   Whitening over the 2 valid tokens [0.9, 1]: mean 0.95, unbiased var 0.005:
    #   (+-0.05) / sqrt(0.005 + 1e-8) = -+0.707106
    r = torch.tensor([[0.0, 0.0, 1.0]], dtype=F64)
    out = reinforce_plus_plus(r, torch.tensor([[1.0, 0.0, 1.0]], dtype=F64), gamma=0.9)
    np.testing.assert_allclose(out.returns.numpy(), [[0.9, 0.0, 1.0]], rtol=1e-15)
    np.testing.assert_allclose(out.advantages.numpy(), [[-0.707106, 0.0, 0.707106]], atol=1e-6)


def test_reinforce_plus_plus_group_form():
    # group_ids: score_i = sum_t r_t minus its group's mean, on each valid token, whitened over
    # the tokens — group_advantages' reinforce_plus_plus_baseline with lengths = n_i.
    ids = torch.tensor([0, 0, 1])
    out = reinforce_plus_plus(RPP_REWARDS, RPP_MASK, group_ids=ids)
    lengths = RPP_MASK.sum(-1)
    per_row = group_advantages(
        RPP_REWARDS.sum(-1), ids, estimator="reinforce_plus_plus_baseline", lengths=lengths
    )
    torch.testing.assert_close(out.advantages, per_row[:, None] * RPP_MASK, rtol=1e-12, atol=1e-14)
    m = RPP_MASK.numpy()
    scores = RPP_REWARDS.numpy().sum(-1)  # [1.1, 2.5, -1]: group 0 mean 1.8, group 1 singleton
    centred = np.array([1.1 - 1.8, 2.5 - 1.8, -1.0])
    np.testing.assert_allclose(np_centred(scores, ids.numpy()), centred, rtol=1e-14)
    expected = np_tiled_whiten(centred, lengths.numpy())[:, None] * m
    np.testing.assert_allclose(out.advantages.numpy(), expected, rtol=1e-12, atol=1e-14)
    assert torch.equal(out.returns, out.advantages)


# --------------------------------------------------------------------------- GAE


def np_cleanrl_gae(rewards, values, cl_dones, next_value, next_done, gamma, lam):
    """CleanRL ppo.py, verbatim in structure: arrays [num_steps, num_envs]; cl_dones[t] = 1 means
    observation t starts a new episode."""
    num_steps = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    lastgaelam = 0.0
    for t in reversed(range(num_steps)):
        if t == num_steps - 1:
            nextnonterminal = 1.0 - next_done
            nextvalues = next_value
        else:
            nextnonterminal = 1.0 - cl_dones[t + 1]
            nextvalues = values[t + 1]
        delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
        advantages[t] = lastgaelam = delta + gamma * lam * nextnonterminal * lastgaelam
    return advantages, advantages + values


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (1.0, 1.0), (0.9, 0.0), (0.5, 0.7)])
@pytest.mark.parametrize("last_value_kind", ["per-row", "float", "none"])
def test_gae_with_dones_matches_cleanrl(gamma, lam, last_value_kind):
    gen = generator(17)
    batch, steps = 3, 12
    rewards = torch.randn(batch, steps, generator=gen, dtype=F64)
    values = torch.randn(batch, steps, generator=gen, dtype=F64)
    dones = (torch.rand(batch, steps, generator=gen) < 0.2).to(F64)
    dones[0, -1] = 1.0  # an episode ending exactly at the last step: next_done = 1
    last = {"per-row": torch.randn(batch, generator=gen, dtype=F64),
            "float": torch.full((batch,), 0.7, dtype=F64),
            "none": torch.zeros(batch, dtype=F64)}[last_value_kind]  # fmt: skip
    arg = {"per-row": last, "float": 0.7, "none": None}[last_value_kind]
    out = gae(rewards, values, gamma=gamma, lam=lam, dones=dones, last_value=arg)
    # Our dones[t] ("episode ended at t") is CleanRL's dones[t + 1]; next_done = dones[T - 1].
    cl_dones = np.zeros((steps, batch))
    cl_dones[1:] = dones.numpy().T[:-1]
    cl_dones[0] = 1.0  # irrelevant: CleanRL never reads dones[0]
    adv, ret = np_cleanrl_gae(rewards.numpy().T, values.numpy().T, cl_dones, last.numpy(),
                              dones.numpy()[:, -1], gamma, lam)  # fmt: skip
    np.testing.assert_allclose(out.advantages.numpy(), adv.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.returns.numpy(), ret.T, rtol=1e-12, atol=1e-12)
    assert dones.sum() > 1  # the inputs do cut episodes


def test_gae_with_dones_hand_computed():
    # r = [1, 2, 3], V = [0.5, 1, 1.5], dones = [0, 1, 0], last_value = 4, gamma 0.9, lam 0.8:
    #   t = 2: delta = 3 + 0.9 * 4 - 1.5 = 5.1;               A2 = 5.1
    #   t = 1: done -> delta = 2 - 1 = 1;                     A1 = 1
    #   t = 0: delta = 1 + 0.9 * 1 - 0.5 = 1.4;  A0 = 1.4 + 0.9 * 0.8 * 1 = 2.12
    #   returns = A + V = [2.62, 2, 6.6]
    out = gae(torch.tensor([1.0, 2.0, 3.0], dtype=F64), torch.tensor([0.5, 1.0, 1.5], dtype=F64),
              gamma=0.9, lam=0.8, dones=torch.tensor([0.0, 1.0, 0.0], dtype=F64),
              last_value=4.0)  # fmt: skip
    np.testing.assert_allclose(out.advantages.numpy(), [2.12, 1.0, 5.1], rtol=1e-14)
    np.testing.assert_allclose(out.returns.numpy(), [2.62, 2.0, 6.6], rtol=1e-14)


def test_gae_last_value_errors():
    r = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(PPOInputError) as err:
        gae(r, r, last_value=torch.zeros(3, dtype=F64))
    assert err.value.field == "last_value"
    with pytest.raises(PPOInputError) as err:
        gae(r, r, last_value=math.nan)
    assert err.value.field == "last_value"


# --------------------------------------------------------------------------- KL estimators

# d = log pi - log ref over the clamps' regions, up to verl's ±20 and beyond (±25), the
# OpenRLHF k3 floor (-10) and the value clamp (k3 = 10 near d = -2.53 and d = 11.9); exact
# boundaries avoided (the gradient is undefined there).
D_VALUES = torch.tensor(
    [-25.0, -21.0, -12.0, -9.5, -2.7, -2.4, -1.0, -0.3, -1e-4, 0.0, 1e-4, 0.4, 1.5, 3.0,
     9.0, 10.5, 11.0, 12.5, 19.0, 21.0, 25.0],
    dtype=F64,
)  # fmt: skip


@pytest.mark.parametrize("clamp", KL_CLAMPS)
@pytest.mark.parametrize("estimator", KL_ESTIMATORS)
def test_kl_values_match_numpy(estimator, clamp):
    ref_lp = torch.linspace(-3.0, -0.5, len(D_VALUES), dtype=F64)
    lp = ref_lp + D_VALUES
    expected = ref.kl_per_token(lp.numpy(), ref_lp.numpy(), estimator, clamp)
    got = kl_per_token(lp, ref_lp, estimator, clamp=clamp)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-12, atol=1e-15)
    direct = kl_from_log_ratio(D_VALUES, estimator, clamp)
    np.testing.assert_allclose(direct.detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("clamp", KL_CLAMPS)
@pytest.mark.parametrize("estimator", KL_ESTIMATORS)
def test_kl_gradient_matches_numpy(estimator, clamp):
    ref_lp = torch.full_like(D_VALUES, -1.0)
    lp = ref_lp + D_VALUES
    expected = ref.kl_gradient(lp.numpy(), ref_lp.numpy(), estimator, clamp)
    if (estimator, clamp) == ("k2", "openrlhf"):
        # OpenRLHF clamps every estimate to ±10 (FORMULAS.md §2.4), so k2 = d^2/2 is flat, with
        # gradient 0, for |d| > sqrt(20) = 4.47: the reference must say so too.
        d = D_VALUES.numpy()
        np.testing.assert_allclose(expected, np.where(0.5 * d**2 > 10, 0.0, d), rtol=1e-12)
    got = kl_gradient(lp, ref_lp, estimator, clamp=clamp)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("clamp", KL_CLAMPS)
def test_k3_plus_has_k3_value_and_the_true_gradient(clamp):
    ref_lp = torch.full_like(D_VALUES, -2.0)
    lp = ref_lp + D_VALUES
    assert torch.equal(kl_per_token(lp, ref_lp, "k3+", clamp=clamp),
                       kl_per_token(lp, ref_lp, "k3", clamp=clamp))  # fmt: skip
    # gradient d = log pi - log ref, unclamped, even where the k3 value is clamped.
    torch.testing.assert_close(kl_gradient(lp, ref_lp, "k3+", clamp=clamp), D_VALUES,
                               rtol=1e-14, atol=1e-14)  # fmt: skip


def test_kl_hand_computed_clamps():
    # d = -25 (ref - lp = 25): k3 unclamped = e^25 - 25 - 1 = 7.200489934e10;
    #   verl: x = clamp(25, ±20) = 20 -> e^20 - 21 = 4.85165174e8 -> value clamp 10;
    #   openrlhf: d >= -10 -> x = 10: e^10 - 11 = 22015.47 -> clamp 10.
    # d = 25: k3 = e^-25 + 24 = 24.0; verl: x = -20 -> e^-20 + 19 -> 10; openrlhf: 24 -> 10.
    # k1 / k2 at d = 25: verl 25 / 312.5 (unclamped), openrlhf 10 / 10.
    d = torch.tensor([-25.0, 25.0], dtype=F64)
    np.testing.assert_allclose(kl_from_log_ratio(d, "k3").numpy(),
                               [math.exp(25) - 26, math.exp(-25) + 24], rtol=1e-14)  # fmt: skip
    assert kl_from_log_ratio(d, "k3", "verl").tolist() == [10.0, 10.0]
    assert kl_from_log_ratio(d, "k3", "openrlhf").tolist() == [10.0, 10.0]
    assert kl_from_log_ratio(d, "k1", "verl").tolist() == [-25.0, 25.0]
    assert kl_from_log_ratio(d, "k2", "verl").tolist() == [312.5, 312.5]
    assert kl_from_log_ratio(d, "k1", "openrlhf").tolist() == [-10.0, 10.0]
    assert kl_from_log_ratio(d, "k2", "openrlhf").tolist() == [10.0, 10.0]
    assert kl_from_log_ratio(d, "abs", "openrlhf").tolist() == [10.0, 10.0]


def test_kl_unknown_estimator_and_clamp_are_rejected():
    d = torch.zeros(2)
    with pytest.raises(PPOInputError) as err:
        kl_from_log_ratio(d, "k4")  # type: ignore[arg-type]
    assert err.value.field == "estimator" and "k4" in err.value.problem
    with pytest.raises(PPOInputError) as err:
        kl_from_log_ratio(d, "k3", "trl")  # type: ignore[arg-type]
    assert err.value.field == "clamp" and "trl" in err.value.problem


@pytest.mark.parametrize("vocab_size,seed", [(50, 0), (7, 3), (200, 11)])
def test_kl_drift_expected_gradients(vocab_size, seed):
    out = kl_estimator_drift(vocab_size=vocab_size, samples=4, seed=seed)
    g = out.gradient
    torch.testing.assert_close(g["k2"], out.true_gradient, rtol=0, atol=1e-10)
    torch.testing.assert_close(g["k3+"], out.true_gradient, rtol=0, atol=1e-10)
    torch.testing.assert_close(g["k1"], torch.zeros_like(g["k1"]), rtol=0, atol=1e-10)
    torch.testing.assert_close(g["k3"], out.reverse_kl_gradient, rtol=0, atol=1e-10)
    # Away from drift 0 the forward and reverse gradients differ: k3 is biased as a loss.
    assert (g["k3"][1:] - out.true_gradient[1:]).abs().max() > 1e-3
    # The true gradient is the derivative of the exact KL (central differences on the grid).
    kl, drift = out.true_kl.numpy(), out.drift.numpy()
    fd = (kl[2:] - kl[:-2]) / (drift[2:] - drift[:-2])
    mid = out.true_gradient.numpy()[1:-1]
    np.testing.assert_allclose(fd, mid, rtol=0.05, atol=1e-3)
