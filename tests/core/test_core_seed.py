"""ppo_core's re-exported seed functions give the seed tutorial's numbers (float32 precision)."""

from __future__ import annotations

import pytest
import seed_reference as seed
import torch
from core_inputs import generator, policy_batch, value_batch
from torch.testing import assert_close

import ppo_core

SEEDS = range(12)
SHAPES = [(16,), (8, 12)]
CLIP_RATIOS = [0.1, 0.2, 0.3, 0.5]


@pytest.mark.parametrize("shape", SHAPES, ids=["1d", "2d"])
@pytest.mark.parametrize("clip_ratio", CLIP_RATIOS)
@pytest.mark.parametrize("sign", ["pos", "neg", "mixed"])
def test_compute_ppo_loss_matches_seed(shape, clip_ratio, sign):
    ours, ref = [], []
    for s in SEEDS:
        b = policy_batch(shape, sign, s, dtype=torch.float32, spread=0.6)
        ours.append(ppo_core.compute_ppo_loss(b.logprobs, b.old_logprobs, b.advantages, clip_ratio))
        ref.append(seed.compute_ppo_loss(b.logprobs, b.old_logprobs, b.advantages, clip_ratio))
        assert ours[-1].shape == torch.Size([])
        assert ours[-1].dtype == torch.float32
    # One comparison over all seeds (assert_close is slow per call); default float32 tolerances.
    assert_close(torch.stack(ours), torch.stack(ref))


def test_compute_ppo_loss_default_clip_ratio_is_seeds():
    b = policy_batch((32,), "mixed", 7, dtype=torch.float32, spread=0.6)
    assert_close(
        ppo_core.compute_ppo_loss(b.logprobs, b.old_logprobs, b.advantages),
        seed.compute_ppo_loss(b.logprobs, b.old_logprobs, b.advantages),
    )
    # ...and differs from another clip ratio, so the comparison can fail.
    assert not torch.allclose(
        ppo_core.compute_ppo_loss(b.logprobs, b.old_logprobs, b.advantages),
        seed.compute_ppo_loss(b.logprobs, b.old_logprobs, b.advantages, 0.3),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=["1d", "2d"])
def test_compute_ppo_loss_gradient_matches_seed(shape):
    ours, ref = [], []
    for s in SEEDS:
        b = policy_batch(shape, "mixed", s, dtype=torch.float32, spread=0.6)
        lp_ours = b.logprobs.clone().requires_grad_(True)
        lp_ref = b.logprobs.clone().requires_grad_(True)
        ppo_core.compute_ppo_loss(lp_ours, b.old_logprobs, b.advantages).backward()
        seed.compute_ppo_loss(lp_ref, b.old_logprobs, b.advantages).backward()
        ours.append(lp_ours.grad)
        ref.append(lp_ref.grad)
    assert_close(torch.stack(ours), torch.stack(ref))


def test_compute_ppo_loss_broadcasts_like_seed():
    b = policy_batch((5, 7), "mixed", 3, dtype=torch.float32)
    scalar_advantage = torch.tensor(0.7)
    assert_close(
        ppo_core.compute_ppo_loss(b.logprobs, b.old_logprobs, scalar_advantage),
        seed.compute_ppo_loss(b.logprobs, b.old_logprobs, scalar_advantage),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=["1d", "2d"])
@pytest.mark.parametrize("clip_ratio", CLIP_RATIOS)
def test_compute_value_loss_clipped_path_matches_seed(shape, clip_ratio):
    ours, ref, unclipped = [], [], []
    for s in SEEDS:
        b = value_batch(shape, s, dtype=torch.float32)
        ours.append(
            ppo_core.compute_value_loss(b.values, b.returns, b.old_values, True, clip_ratio)
        )
        ref.append(seed.compute_value_loss(b.values, b.returns, b.old_values, True, clip_ratio))
        unclipped.append(seed.compute_value_loss(b.values, b.returns, clip_value=False))
    assert_close(torch.stack(ours), torch.stack(ref))
    # The inputs do exercise the clip: the clipped loss differs from plain MSE.
    assert not torch.allclose(torch.stack(ref), torch.stack(unclipped))


@pytest.mark.parametrize("shape", SHAPES, ids=["1d", "2d"])
def test_compute_value_loss_unclipped_paths_match_seed(shape):
    ours, ref = [], []
    for s in SEEDS:
        b = value_batch(shape, s, dtype=torch.float32)
        for kwargs in (
            {"clip_value": False},
            {"old_values": None},
            {"old_values": b.old_values, "clip_value": False},
            {},
        ):
            ours.append(ppo_core.compute_value_loss(b.values, b.returns, **kwargs))
            ref.append(seed.compute_value_loss(b.values, b.returns, **kwargs))
    assert_close(torch.stack(ours), torch.stack(ref))


@pytest.mark.parametrize("shape", [(16, 1000), (4, 6, 50), (3,)], ids=["2d", "3d", "1d"])
@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_compute_entropy_matches_seed(shape, scale):
    gen = generator(11)
    ours, ref = [], []
    for _ in range(5):
        logits = torch.randn(shape, generator=gen) * scale
        ours.append(ppo_core.compute_entropy(logits))
        ref.append(seed.compute_entropy(logits))
        assert ours[-1].shape == torch.Size([])
    assert_close(torch.stack(ours), torch.stack(ref))


def test_compute_entropy_peaked_matches_seed():
    logits = torch.randn(16, 1000, generator=generator(5))
    logits[:, 0] = 10.0
    assert_close(ppo_core.compute_entropy(logits), seed.compute_entropy(logits))


@pytest.mark.parametrize("clip_ratio", [0.1, 0.2, 0.3])
@pytest.mark.parametrize("vf_coef,entropy_coef", [(0.5, 0.01), (1.0, 0.0), (0.1, 0.2)])
@pytest.mark.parametrize("shape", SHAPES, ids=["1d", "2d"])
def test_compute_ppo_total_loss_matches_seed(clip_ratio, vf_coef, entropy_coef, shape):
    keys = ["total_loss", "policy_loss", "value_loss", "entropy"]
    ours, ref = [], []
    for s in range(4):
        b = policy_batch(shape, "mixed", s, dtype=torch.float32, spread=0.6)
        v = value_batch(shape, 100 + s, dtype=torch.float32)
        logits = torch.randn((*shape, 50), generator=generator(200 + s)) * 2.0
        args = (b.logprobs, b.old_logprobs, b.advantages, v.values, v.returns, logits)
        out = ppo_core.compute_ppo_total_loss(*args, clip_ratio, vf_coef, entropy_coef)
        expected = seed.compute_ppo_total_loss(*args, clip_ratio, vf_coef, entropy_coef)
        assert list(out) == list(expected) == keys
        assert all(isinstance(t, torch.Tensor) and t.shape == torch.Size([]) for t in out.values())
        ours.append(torch.stack([out[k] for k in keys]))
        ref.append(torch.stack([expected[k] for k in keys]))
    assert_close(torch.stack(ours), torch.stack(ref))


def test_compute_ppo_total_loss_defaults_match_seed():
    b = policy_batch((16,), "mixed", 1, dtype=torch.float32, spread=0.6)
    v = value_batch((16,), 2, dtype=torch.float32)
    logits = torch.randn(16, 1000, generator=generator(3))
    args = (b.logprobs, b.old_logprobs, b.advantages, v.values, v.returns, logits)
    ours = ppo_core.compute_ppo_total_loss(*args)
    ref = seed.compute_ppo_total_loss(*args)
    assert_close(torch.stack(list(ours.values())), torch.stack(list(ref.values())))
    # Total = policy + 0.5 value - 0.01 entropy, assembled from the returned parts.
    assert_close(
        ours["total_loss"],
        ours["policy_loss"] + 0.5 * ours["value_loss"] - 0.01 * ours["entropy"],
    )


def test_seed_signatures_are_kept():
    import inspect

    for name in ("compute_ppo_loss", "compute_value_loss", "compute_entropy"):
        ours = inspect.signature(getattr(ppo_core, name))
        ref = inspect.signature(getattr(seed, name))
        assert list(ours.parameters) == list(ref.parameters), name
        assert [p.default for p in ours.parameters.values()] == [
            p.default for p in ref.parameters.values()
        ], name
    ours = inspect.signature(ppo_core.compute_ppo_total_loss)
    ref = inspect.signature(seed.compute_ppo_total_loss)
    assert list(ours.parameters) == list(ref.parameters)
    assert [p.default for p in ours.parameters.values()] == [
        p.default for p in ref.parameters.values()
    ]
