"""ppo_total_loss under every convention preset, against a NumPy total built from its knobs."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import numpy_reference as ref
import pytest
import torch
from core_inputs import SHAPES, generator, policy_batch, ragged_mask, value_batch

from ppo_core import (
    CONVENTIONS,
    LOSS_AGG_MODES,
    compute_advantages,
    get_convention,
    ppo_total_loss,
)
from ppo_core.policy import POLICY_LOSS_MODES, PolicyLossOutput

VOCAB = 12


def batch(shape, seed):
    b = policy_batch(shape, "mixed", seed, spread=0.6)
    v = value_batch(shape, seed + 50)
    gen = generator(seed + 99)
    logits = torch.randn((*shape, VOCAB), generator=gen, dtype=torch.float64) * 2.0
    ref_logprobs = b.old_logprobs + 0.3 * torch.randn(shape, generator=gen, dtype=torch.float64)
    return {
        "logprobs": b.logprobs,
        "old_logprobs": b.old_logprobs,
        "advantages": b.advantages,
        "values": v.values,
        "returns": v.returns,
        "old_values": v.old_values,
        "logits": logits,
        "ref_logprobs": ref_logprobs,
    }


def numpy_total(data, mask, knobs, *, with_old_values):
    return ref.total_loss(
        data["logprobs"].numpy(),
        data["old_logprobs"].numpy(),
        data["advantages"].numpy(),
        data["values"].numpy(),
        data["returns"].numpy(),
        knobs=knobs,
        mask=None if mask is None else mask.numpy(),
        old_values=data["old_values"].numpy() if with_old_values else None,
        logits=data["logits"].numpy(),
        ref_logprobs=data["ref_logprobs"].numpy(),
    )


def assert_total_matches(out, expected, where):
    close = {"rel": 1e-10, "abs": 1e-12}
    assert out.total_loss.item() == pytest.approx(expected["total_loss"], **close), where
    assert out.policy.loss.item() == pytest.approx(expected["policy"]["loss"], **close), where
    assert out.value.loss.item() == pytest.approx(expected["value"]["loss"], **close), where
    assert out.value.clip_fraction == pytest.approx(expected["value"]["clip_fraction"]), where
    assert out.entropy.item() == pytest.approx(expected["entropy"], **close), where
    assert out.kl.item() == pytest.approx(expected["kl"], **close), where
    for name in ("clip_fraction", "clip_fraction_lower", "ratio_outside_fraction", "approx_kl"):
        assert getattr(out.policy, name) == pytest.approx(expected["policy"][name], **close), (
            where,
            name,
        )
    np.testing.assert_allclose(out.advantages.numpy(), expected["advantages"], rtol=1e-10)
    assert out.explained_variance == pytest.approx(expected["explained_variance"], rel=1e-10)


@pytest.mark.parametrize("name", list(CONVENTIONS))
@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("with_old_values", [True, False], ids=["old-values", "no-old-values"])
def test_every_convention_matches_numpy(name, shape_name, with_old_values):
    shape = SHAPES[shape_name]
    convention = get_convention(name)
    knobs = asdict(convention)
    data = batch(shape, seed=len(name))
    masks = {"no-mask": None, "ragged": ragged_mask(shape)}
    if len(shape) == 2:
        masks["ragged-empty-row"] = ragged_mask(shape, empty_row=True)
    for mask_name, mask in masks.items():
        out = ppo_total_loss(
            data["logprobs"],
            data["old_logprobs"],
            data["advantages"],
            data["values"],
            data["returns"],
            mask=mask,
            old_values=data["old_values"] if with_old_values else None,
            logits=data["logits"],
            ref_logprobs=data["ref_logprobs"],
            convention=convention,
        )
        expected = numpy_total(data, mask, knobs, with_old_values=with_old_values)
        assert_total_matches(out, expected, f"{name} {mask_name}")
        assert out.value_clip_applied == (
            with_old_values and convention.value_clip_range is not None
        )
        assert out.kl_in_loss == (convention.kl_placement == "loss" and convention.kl_coef > 0)


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
@pytest.mark.parametrize("base", ["cleanrl", "verl"])
def test_overrides_agg_mode_and_kl_in_loss(mode, base):
    convention = get_convention(base).with_overrides(
        loss_agg_mode=mode,
        kl_placement="loss",
        kl_coef=0.1,
        kl_estimator="k3",
        entropy_coef=0.02,
        clip_ratio_high=0.28,
    )
    shape = SHAPES["2d"]
    data = batch(shape, seed=3)
    mask = ragged_mask(shape, empty_row=True)
    out = ppo_total_loss(
        data["logprobs"],
        data["old_logprobs"],
        data["advantages"],
        data["values"],
        data["returns"],
        mask=mask,
        old_values=data["old_values"],
        logits=data["logits"],
        ref_logprobs=data["ref_logprobs"],
        convention=convention,
    )
    expected = numpy_total(data, mask, asdict(convention), with_old_values=True)
    assert_total_matches(out, expected, mode)
    assert out.kl_in_loss
    # The total is assembled from the parts with the preset's coefficients.
    assembled = (
        out.policy.loss
        + convention.vf_coef * out.value.loss
        - convention.entropy_coef * out.entropy
        + convention.kl_coef * out.kl
    )
    assert out.total_loss.item() == pytest.approx(assembled.item(), rel=1e-12)


def test_seed_convention_hand_computed():
    # r = 1, A = [1, -1, 1, -1]: policy = -mean(A) = 0; value = mean((0 - 1)^2) = 1;
    # total = 0 + 0.5 * 1 = 0.5 (no logits: no entropy term)
    t = torch.zeros(4, dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    out = ppo_total_loss(t, t, adv, t, torch.ones(4, dtype=torch.float64))
    assert out.total_loss.item() == 0.5
    assert out.entropy is None and out.kl is None
    assert out.explained_variance is None  # constant returns
    # With uniform logits over 4: entropy log 4 -> total 0.5 - 0.01 * log 4
    out = ppo_total_loss(t, t, adv, t, torch.ones(4, dtype=torch.float64), logits=torch.zeros(4, 4))
    assert out.total_loss.item() == pytest.approx(0.5 - 0.01 * np.log(4))


def test_cleanrl_normalises_advantages_per_minibatch():
    # A = [1, 2, 3] -> (A - 2) / (1 + 1e-8): with r = 1 the policy loss is -mean = 0, and the
    # advantages reported are the normalised ones.
    t = torch.zeros(3, dtype=torch.float64)
    adv = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    out = ppo_total_loss(t, t, adv, t, t, convention=get_convention("cleanrl"))
    assert out.advantages.tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-7)
    assert out.policy.loss.item() == pytest.approx(0.0, abs=1e-15)
    # seed does not normalise: policy loss = -2
    assert ppo_total_loss(t, t, adv, t, t).policy.loss.item() == pytest.approx(-2.0)


def test_entropy_given_per_token_equals_logits_path():
    shape = SHAPES["2d"]
    data = batch(shape, seed=4)
    mask = ragged_mask(shape)
    common = (data["logprobs"], data["old_logprobs"], data["advantages"], data["values"])
    from_logits = ppo_total_loss(*common, data["returns"], mask=mask, logits=data["logits"])
    per_token = torch.from_numpy(ref.entropy(data["logits"].numpy()))
    given = ppo_total_loss(*common, data["returns"], mask=mask, entropy=per_token)
    assert given.total_loss.item() == pytest.approx(from_logits.total_loss.item(), rel=1e-12)


@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_compute_advantages_follows_the_convention(name):
    convention = get_convention(name)
    shape = SHAPES["2d"]
    gen = generator(77)
    rewards = torch.randn(shape, generator=gen, dtype=torch.float64)
    values = torch.randn(shape, generator=gen, dtype=torch.float64)
    mask = ragged_mask(shape)
    adv, ret = compute_advantages(rewards, values, mask, convention)
    expected_adv, expected_ret = ref.gae(
        rewards.numpy(), values.numpy(), mask.numpy(), gamma=convention.gamma, lam=convention.lam
    )
    np.testing.assert_allclose(ret.numpy(), expected_ret, rtol=1e-12, atol=1e-12)
    if convention.advantage_norm == "whiten":
        expected_adv = ref.whiten(expected_adv, mask.numpy())
    np.testing.assert_allclose(adv.numpy(), expected_adv, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_convention_records_are_complete(name):
    c = CONVENTIONS[name]
    assert c.name == name and c.library and c.source
    assert c.clip_fraction_metric in PolicyLossOutput.__dataclass_fields__
    assert c.approx_kl_metric in PolicyLossOutput.__dataclass_fields__
    assert c.loss_agg_mode in LOSS_AGG_MODES
    assert c.policy_loss_mode in POLICY_LOSS_MODES
    if c.policy_loss_mode == "geo_mean":  # its own mean over rows: no loss_agg_mode
        assert c.formula().startswith("L = -mean_rows[")
    else:
        assert c.formula().startswith(f"L = {c.aggregation_formula()}[")
        assert c.aggregation_formula().startswith(c.loss_agg_mode)


def test_presets_carry_their_libraries_defaults():
    seed, cleanrl, sb3 = CONVENTIONS["seed"], CONVENTIONS["cleanrl"], CONVENTIONS["sb3"]
    assert (seed.vf_coef, seed.entropy_coef, seed.value_clip_range) == (0.5, 0.01, None)
    assert (cleanrl.value_scale, cleanrl.value_clip_range, cleanrl.advantage_norm) == (
        0.5,
        0.2,
        "minibatch",
    )
    assert cleanrl.approx_kl_metric == "approx_kl_k3"
    assert (sb3.value_mode, sb3.entropy_coef, sb3.value_clip_range) == ("clipped", 0.0, None)
    verl = CONVENTIONS["verl"]
    assert (verl.dual_clip, verl.log_ratio_clamp, verl.value_clip_range) == (3.0, 20.0, 0.5)
    assert CONVENTIONS["trl"].approx_kl_metric == "approx_kl_k2"
