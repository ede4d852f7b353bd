"""Rollout correction (TIS / IcePop weights, verl's mismatch metrics): NumPy reference,
hand-computed metrics against FORMULAS.md §1.6, identities and errors."""

from __future__ import annotations

import math

import numpy as np
import numpy_reference as ref
import pytest
import torch
from core_inputs import generator, ragged_mask
from hypothesis import given, settings
from hypothesis import strategies as st

from ppo_core import PPOInputError
from ppo_core.rollout import offpolicy_metrics, rollout_correction, rollout_weights

F64 = torch.float64
SHAPE = (4, 9)
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)

THRESHOLDS = {
    "truncate-2": ("truncate", 2.0, None),
    "truncate-2-low-0.5": ("truncate", 2.0, 0.5),
    "truncate-1.5-low-0.8": ("truncate", 1.5, 0.8),
    "mask-2": ("mask", 2.0, None),
    "mask-2-low-0": ("mask", 2.0, 0.0),
    "mask-5-low-0.5": ("mask", 5.0, 0.5),
}
MASKS = ["none", "ragged", "ragged-empty-row"]


def mismatch_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Trainer / engine log-probs with token log-ratios N(0, 0.6), two of them at ±25 (beyond
    verl's ±20 safety bound)."""
    gen = generator(seed)
    rollout = -torch.rand(SHAPE, generator=gen, dtype=F64) * 3.0 - 0.1
    old = rollout + torch.randn(SHAPE, generator=gen, dtype=F64) * 0.6
    old[0, 1] = rollout[0, 1] + 25.0
    old[2, 0] = rollout[2, 0] - 25.0
    return old, rollout


def make_mask(name: str) -> torch.Tensor | None:
    if name == "none":
        return None
    return ragged_mask(SHAPE, empty_row=name == "ragged-empty-row")


@pytest.mark.parametrize("mask_name", MASKS)
@pytest.mark.parametrize("config", list(THRESHOLDS))
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_weights_match_numpy(level, config, mask_name):
    mode, threshold, low = THRESHOLDS[config]
    old, rollout = mismatch_batch(3)
    mask = make_mask(mask_name)
    w, raw, kept = rollout_weights(old, rollout, mask, level=level, mode=mode,
                                   threshold=threshold, threshold_low=low)  # fmt: skip
    m = np.ones(SHAPE) if mask is None else mask.numpy()
    expected = ref.rollout_weights(old.numpy(), rollout.numpy(), m, level=level, mode=mode,
                                   threshold=threshold, threshold_low=low)  # fmt: skip
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-12, atol=0)
    plain = ref.rollout_weights(old.numpy(), rollout.numpy(), m, level=level, mode="truncate",
                                threshold=math.inf, threshold_low=None)  # fmt: skip
    np.testing.assert_allclose(raw.numpy(), plain, rtol=1e-12, atol=0)
    assert not w.requires_grad
    assert (w[torch.from_numpy(m) == 0] == 0).all()
    if mode == "mask":
        assert torch.equal(kept, w > 0)
    # The inputs reach both sides of the thresholds (and the ±20 bound, per token).
    valid = torch.from_numpy(m) > 0
    assert (raw[valid] > threshold).any() and (raw[valid] <= threshold).any()


def test_safety_bound_clamps_the_token_and_summed_log_ratio():
    # log rho = +25 -> e^20; -25 -> e^-20; a sequence of [15, 15] sums to 30 -> e^20.
    old = torch.tensor([[25.0, -25.0], [15.0, 15.0]], dtype=F64)
    raw = rollout_weights(old, torch.zeros_like(old), threshold=1e300)[1]
    np.testing.assert_allclose(raw.numpy(), np.exp([[20.0, -20.0], [15.0, 15.0]]), rtol=1e-14)
    raw = rollout_weights(old, torch.zeros_like(old), level="sequence", threshold=1e300)[1]
    np.testing.assert_allclose(raw.numpy(), np.exp([[0.0, 0.0], [20.0, 20.0]]), rtol=1e-14)


# --------------------------------------------------------------------------- hand-computed

# Two rows, the second one token shorter. log rho = old - rollout:
#   [[ln 2, 0, ln 0.5], [ln 3, ln 0.25, (pad)]]  ->  rho = [[2, 1, 0.5], [3, 0.25, -]].
HAND_OLD = torch.tensor([[-1.0, -2.0, -0.5], [-1.5, -0.3, 0.0]], dtype=F64)
HAND_LOG_RHO = torch.log(torch.tensor([[2.0, 1.0, 0.5], [3.0, 0.25, 1.0]], dtype=F64))
HAND_ROLLOUT = HAND_OLD - HAND_LOG_RHO
HAND_MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=F64)


def np_masked_mean(x: np.ndarray, m: np.ndarray) -> float:
    return float((x * m).sum() / m.sum())


def np_offpolicy(old: np.ndarray, rol: np.ndarray, m: np.ndarray) -> dict[str, float]:
    """FORMULAS.md §1.6 compute_offpolicy_metrics, NumPy. verl's per-row ``masked_mean`` divides
    by ``n + 1e-8`` with its integer mask, which float32 rounds to ``n``: ``sum / n``, and 0 for
    a row without tokens."""
    lr = old - rol
    n = m.sum(-1)
    safe_n = np.where(n > 0, n, 1.0)
    row_old = (old * m).sum(-1) / safe_n
    row_rol = (rol * m).sum(-1) / safe_n
    diff = row_rol - row_old
    return {
        "training_ppl": float(np.mean(np.exp(-row_old))),
        "training_log_ppl": float(np.mean(-row_old)),
        "rollout_ppl": float(np.mean(np.exp(-row_rol))),
        "rollout_log_ppl": float(np.mean(-row_rol)),
        "kl": np_masked_mean(rol - old, m),
        "k3_kl": np_masked_mean(np.exp(lr) - lr - 1.0, m),
        "log_ppl_diff": float(np.mean(diff)),
        "log_ppl_abs_diff": float(np.mean(np.abs(diff))),
        "log_ppl_diff_max": float(np.max(diff)),
        "log_ppl_diff_min": float(np.min(diff)),
        "ppl_ratio": float(np.mean(np.exp(diff))),
        "chi2_token": np_masked_mean(np.exp(np.clip(lr, -20, 20)) ** 2, m) - 1.0,
        "chi2_seq": float(np.mean(np.exp(2 * np.clip((lr * m).sum(-1), -20, 20)))) - 1.0,
    }


def np_is_metrics(w: np.ndarray, raw: np.ndarray, m: np.ndarray, upper: float, lower: float):
    """FORMULAS.md §1.6 compute_is_metrics (token level), NumPy."""
    wc = np.clip(w, 0.0, upper)
    mean_c = np_masked_mean(wc, m)
    return {
        "rollout_is_mean": np_masked_mean(w, m),
        "rollout_is_ratio_fraction_high": np_masked_mean(raw > upper, m),
        "rollout_is_ratio_fraction_low": np_masked_mean(raw < lower, m),
        "rollout_is_std": math.sqrt(max(np_masked_mean(wc**2, m) - mean_c**2, 0.0)),
        "rollout_is_eff_sample_size": 1.0 / np_masked_mean((wc / (mean_c + 1e-8)) ** 2, m),
    }


def check(metrics: dict[str, float], expected: dict[str, float], rel: float = 1e-12) -> None:
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=rel, abs=1e-15), name


def test_hand_token_truncate_metrics():
    # TIS, C = 2 (lower 1/C = 0.5): w = min(rho, 2) = [[2, 1, 0.5], [2, 0.25]]; 5 valid tokens.
    #   rollout_is_mean = (2 + 1 + 0.5 + 2 + 0.25) / 5 = 1.15
    #   fraction_high (raw > 2) = 1/5 (rho = 3); fraction_low (raw < 0.5) = 1/5 (0.25, not 0.5)
    #   truncated_fraction (w != raw) = 1/5
    #   E[w^2] = (4 + 1 + 0.25 + 4 + 0.0625) / 5 = 1.8625; std = sqrt(1.8625 - 1.15^2) = 0.734847
    #   ESS = 1 / mean((w / 1.15)^2) = 1.3225 / 1.8625 = 0.710067 (the 1e-8 is below 1e-8 rel)
    #   chi2_token = mean(rho^2) - 1 = (4 + 1 + 0.25 + 9 + 0.0625) / 5 - 1 = 1.8625
    #   chi2_seq: sums of log rho: row 0: 0 -> e^0 = 1; row 1: ln 0.75 -> 0.5625;
    #             mean - 1 = -0.21875
    #   kl = mean(rollout - old) = -(ln 0.75) / 5 = 0.057536
    #   k3_kl = mean(rho - ln rho - 1) = (0.306853 + 0 + 0.193147 + 0.901388 + 0.636294) / 5
    #         = 0.407536
    #   log_ppl_diff = mean_i(mean_t log mu - mean_t log pi_old) = mean(-0, -ln(0.75) / 2)
    #                = 0.071921
    c = rollout_correction(HAND_OLD, HAND_ROLLOUT, HAND_MASK, threshold=2.0)
    np.testing.assert_allclose(c.weights.numpy(), [[2, 1, 0.5], [2, 0.25, 0]], rtol=1e-14)
    hand = {
        "rollout_is_mean": 1.15,
        "rollout_is_ratio_fraction_high": 0.2,
        "rollout_is_ratio_fraction_low": 0.2,
        "truncated_fraction": 0.2,
        "masked_fraction": 0.0,
        "rollout_is_std": 0.734847,
        "rollout_is_eff_sample_size": 0.710067,
        "chi2_token": 1.8625,
        "chi2_seq": -0.21875,
        "kl": 0.057536,
        "k3_kl": 0.407536,
        "log_ppl_diff": 0.071921,
        "rollout_is_max": 2.0,
        "rollout_is_min": 0.25,
    }
    check(c.metrics, hand, rel=1e-5)
    old, rol, m = HAND_OLD.numpy(), HAND_ROLLOUT.numpy(), HAND_MASK.numpy()
    check(c.metrics, np_offpolicy(old, rol, m))
    check(c.metrics, np_is_metrics(c.weights.numpy(), c.raw_weights.numpy(), m, 2.0, 0.5))


def test_hand_token_mask_metrics():
    # IcePop, C = 2, lower 0.5: keep 0.5 <= rho <= 2: w = [[2, 1, 0.5], [0, 0]].
    #   rollout_is_mean = 3.5 / 5 = 0.7; masked_fraction = oob ratio = 2/5; truncated 0.
    c = rollout_correction(HAND_OLD, HAND_ROLLOUT, HAND_MASK, mode="mask", threshold=2.0)
    np.testing.assert_allclose(c.weights.numpy(), [[2, 1, 0.5], [0, 0, 0]], rtol=1e-14)
    check(c.metrics, {"rollout_is_mean": 0.7, "masked_fraction": 0.4,
                      "rollout_is_oob_ratio": 0.4, "truncated_fraction": 0.0})  # fmt: skip
    m = HAND_MASK.numpy()
    check(c.metrics, np_is_metrics(c.weights.numpy(), c.raw_weights.numpy(), m, 2.0, 0.5))
    # threshold_low = 0: every small weight is kept (TRL's clip_min=None): only rho = 3 goes.
    c = rollout_correction(HAND_OLD, HAND_ROLLOUT, HAND_MASK, mode="mask", threshold=2.0,
                           threshold_low=0.0)  # fmt: skip
    np.testing.assert_allclose(c.weights.numpy(), [[2, 1, 0.5], [0, 0.25, 0]], rtol=1e-14)
    check(c.metrics, {"masked_fraction": 0.2, "rollout_is_ratio_fraction_low": 0.0})


def test_hand_truncate_with_threshold_low():
    # TIS clipped on both sides, [0.5, 2]: w = [[2, 1, 0.5], [2, 0.5]]: two tokens changed.
    c = rollout_correction(HAND_OLD, HAND_ROLLOUT, HAND_MASK, threshold=2.0, threshold_low=0.5)
    np.testing.assert_allclose(c.weights.numpy(), [[2, 1, 0.5], [2, 0.5, 0]], rtol=1e-14)
    check(c.metrics, {"truncated_fraction": 0.4, "rollout_is_mean": 6.0 / 5})


def test_hand_sequence_metrics():
    # Sequence level: w_i = exp(sum_t log rho): row 0: 2 * 1 * 0.5 = 1; row 1: 3 * 0.25 = 0.75,
    # on every valid token. C = 2: nothing truncated.
    #   rollout_is_mean = (3 * 1 + 2 * 0.75) / 5 = 0.9; max = e^max(sums) = 1; min = 0.75
    #   fractions over rows in log space: 0 > ln 2? no; ln 0.75 < ln 0.5? no -> 0, 0.
    c = rollout_correction(HAND_OLD, HAND_ROLLOUT, HAND_MASK, level="sequence", threshold=2.0)
    np.testing.assert_allclose(c.weights.numpy(), [[1, 1, 1], [0.75, 0.75, 0]], rtol=1e-14)
    check(c.metrics, {"rollout_is_mean": 0.9, "rollout_is_max": 1.0, "rollout_is_min": 0.75,
                      "rollout_is_ratio_fraction_high": 0.0,
                      "rollout_is_ratio_fraction_low": 0.0,
                      "truncated_fraction": 0.0})  # fmt: skip
    # Band [0.8, 0.9]: row 0 truncated 1 -> 0.9, row 1 raised 0.75 -> 0.8: every token changed;
    # fractions count rows in log space: high 0 > ln 0.9 (row 0), low ln 0.75 < ln 0.8 (row 1).
    #   rollout_is_mean = (3 * 0.9 + 2 * 0.8) / 5 = 0.86
    c = rollout_correction(HAND_OLD, HAND_ROLLOUT, HAND_MASK, level="sequence", threshold=0.9,
                           threshold_low=0.8)  # fmt: skip
    np.testing.assert_allclose(c.weights.numpy(), [[0.9] * 3, [0.8, 0.8, 0]], rtol=1e-14)
    check(c.metrics, {"rollout_is_ratio_fraction_high": 0.5,
                      "rollout_is_ratio_fraction_low": 0.5,
                      "truncated_fraction": 1.0,
                      "rollout_is_mean": 0.86})  # fmt: skip
    check(c.metrics, np_offpolicy(HAND_OLD.numpy(), HAND_ROLLOUT.numpy(), HAND_MASK.numpy()))


@pytest.mark.parametrize("mask_name", MASKS)
def test_offpolicy_metrics_match_numpy(mask_name):
    old, rollout = mismatch_batch(5)
    old = old.clamp(min=-6.0) if mask_name == "none" else old  # keep the k3 mean moderate
    mask = make_mask(mask_name)
    m = torch.ones(SHAPE, dtype=F64) if mask is None else mask
    got = offpolicy_metrics(old, rollout, m)
    check(got, np_offpolicy(old.numpy(), rollout.numpy(), m.numpy()), rel=1e-11)


# --------------------------------------------------------------------------- identities


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("mode", ["truncate", "mask"])
@pytest.mark.parametrize("mask_name", MASKS)
def test_huge_threshold_changes_nothing(level, mode, mask_name):
    old, rollout = mismatch_batch(8)
    mask = make_mask(mask_name)
    # 1e300 is effectively no threshold (its reciprocal, the default mask floor, is 1e-300).
    w, raw, _ = rollout_weights(old, rollout, mask, level=level, mode=mode, threshold=1e300)
    m = np.ones(SHAPE) if mask is None else mask.numpy()
    plain = ref.rollout_weights(old.numpy(), rollout.numpy(), m, level=level, mode="truncate",
                                threshold=math.inf, threshold_low=None)  # fmt: skip
    assert torch.equal(w, raw)
    np.testing.assert_allclose(w.numpy(), plain, rtol=1e-12, atol=0)
    c = rollout_correction(old, rollout, mask, level=level, mode=mode, threshold=1e300)
    assert c.metrics["truncated_fraction"] == c.metrics["masked_fraction"] == 0.0


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("mode", ["truncate", "mask"])
@pytest.mark.parametrize("mask_name", MASKS)
def test_identical_log_probs(level, mode, mask_name):
    lp = mismatch_batch(9)[1]
    mask = make_mask(mask_name)
    c = rollout_correction(lp, lp.clone(), mask, level=level, mode=mode, threshold=2.0)
    m = torch.ones(SHAPE, dtype=F64) if mask is None else mask
    assert torch.equal(c.weights, m)
    for name in ("kl", "k3_kl", "chi2_token", "chi2_seq", "log_ppl_diff", "log_ppl_abs_diff",
                 "rollout_is_std", "truncated_fraction", "masked_fraction",
                 "rollout_is_ratio_fraction_high", "rollout_is_ratio_fraction_low"):  # fmt: skip
        assert c.metrics[name] == pytest.approx(0.0, abs=1e-15), name
    # ESS = 1 / mean((1 / (1 + 1e-8))^2) = (1 + 1e-8)^2: one up to verl's 1e-8.
    assert c.metrics["rollout_is_eff_sample_size"] == pytest.approx(1.0, rel=1e-7)
    assert c.metrics["rollout_is_mean"] == 1.0
    assert c.metrics["ppl_ratio"] == pytest.approx(1.0, rel=1e-15)
    assert c.metrics["training_ppl"] == pytest.approx(c.metrics["rollout_ppl"], rel=1e-15)


def test_every_weight_masked_gives_zero_effective_sample_size():
    # IcePop [0.5, 2] with every rho = 3: all weights 0. verl's 1 / E[(w / mean)^2] divides by
    # zero; no sample is effective: ESS 0, and every valid token counts as masked.
    old = torch.full((2, 3), math.log(3.0), dtype=F64)
    c = rollout_correction(old, torch.zeros_like(old), mode="mask", threshold=2.0)
    assert torch.equal(c.weights, torch.zeros_like(old))
    assert c.metrics["rollout_is_eff_sample_size"] == 0.0
    assert c.metrics["masked_fraction"] == c.metrics["rollout_is_oob_ratio"] == 1.0
    assert c.metrics["rollout_is_mean"] == c.metrics["rollout_is_std"] == 0.0


@SETTINGS
@given(
    st.lists(st.floats(-4.0, 4.0), min_size=1, max_size=12),
    st.floats(1.01, 10.0),
    st.one_of(st.none(), st.floats(0.0, 1.0)),
    st.sampled_from(["token", "sequence"]),
)
def test_weights_stay_inside_the_thresholds(log_rho, threshold, low, level):
    old = torch.tensor([log_rho], dtype=F64)
    zeros = torch.zeros_like(old)
    w, raw, _ = rollout_weights(old, zeros, level=level, threshold=threshold, threshold_low=low)
    assert (w <= threshold).all() and (w >= (0.0 if low is None else low)).all()
    assert torch.equal(w, raw.clamp(max=threshold) if low is None else raw.clamp(low, threshold))
    w, raw, kept = rollout_weights(old, zeros, level=level, mode="mask", threshold=threshold,
                                   threshold_low=low)  # fmt: skip
    floor = 1.0 / threshold if low is None else low
    assert torch.equal(kept, (raw >= floor) & (raw <= threshold))
    assert torch.equal(w, torch.where(kept, raw, torch.zeros_like(raw)))


# --------------------------------------------------------------------------- errors


def test_threshold_low_above_threshold_is_rejected():
    x = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(PPOInputError) as err:
        rollout_weights(x, x, threshold=2.0, threshold_low=3.0)
    assert err.value.field == "rollout_is_threshold_low"
    assert "rollout_is_threshold" in err.value.problem and "3.0" in err.value.problem
    with pytest.raises(PPOInputError) as err:
        rollout_correction(x, x, mode="mask", threshold=2.0, threshold_low=2.5)
    assert err.value.field == "rollout_is_threshold_low"


@pytest.mark.parametrize(
    "kwargs,field,words",
    [
        ({"level": "geometric"}, "rollout_is_level", "geometric"),
        ({"mode": "clip"}, "rollout_is_mode", "clip"),
        ({"threshold": 0.0}, "rollout_is_threshold", "> 0"),
        ({"threshold": math.inf}, "rollout_is_threshold", "finite"),
        ({"threshold_low": -0.1}, "rollout_is_threshold_low", ">= 0"),
    ],
)
def test_bad_knobs_are_rejected(kwargs, field, words):
    x = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(PPOInputError) as err:
        rollout_weights(x, x, **kwargs)
    assert err.value.field == field
    assert words in err.value.problem


def test_shape_mismatch_is_rejected():
    with pytest.raises(PPOInputError) as err:
        rollout_weights(torch.zeros(2, 3), torch.zeros(2, 4))
    assert err.value.field == "rollout_logprobs"


def test_float16_weights_stay_finite_and_zero_at_padding():
    # log rho = 15 at a padded token overflows exp in float16 (limit 11.09): the weight there is
    # 0, not inf * 0 = NaN, and the valid token's chi-square is computed in float64.
    old = torch.tensor([[15.0, 12.0]], dtype=torch.float16)
    rollout = torch.zeros_like(old)
    mask = torch.tensor([[0.0, 1.0]], dtype=torch.float16)
    w, raw, _ = rollout_weights(old, rollout, mask, threshold=1e4)
    assert torch.isfinite(w).all() and float(w[0, 0]) == 0.0 and float(raw[0, 0]) == 0.0
    c = rollout_correction(old, rollout, mask, threshold=1e4)
    assert math.isfinite(c.metrics["chi2_token"])
