"""The policy-loss family (vanilla, gspo, cispo, sapo, gpg, geo_mean): NumPy re-derivation with
analytic gradients, hand-computed cases, invariants (hypothesis), device and dtype."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy_reference as ref
import pytest
import torch
from core_inputs import generator, policy_batch, ragged_mask
from hypothesis import given, settings
from hypothesis import strategies as st

from ppo_core import LOSS_AGG_MODES, entropy_from_logits, group_advantages, policy_loss
from ppo_core.advantages import group_stats, reinforce_plus_plus
from ppo_core.aggregation import aggregation_weights
from ppo_core.kl import kl_from_log_ratio, kl_per_token
from ppo_core.policy import POLICY_LOSS_MODES, clip_bounds, policy_terms
from ppo_core.rollout import rollout_weights

F64 = torch.float64
SHAPE = (4, 9)
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)

AGG_CONFIGS: dict[str, dict[str, Any]] = {
    "token-mean": {"loss_agg_mode": "token-mean"},
    "token-sum": {"loss_agg_mode": "token-sum"},
    "seq-mean-token-mean": {"loss_agg_mode": "seq-mean-token-mean"},
    "seq-mean-token-mean-count-empty": {
        "loss_agg_mode": "seq-mean-token-mean",
        "count_empty_rows": True,
    },
    "seq-mean-token-sum": {"loss_agg_mode": "seq-mean-token-sum"},
    "seq-mean-token-sum-norm": {"loss_agg_mode": "seq-mean-token-sum-norm"},
    "seq-mean-token-sum-norm-L7": {
        "loss_agg_mode": "seq-mean-token-sum-norm",
        "loss_scale_factor": 7.0,
    },
    "seq-mean-token-sum-norm-L7-count-empty": {
        "loss_agg_mode": "seq-mean-token-sum-norm",
        "loss_scale_factor": 7.0,
        "count_empty_rows": True,
    },
}
MASKS = ["none", "ragged", "ragged-empty-row"]
ADV_SHAPES = ["token", "sequence"]
COMPARED = (
    "clip_fraction",
    "clip_fraction_lower",
    "ratio_outside_fraction",
    "approx_kl",
    "approx_kl_k2",
    "approx_kl_k3",
)
# Per-row shifts of the log-ratio: row 0 ends up above 1 + eps, row 1 below 1 - eps, row 3 high
# enough that dual clip (c = 1.25) binds where A < 0 — for the sequence modes too.
ROW_SHIFT = torch.tensor([[0.35], [-0.3], [0.02], [0.45]], dtype=F64)
SEQ_ADV = torch.tensor([1.3, -0.7, 0.4, -1.1], dtype=F64)


def make_mask(name: str) -> torch.Tensor | None:
    if name == "none":
        return None
    return ragged_mask(SHAPE, empty_row=name == "ragged-empty-row")


def family_batch(seed: int, adv_shape: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b = policy_batch(SHAPE, "mixed", seed, spread=0.5)
    adv = b.advantages if adv_shape == "token" else SEQ_ADV.clone()
    return b.logprobs + ROW_SHIFT, b.old_logprobs, adv


def is_weights(seed: int) -> torch.Tensor:
    return torch.rand(SHAPE, generator=generator(seed), dtype=F64) * 1.5 + 0.5


def ref_kwargs(knobs: dict[str, Any]) -> dict[str, Any]:
    """policy_loss keyword arguments -> numpy_reference.policy_family ones."""
    out = dict(knobs)
    eps = out.pop("clip_ratio", 0.2)
    low, high = out.pop("clip_ratio_low", None), out.pop("clip_ratio_high", None)
    out["eps_low"] = eps if low is None else low
    out["eps_high"] = eps if high is None else high
    for ours, theirs in (("sapo_tau_pos", "tau_pos"), ("sapo_tau_neg", "tau_neg")):
        if ours in out:
            out[theirs] = out.pop(ours)
    if "rollout_is_weights" in out:
        out["is_weights"] = out.pop("rollout_is_weights").numpy()
    return out


def run_and_compare(lp, old, adv, mask, mode: str, knobs: dict[str, Any]):
    """policy_loss vs numpy_reference.policy_family: values, diagnostics and the gradient."""
    leaf = lp.detach().clone().requires_grad_(True)
    out = policy_loss(leaf, old, adv, mask, policy_loss_mode=mode, **knobs)
    (grad,) = torch.autograd.grad(out.loss, leaf)
    expected = ref.policy_family(
        lp.numpy(),
        old.numpy(),
        adv.numpy(),
        None if mask is None else mask.numpy(),
        mode=mode,
        **ref_kwargs(knobs),
    )
    tol = {"rtol": 1e-10, "atol": 1e-13}
    np.testing.assert_allclose(out.loss.item(), expected["loss"], **tol, err_msg="loss")
    np.testing.assert_allclose(
        out.per_token_loss.detach().numpy(), expected["per_token_loss"], **tol, err_msg="per_token"
    )
    np.testing.assert_allclose(
        out.ratio.detach().numpy(), expected["ratio"], **tol, err_msg="ratio"
    )
    for name in COMPARED:
        np.testing.assert_allclose(getattr(out, name), expected[name], **tol, err_msg=name)
    np.testing.assert_allclose(grad.numpy(), expected["grad"], **tol, err_msg="gradient")
    return out, grad


# --------------------------------------------------------------------------- NumPy matrix


@pytest.mark.parametrize("adv_shape", ADV_SHAPES)
@pytest.mark.parametrize("mask_name", MASKS)
@pytest.mark.parametrize("agg", list(AGG_CONFIGS))
@pytest.mark.parametrize("mode", POLICY_LOSS_MODES)
def test_family_matches_numpy(mode, agg, mask_name, adv_shape):
    lp, old, adv = family_batch(7, adv_shape)
    run_and_compare(lp, old, adv, make_mask(mask_name), mode, AGG_CONFIGS[agg])


def _knob_cases() -> list[tuple[str, str, dict[str, Any]]]:
    w = is_weights(11)
    cases = [
        ("vanilla", "dual-clip", {"dual_clip": 1.25}),
        ("vanilla", "asymmetric-dual-clip", {"clip_ratio_high": 0.28, "dual_clip": 1.6}),
        ("vanilla", "log-ratio-clamp", {"log_ratio_clamp": 0.3}),
        ("vanilla", "rollout-is", {"rollout_is_weights": w}),
        ("gspo", "dual-clip", {"dual_clip": 1.25}),
        ("gspo", "through-mean", {"gspo_stop_gradient": False}),
        ("gspo", "through-mean-dual-clip", {"gspo_stop_gradient": False, "dual_clip": 1.25}),
        ("gspo", "log-ratio-max", {"gspo_log_ratio_max": 0.1}),
        ("gspo", "through-mean-log-ratio-max", {"gspo_stop_gradient": False,
                                                "gspo_log_ratio_max": 0.1}),
        ("gspo", "asymmetric", {"clip_ratio_low": 0.1, "clip_ratio_high": 0.3}),
        ("gspo", "rollout-is", {"rollout_is_weights": w}),
        ("gspo", "through-mean-rollout-is", {"gspo_stop_gradient": False,
                                             "rollout_is_weights": w}),
        ("cispo", "band-asymmetric", {"clip_ratio_low": 0.1, "clip_ratio_high": 0.28}),
        ("cispo", "absolute", {"cispo_clip": "absolute", "clip_ratio_high": 1.1}),
        ("cispo", "absolute-5", {"cispo_clip": "absolute", "clip_ratio_high": 5.0}),
        ("cispo", "log-ratio-clamp", {"log_ratio_clamp": 0.3}),
        ("cispo", "rollout-is", {"rollout_is_weights": w}),
        ("sapo", "taus", {"sapo_tau_pos": 0.5, "sapo_tau_neg": 2.0}),
        ("sapo", "sharp-taus", {"sapo_tau_pos": 8.0, "sapo_tau_neg": 10.0}),
        ("sapo", "log-ratio-clamp", {"log_ratio_clamp": 0.3}),
        ("sapo", "rollout-is", {"rollout_is_weights": w}),
        ("gpg", "rollout-is", {"rollout_is_weights": w}),
        ("gpg", "log-ratio-clamp", {"log_ratio_clamp": 0.3}),
        ("geo_mean", "asymmetric", {"clip_ratio_low": 0.1, "clip_ratio_high": 0.3}),
        ("geo_mean", "gmpo-0.4", {"clip_ratio": 0.4}),
        ("geo_mean", "rollout-is", {"rollout_is_weights": w}),
    ]  # fmt: skip
    return cases


KNOB_CASES = _knob_cases()
KNOB_AGGS = ["token-mean", "seq-mean-token-mean-count-empty", "seq-mean-token-sum-norm-L7"]


@pytest.mark.parametrize("adv_shape", ADV_SHAPES)
@pytest.mark.parametrize("mask_name", MASKS)
@pytest.mark.parametrize("agg", KNOB_AGGS)
@pytest.mark.parametrize(
    "mode,knobs", [(m, k) for m, _, k in KNOB_CASES], ids=[f"{m}-{n}" for m, n, _ in KNOB_CASES]
)
def test_family_knobs_match_numpy(mode, knobs, agg, mask_name, adv_shape):
    lp, old, adv = family_batch(13, adv_shape)
    run_and_compare(lp, old, adv, make_mask(mask_name), mode, {**AGG_CONFIGS[agg], **knobs})


def ratio_max_is(value: float):
    return lambda o: o.ratio_max == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    "mode,knobs,check",
    [
        ("vanilla", {"dual_clip": 1.25}, lambda o: 0 < o.clip_fraction_lower < 1),
        ("gspo", {"dual_clip": 1.25}, lambda o: 0 < o.clip_fraction_lower < 1),
        ("gspo", {}, lambda o: 0 < o.clip_fraction < 1),
        ("gspo", {"gspo_log_ratio_max": 0.1}, ratio_max_is(math.exp(0.1))),
        ("cispo", {}, lambda o: 0 < o.clip_fraction < 1),
        (
            "cispo",
            {"cispo_clip": "absolute", "clip_ratio_high": 1.1},
            lambda o: 0 < o.clip_fraction < 1,
        ),
        ("geo_mean", {}, lambda o: o.clip_fraction > 0 and o.clip_fraction_lower > 0),
        ("vanilla", {"log_ratio_clamp": 0.3}, ratio_max_is(math.exp(0.3))),
    ],
)
@pytest.mark.parametrize("adv_shape", ADV_SHAPES)
def test_family_inputs_exercise_the_knobs(mode, knobs, check, adv_shape):
    """The inputs of the matrix above do reach the branch each knob acts on."""
    lp, old, adv = family_batch(13, adv_shape)
    for mask_name in MASKS:
        out = policy_loss(lp, old, adv, make_mask(mask_name), policy_loss_mode=mode, **knobs)
        assert check(out), (mode, knobs, mask_name)


def test_log_ratio_clamp_leaves_sequence_ratios_alone():
    """``log_ratio_clamp`` bounds token ratios only: GSPO's and GMPO's sequence ratios are not
    clamped by it (verl, TRL and OpenRLHF apply no ±20 clamp there); log s = 0.5 stays 0.5."""
    lp = torch.tensor([[0.5, 0.5]], dtype=F64)
    for mode in ("gspo", "geo_mean"):
        out = policy_loss(lp, torch.zeros_like(lp), torch.tensor([-1.0], dtype=F64),
                          policy_loss_mode=mode, log_ratio_clamp=0.3, clip_ratio=0.6)  # fmt: skip
        close(out.ratio, [[math.exp(0.5)] * 2], rel=1e-14)


def test_geo_mean_log_ratio_clamp_treats_both_signs_alike():
    # Row 0: A = +1, log r = -0.5 on both tokens: kept = min(lr, clip(lr, -0.2, 0.2)) = -0.5,
    #   sequence ratio e^-0.5. Row 1 mirrors it: A = -1, log r = +0.5: kept = max(lr, clip(lr))
    #   = 0.5, ratio e^0.5. Whatever log_ratio_clamp = 0.3 means for geo_mean (nothing, as in
    #   verl: e^-0.5 / e^0.5; or a two-sided clamp, as gspo: e^-0.3 / e^0.3), mirrored rows keep
    #   reciprocal ratios. ppo_core returns e^-0.5 and e^0.3 (product e^-0.2).
    lp = torch.tensor([[-0.5, -0.5], [0.5, 0.5]], dtype=F64)
    out = policy_loss(lp, torch.zeros_like(lp), torch.tensor([1.0, -1.0], dtype=F64),
                      policy_loss_mode="geo_mean", log_ratio_clamp=0.3)  # fmt: skip
    ratios = out.ratio[:, 0].tolist()
    assert ratios[0] * ratios[1] == pytest.approx(1.0, rel=1e-7)


# --------------------------------------------------------------------------- hand-computed


def close(actual: torch.Tensor, expected, *, rel: float = 1e-12, abs: float = 1e-15) -> None:
    np.testing.assert_allclose(actual.detach().numpy(), np.asarray(expected), rtol=rel, atol=abs)


def _grad(mode: str, lp, old, adv, mask=None, **knobs):
    leaf = lp.detach().clone().requires_grad_(True)
    out = policy_loss(leaf, old, adv, mask, policy_loss_mode=mode, **knobs)
    (grad,) = torch.autograd.grad(out.loss, leaf)
    return out, grad


def test_hand_vanilla_seq_mean():
    # Row 0: r = [1.5, 1.0], A = 1 -> losses [-min(1.5, 1.2), -1] = [-1.2, -1.0], mean -1.1.
    # Row 1: r = [0.5, pad], A = -1 -> loss max(0.5, 0.8) = 0.8.
    # seq-mean-token-mean = (-1.1 + 0.8) / 2 = -0.15; token-mean = (-1.2 - 1 + 0.8) / 3 = -0.4667.
    # Gradient (token-mean): -A r / 3 on unclipped tokens: token (0, 1): -1/3; clipped: 0.
    lp = torch.log(torch.tensor([[1.5, 1.0], [0.5, 1.0]], dtype=F64))
    old, adv = torch.zeros_like(lp), torch.tensor([1.0, -1.0], dtype=F64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=F64)
    out = policy_loss(lp, old, adv, mask, loss_agg_mode="seq-mean-token-mean")
    assert out.loss.item() == pytest.approx(-0.15, rel=1e-7)
    out, grad = _grad("vanilla", lp, old, adv, mask)
    assert out.loss.item() == pytest.approx(-1.4 / 3, rel=1e-12)
    close(grad, [[0.0, -1 / 3], [0.0, 0.0]])
    assert out.clip_fraction == pytest.approx(2 / 3)


def test_hand_gspo():
    # Row 0: log r = [ln 2, ln 0.5, 0] -> mean 0 -> s = 1; A = +1 -> loss -1 on each token.
    # Row 1: log r = [ln 1.69, 0, pad] -> mean ln 1.3 -> s = 1.3; A = -1 ->
    #   max(-A s, -A clip(s)) = max(1.3, 1.2) = 1.3 on each valid token (unclipped branch).
    # token-mean = (-3 + 2.6) / 5 = -0.08; seq-mean-token-mean = (-1 + 1.3) / 2 = 0.15.
    # Gradient (stop-gradient, token-mean): -A_t s_i / 5: row 0 -> -0.2, row 1 -> 1.3 / 5 = 0.26.
    # Through the mean: each row's gradients summed, spread evenly: the same here (one A per row).
    # Dual clip c = 1.25: row 1 -> min(1.3, 1.25) = 1.25, flat: gradient 0; loss (-3 + 2.5) / 5.
    lp = torch.log(torch.tensor([[2.0, 0.5, 1.0], [1.69, 1.0, 1.0]], dtype=F64))
    old, adv = torch.zeros_like(lp), torch.tensor([1.0, -1.0], dtype=F64)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=F64)
    for stop in (True, False):
        out, grad = _grad("gspo", lp, old, adv, mask, gspo_stop_gradient=stop)
        assert out.loss.item() == pytest.approx(-0.08, rel=1e-12)
        assert out.ratio[1, 0].item() == pytest.approx(1.3, rel=1e-14)
        close(grad, [[-0.2] * 3, [0.26, 0.26, 0.0]])
        assert out.clip_fraction == 0.0
    seq = policy_loss(
        lp, old, adv, mask, policy_loss_mode="gspo", loss_agg_mode="seq-mean-token-mean"
    )
    assert seq.loss.item() == pytest.approx(0.15, rel=1e-7)
    out, grad = _grad("gspo", lp, old, adv, mask, dual_clip=1.25)
    assert out.loss.item() == pytest.approx(-0.1, rel=1e-12)
    close(grad, [[-0.2] * 3, [0.0] * 3])
    assert out.clip_fraction_lower == pytest.approx(2 / 5)


def test_hand_gspo_through_mean_spreads_token_advantages():
    # One row, log r = [0, 0] (s = 1), token advantages A = [2, -1]: loss_t = -A_t s.
    # Stop-gradient: token t gets -A_t s / 2 = [-1, 0.5].
    # Through the mean: d s / d lp_t = s / 2 for both tokens, so each gets
    #   (1/2)(-A_0 - A_1) s / 2 = (1/2)(-1) / 2 = -0.25.
    lp = torch.zeros(1, 2, dtype=F64)
    adv = torch.tensor([[2.0, -1.0]], dtype=F64)
    _, grad = _grad("gspo", lp, lp.clone(), adv)
    close(grad, [[-1.0, 0.5]])
    _, grad = _grad("gspo", lp, lp.clone(), adv, gspo_stop_gradient=False)
    close(grad, [[-0.25, -0.25]])


def test_hand_cispo():
    # old = -1, r = [1.5, 0.5, 1.1] -> lp = -1 + ln r = [-0.594535, -1.693147, -0.904690].
    # band [0.8, 1.2]: w = [1.2, 0.8, 1.1]; A = [1, -1, 2]; loss_t = -w A lp:
    #   [0.713442, -1.354518, 1.990318], token-mean 0.449748; gradient -w A / 3 = [-0.4,
    #   0.266667, -0.733333]; clip fraction 2/3 (w != r on tokens 0 and 1).
    # absolute cap 1.3: w = [1.3, 0.5, 1.1]: gradient [-1.3, 0.5, -2.2] / 3; clip fraction 1/3.
    r = torch.tensor([1.5, 0.5, 1.1], dtype=F64)
    old = torch.full((3,), -1.0, dtype=F64)
    adv = torch.tensor([1.0, -1.0, 2.0], dtype=F64)
    out, grad = _grad("cispo", old + r.log(), old, adv)
    assert out.per_token_loss.tolist() == pytest.approx([0.713442, -1.354518, 1.990318], abs=1e-6)
    assert out.loss.item() == pytest.approx(0.449748, abs=1e-6)
    assert grad.tolist() == pytest.approx([-0.4, 0.8 / 3, -2.2 / 3], rel=1e-12)
    assert out.clip_fraction == pytest.approx(2 / 3)
    out, grad = _grad("cispo", old + r.log(), old, adv, cispo_clip="absolute", clip_ratio_high=1.3)
    assert grad.tolist() == pytest.approx([-1.3 / 3, 0.5 / 3, -2.2 / 3], rel=1e-12)
    assert out.clip_fraction == pytest.approx(1 / 3)


def test_hand_sapo():
    # r = 1: gate = sigma(0) * 4 / tau = 2 / tau. A = 1 (tau_pos 1): loss -2.
    #   A = -1 (tau_neg 1.05): loss 2 / 1.05 = 1.904762. Gradient -4 s(1-s) r A = -A at r = 1.
    # r = 2, A = 1, tau 1: s = sigma(1) = 0.731059, loss = -4 s = -2.924234,
    #   gradient -4 s (1 - s) r = -4 * 0.196612 * 2 = -1.572895.
    lp = torch.log(torch.tensor([1.0, 1.0, 2.0], dtype=F64))
    adv = torch.tensor([1.0, -1.0, 1.0], dtype=F64)
    out, grad = _grad("sapo", lp, torch.zeros(3, dtype=F64), adv, loss_agg_mode="token-sum")
    assert out.per_token_loss.tolist() == pytest.approx([-2.0, 1.904762, -2.924234], abs=1e-6)
    assert grad.tolist() == pytest.approx([-1.0, 1.0, -1.572895], abs=1e-6)
    assert out.clip_fraction == out.clip_fraction_lower == 0.0


def test_hand_gpg():
    # loss_t = -lp A: lp = [-0.5, -2], A = [1, -3] -> [0.5, -6], token-mean -2.75;
    # gradient -A / 2 = [-0.5, 1.5], whatever the old log-probs.
    lp = torch.tensor([-0.5, -2.0], dtype=F64)
    out, grad = _grad("gpg", lp, torch.tensor([-3.0, 0.7], dtype=F64),
                      torch.tensor([1.0, -3.0], dtype=F64))  # fmt: skip
    assert out.per_token_loss.tolist() == [0.5, -6.0]
    assert out.loss.item() == -2.75
    assert grad.tolist() == [-0.5, 1.5]


def test_hand_geo_mean():
    # eps 0.2 (log-space band [-0.2, 0.2]); both rows log r = [0.1, 0.5, -0.5].
    # Row 0, A = +1: kept = min(lr, clip(lr)) = [0.1, 0.2, -0.5], mean -0.2/3 -> ratio
    #   e^-0.066667 = 0.935507, loss -0.935507. Free tokens (kept = lr): 0 and 2.
    # Row 1, A = -1: kept = max(lr, clip(lr)) = [0.1, 0.5, -0.2], mean 0.4/3 -> ratio
    #   e^0.133333 = 1.142631, loss +1.142631. Free tokens: 0 and 1.
    # loss = mean over rows = 0.103562 (means over n + 1e-8: relative 1e-8).
    # Gradient: row_loss / (B n) on free tokens: row 0: -0.155918, row 1: 0.190439.
    # clip_fraction (clipped & A > 0) = 2/6; clip_fraction_lower (clipped & A < 0) = 2/6.
    lr = torch.tensor([[0.1, 0.5, -0.5]] * 2, dtype=F64)
    out, grad = _grad("geo_mean", lr, torch.zeros_like(lr), torch.tensor([1.0, -1.0], dtype=F64))
    assert out.loss.item() == pytest.approx(0.103562, abs=1e-6)
    assert out.ratio[:, 0].tolist() == pytest.approx([0.935507, 1.142631], abs=1e-6)
    close(grad, [[-0.155918, 0.0, -0.155918], [0.190439, 0.190439, 0.0]], rel=0, abs=1e-6)
    assert out.clip_fraction == pytest.approx(1 / 3)
    assert out.clip_fraction_lower == pytest.approx(1 / 3)


def test_hand_geo_mean_rollout_weights_use_the_row_geometric_mean():
    # r = 1 everywhere, A = 1: row loss -1. IS weights [4, 1] -> geometric mean 2 -> loss -2
    # (an arithmetic mean would give -2.5); every row counts in the mean, the empty one as 0.
    lp = torch.zeros(2, 2, dtype=F64)
    w = torch.tensor([[4.0, 1.0], [3.0, 3.0]], dtype=F64)
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=F64)
    out = policy_loss(lp, lp, torch.ones(2, dtype=F64), mask, policy_loss_mode="geo_mean",
                      rollout_is_weights=w)  # fmt: skip
    assert out.loss.item() == pytest.approx(-2.0 / 2, rel=1e-8)


# --------------------------------------------------------------------------- invariants


WIDTHS = st.integers(1, 6)
LOG_RATIOS = st.floats(-1.5, 1.5)


@st.composite
def rows(draw, *, width=WIDTHS, log_ratio=LOG_RATIOS):
    """A [B, T] batch: log-ratios, token advantages, a mask with at least one valid token."""
    b, t = draw(st.integers(1, 4)), draw(width)
    n = b * t
    lr = draw(st.lists(log_ratio, min_size=n, max_size=n))
    adv = draw(st.lists(st.floats(-3.0, 3.0), min_size=n, max_size=n))
    bits = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    bits[draw(st.integers(0, n - 1))] = True
    old = draw(st.lists(st.floats(-4.0, -0.1), min_size=n, max_size=n))

    def as_tensor(values):
        return torch.tensor(values, dtype=F64).reshape(b, t)

    o = as_tensor(old)
    return o + as_tensor(lr), o, as_tensor(adv), as_tensor(bits)


agg_modes = st.sampled_from(LOSS_AGG_MODES)


@SETTINGS
@given(
    rows(width=st.just(1)),
    st.floats(0.05, 0.5),
    st.floats(0.05, 0.5),
    st.sampled_from([None, 1.5, 3.0]),
    agg_modes,
    st.booleans(),
)
def test_gspo_equals_vanilla_on_one_token_sequences(batch, eps_low, eps_high, dual, agg, stop):
    lp, old, adv, mask = batch
    knobs = {"clip_ratio_low": eps_low, "clip_ratio_high": eps_high, "dual_clip": dual,
             "loss_agg_mode": agg}  # fmt: skip
    van, g_van = _grad("vanilla", lp, old, adv, mask, **knobs)
    gs, g_gs = _grad("gspo", lp, old, adv, mask, gspo_stop_gradient=stop, **knobs)
    torch.testing.assert_close(gs.loss, van.loss, rtol=1e-12, atol=1e-15)
    valid = mask > 0  # an empty row's sequence ratio is 1 (log s = 0 / 1): padding differs
    torch.testing.assert_close(
        gs.per_token_loss[valid], van.per_token_loss[valid], rtol=1e-12, atol=1e-15
    )
    torch.testing.assert_close(g_gs, g_van, rtol=1e-12, atol=1e-15)
    assert gs.clip_fraction == van.clip_fraction
    assert gs.clip_fraction_lower == van.clip_fraction_lower


@st.composite
def inside_band(draw):
    """A batch whose ratios all lie strictly inside (1 - eps_low, 1 + eps_high)."""
    eps_low, eps_high = draw(st.floats(0.05, 0.5)), draw(st.floats(0.05, 0.5))
    lo, hi = math.log(1 - eps_low), math.log(1 + eps_high)
    lp, old, adv, mask = draw(rows(log_ratio=st.floats(0.01, 0.99)))
    lr = lo + (lp - old) * (hi - lo)  # the drawn fraction mapped into the band
    return old + lr, old, adv, mask, eps_low, eps_high


@SETTINGS
@given(inside_band())
def test_cispo_gradient_equals_vanilla_inside_the_trust_region(batch):
    # vanilla: d/d lp of -A r = -A r; CISPO: -sg(clip(r)) A -> -r A when r is inside the band.
    lp, old, adv, mask, eps_low, eps_high = batch
    knobs = {"clip_ratio_low": eps_low, "clip_ratio_high": eps_high}
    van, g_van = _grad("vanilla", lp, old, adv, mask, **knobs)
    cis, g_cis = _grad("cispo", lp, old, adv, mask, **knobs)
    torch.testing.assert_close(g_cis, g_van, rtol=1e-12, atol=1e-15)
    assert van.clip_fraction == cis.clip_fraction == 0.0


@SETTINGS
@given(rows(), st.sampled_from(POLICY_LOSS_MODES), agg_modes, st.booleans())
def test_rollout_weights_of_ones_change_nothing(batch, mode, agg, count_empty):
    lp, old, adv, mask = batch
    knobs = {"loss_agg_mode": agg, "count_empty_rows": count_empty}
    plain, g_plain = _grad(mode, lp, old, adv, mask, **knobs)
    ones, g_ones = _grad(mode, lp, old, adv, mask, rollout_is_weights=torch.ones_like(lp), **knobs)
    # geo_mean takes exp(mean log(w + 1e-10)) (verl): 1 + 1e-10, not exactly 1.
    rtol = 1e-9 if mode == "geo_mean" else 0.0
    torch.testing.assert_close(ones.loss, plain.loss, rtol=rtol, atol=0.0)
    torch.testing.assert_close(ones.per_token_loss, plain.per_token_loss, rtol=rtol, atol=0.0)
    torch.testing.assert_close(g_ones, g_plain, rtol=rtol, atol=0.0)


@SETTINGS
@given(rows(), agg_modes, st.booleans(), st.sampled_from([None, 3.0]), st.booleans())
def test_gpg_gradient_is_minus_advantage_times_aggregation_weight(
    batch, agg, count_empty, scale, per_sequence
):
    lp, old, adv, mask = batch
    if per_sequence:
        adv = adv[:, 0]
    knobs = {"loss_agg_mode": agg, "count_empty_rows": count_empty, "loss_scale_factor": scale}
    _, grad = _grad("gpg", lp, old, adv, mask, **knobs)
    w = aggregation_weights(mask, lp, agg, loss_scale_factor=scale, count_empty_rows=count_empty)
    a = adv.unsqueeze(-1).expand_as(lp) if per_sequence else adv
    torch.testing.assert_close(grad, -a * w, rtol=1e-12, atol=1e-15)


@st.composite
def one_token_rows_unclipped(draw):
    """[B, 1] rows, log-ratios inside both vanilla's band and geo_mean's log-space band."""
    eps_low, eps_high = draw(st.floats(0.05, 0.5)), draw(st.floats(0.05, 0.5))
    lo, hi = -eps_low, math.log1p(eps_high)  # the tighter end of each side
    lp, old, adv, mask = draw(rows(width=st.just(1), log_ratio=st.floats(0.01, 0.99)))
    return old + lo + (lp - old) * (hi - lo), old, adv, mask, eps_low, eps_high


@SETTINGS
@given(one_token_rows_unclipped())
def test_geo_mean_on_one_token_rows_equals_vanilla_seq_mean(batch):
    # One token per row, no clip: geo_mean's row loss -A/(1+1e-8) exp(lr/(1+1e-8)) vs vanilla's
    # -A r/(1+1e-8): equal up to the 1e-8 of verl's n + 1e-8 (relative |lr| 1e-8). geo_mean
    # averages over every row, empty ones as 0: vanilla with count_empty_rows=True does too.
    lp, old, adv, mask, eps_low, eps_high = batch
    knobs = {"clip_ratio_low": eps_low, "clip_ratio_high": eps_high}
    geo, g_geo = _grad("geo_mean", lp, old, adv, mask, **knobs)
    van, g_van = _grad("vanilla", lp, old, adv, mask, loss_agg_mode="seq-mean-token-mean",
                       count_empty_rows=True, **knobs)  # fmt: skip
    torch.testing.assert_close(geo.loss, van.loss, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(g_geo, g_van, rtol=1e-7, atol=1e-12)


@SETTINGS
@given(rows(), st.floats(0.1, 10.0), st.floats(0.1, 10.0), agg_modes)
def test_sapo_gradient_at_ratio_one_is_minus_advantage(batch, tau_pos, tau_neg, agg):
    # d/d lp of -(4/tau) sigma(tau (r - 1)) A = -4 sigma (1 - sigma) r A = -A at r = 1.
    _, old, adv, mask = batch
    _, grad = _grad("sapo", old, old, adv, mask, sapo_tau_pos=tau_pos, sapo_tau_neg=tau_neg,
                    loss_agg_mode=agg)  # fmt: skip
    w = aggregation_weights(mask, old, agg)
    torch.testing.assert_close(grad, -adv * w, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- device and dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", POLICY_LOSS_MODES)
def test_outputs_keep_the_input_dtype(mode, dtype):
    b = policy_batch(SHAPE, "mixed", 3, dtype=dtype, spread=0.5)
    for mask in (None, ragged_mask(SHAPE, empty_row=True)):
        for agg in LOSS_AGG_MODES:
            out = policy_loss(b.logprobs, b.old_logprobs, b.advantages, mask,
                              policy_loss_mode=mode, loss_agg_mode=agg,
                              rollout_is_weights=torch.ones(SHAPE, dtype=dtype))  # fmt: skip
            for name in ("loss", "per_token_loss", "ratio"):
                assert getattr(out, name).dtype == dtype, (name, agg)
            assert math.isfinite(out.loss.item())


META = torch.device("meta")


def meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, device=META, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", POLICY_LOSS_MODES)
def test_policy_terms_run_on_meta(mode, dtype):
    lp = meta(3, 5, dtype=dtype)
    for mask in (None, meta(3, 5, dtype=dtype)):
        for stop in (True, False):
            t = policy_terms(
                lp, meta(3, 5, dtype=dtype), meta(3, 5, dtype=dtype), mask,
                policy_loss_mode=mode, bounds=clip_bounds(0.2, dual_clip=3.0),
                limit=20.0, sapo_tau_pos=1.0, sapo_tau_neg=1.05,
                cispo_clip="band", gspo_stop_gradient=stop, gspo_log_ratio_max=10.0,
            )  # fmt: skip
            for name in ("loss", "ratio", "log_ratio"):
                tensor = getattr(t, name)
                assert tensor.device.type == "meta" and tensor.dtype == dtype, name
                assert tensor.shape == (3, 5)
            assert t.clipped.device.type == "meta"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("agg", LOSS_AGG_MODES)
def test_aggregation_weights_run_on_meta(agg, dtype):
    like = meta(3, 5, dtype=dtype)
    for mask in (None, meta(3, 5, dtype=dtype)):
        for count_empty in (False, True):
            w = aggregation_weights(mask, like, agg, count_empty_rows=count_empty)
            assert w.device.type == "meta" and w.dtype == dtype and w.shape == (3, 5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("clamp", ["none", "verl", "openrlhf"])
@pytest.mark.parametrize("estimator", ["k1", "k2", "k3", "abs", "k3+"])
def test_kl_runs_on_meta(estimator, clamp, dtype):
    d = meta(3, 5, dtype=dtype)
    for out in (kl_from_log_ratio(d, estimator, clamp), kl_per_token(d, d, estimator, clamp=clamp)):
        assert out.device.type == "meta" and out.dtype == dtype and out.shape == (3, 5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("mode", ["truncate", "mask"])
def test_rollout_weights_run_on_meta(level, mode, dtype):
    # Without a mask only: a mask is checked to be 0/1 and non-empty, a data-dependent check
    # (.item()) that meta tensors cannot answer; with a mask the dtype is checked on CPU.
    for low in (None, 0.1):
        w, raw, kept = rollout_weights(meta(3, 5, dtype=dtype), meta(3, 5, dtype=dtype),
                                       level=level, mode=mode, threshold_low=low)  # fmt: skip
        assert w.device.type == raw.device.type == kept.device.type == "meta"
        assert w.dtype == raw.dtype == dtype
    mask = ragged_mask((3, 5)).to(dtype)
    w, raw, _ = rollout_weights(torch.zeros(3, 5, dtype=dtype), torch.zeros(3, 5, dtype=dtype),
                                mask, level=level, mode=mode)  # fmt: skip
    assert w.dtype == raw.dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_advantage_estimators_keep_dtype(dtype):
    # Not on meta: reinforce_plus_plus validates its mask (0/1, enough tokens to whiten) with
    # .item(), and group_stats needs torch.unique, whose output shape depends on the data (no
    # meta kernel). Their dtype is checked on CPU.
    rewards = torch.tensor([[0.0, 1.0, 0.5], [0.0, 0.0, 2.0]], dtype=dtype)
    out = reinforce_plus_plus(rewards, gamma=0.9)
    assert out.advantages.dtype == out.returns.dtype == dtype
    out = reinforce_plus_plus(rewards, group_ids=torch.tensor([0, 0]))
    assert out.advantages.dtype == dtype
    scores = torch.tensor([1.0, 0.0, 3.0, 2.0], dtype=dtype)
    ids = torch.tensor([0, 0, 1, 1])
    g = group_stats(scores, ids)
    assert g.mean.dtype == g.std.dtype == g.size.dtype == dtype
    for est in ("grpo", "dr_grpo", "rloo", "reinforce_plus_plus_baseline", "gpg"):
        assert group_advantages(scores, ids, estimator=est).dtype == dtype


def test_entropy_from_logits_keeps_float32():
    logits = torch.randn(3, 7, generator=generator(0))
    h = entropy_from_logits(logits)
    assert h.dtype == torch.float32
    expected = ref.entropy(logits.double().numpy())
    np.testing.assert_allclose(h.numpy(), expected, rtol=1e-5)
