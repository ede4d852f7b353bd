"""Generate ``library_reference.json``: the libraries' own numbers on fixed inputs.

The fixture lets the ppo_core tests check our re-implementation against
verl 0.9.1, TRL 1.16.0 and OpenRLHF 0.11.2 (torch 2.13.0+cpu). This script imports the
installed libraries and calls their real functions; no library code is copied here.
The test suite never runs it.

Environment (scratch, outside the repo)::

    python3.11 -m venv /work/scratch/libvenv
    /work/scratch/libvenv/bin/pip install torch==2.13.0          # CPU build, install it first
    /work/scratch/libvenv/bin/pip install --no-deps verl==0.9.1 trl==1.16.0 openrlhf==0.11.2
    /work/scratch/libvenv/bin/pip install -c <(echo torch==2.13.0) numpy packaging omegaconf \
        pyyaml "transformers==5.10.4" accelerate pandas pyarrow datasets peft \
        "tensordict==0.10.0" codetiming
    /work/scratch/libvenv/bin/pip uninstall -y kernels    # breaks transformers 5.10 imports

Run (from the repo root)::

    /work/scratch/libvenv/bin/python tests/core/data/make_library_reference.py

Heavy, irrelevant imports are stubbed: ``ray`` (only ``ray.ObjectRef`` is touched when
``verl.protocol`` is imported), ``deepspeed`` (imported by ``openrlhf/models/utils.py``), and the
``openrlhf.models`` package ``__init__`` (which pulls flash_attn through ``Actor``) is bypassed
so ``openrlhf.models.loss`` / ``openrlhf.models.utils`` load on their own.

All inputs are float64. verl's policy losses get the response mask as ``bool``, as verl's
training path does (``verl/workers/utils/losses.py::ppo_loss``); ``agg_loss`` is recorded with
both a float64 and a bool mask because the two differ at the 1e-9 level in
``seq-mean-token-mean`` (``n + 1e-8`` is evaluated in float32 for an integer count).
TRL gets ``completion_mask`` as int64 (as TRL builds it). Cases whose library casts to float32
carry ``"dtype": "float32"``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import math
import sys
import types
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor

OUT_PATH = Path(__file__).with_name("library_reference.json")
VERSIONS = {"verl": "0.9.1", "trl": "1.16.0", "openrlhf": "0.11.2"}
F64 = torch.float64
B, T = 4, 6

# ---------------------------------------------------------------------------------------------
# Library loading
# ---------------------------------------------------------------------------------------------


def install_stubs() -> None:
    """Stub heavy modules that the loss code never uses, before the libraries are imported."""
    if importlib.util.find_spec("ray") is None:
        ray = types.ModuleType("ray")

        class ObjectRef:  # annotation target in verl/protocol.py
            pass

        ray.ObjectRef = ObjectRef
        sys.modules["ray"] = ray
    # Load openrlhf.models.loss / .utils without running openrlhf/models/__init__.py.
    openrlhf = importlib.import_module("openrlhf")
    models = types.ModuleType("openrlhf.models")
    models.__path__ = [str(Path(openrlhf.__file__).parent / "models")]
    sys.modules["openrlhf.models"] = models
    # openrlhf/models/utils.py imports deepspeed at module level (used only for ZeRO-3 set-up).
    # The stub is removed again right away: transformers probes find_spec("deepspeed").
    stub_deepspeed = importlib.util.find_spec("deepspeed") is None
    if stub_deepspeed:
        sys.modules["deepspeed"] = types.ModuleType("deepspeed")
    importlib.import_module("openrlhf.models.loss")
    if stub_deepspeed:
        del sys.modules["deepspeed"]


def load_libraries() -> SimpleNamespace:
    install_stubs()
    libs = SimpleNamespace(
        core_algos=importlib.import_module("verl.trainer.ppo.core_algos"),
        rollout_corr=importlib.import_module("verl.trainer.ppo.rollout_corr_helper"),
        verl_config=importlib.import_module("verl.workers.config"),
        verl_algo_config=importlib.import_module("verl.trainer.config"),
        orl_loss=importlib.import_module("openrlhf.models.loss"),
        orl_utils=importlib.import_module("openrlhf.models.utils"),
        grpo_trainer=importlib.import_module("trl.trainer.grpo_trainer"),
    )
    for name, version in VERSIONS.items():
        installed = importlib.metadata.version(name)
        assert installed == version, f"{name} {installed} installed, {version} expected"
    assert torch.__version__.startswith("2.13.0"), torch.__version__
    return libs


# ---------------------------------------------------------------------------------------------
# Fixed inputs
# ---------------------------------------------------------------------------------------------


def lengths_mask(lengths: list[int], length: int) -> Tensor:
    mask = torch.zeros(len(lengths), length, dtype=F64)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1.0
    return mask


def outcome_rewards(lengths: list[int], scores: list[float], length: int) -> Tensor:
    """Score placed at the last valid token of each row."""
    rewards = torch.zeros(len(lengths), length, dtype=F64)
    for i, (n, s) in enumerate(zip(lengths, scores, strict=True)):
        rewards[i, n - 1] = s
    return rewards


def make_inputs() -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(0)

    def normal(*shape: int, std: float = 1.0) -> Tensor:
        return torch.randn(shape, generator=gen, dtype=F64) * std

    def uniform(*shape: int, lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=F64)

    x: dict[str, Tensor] = {}
    x["response_mask"] = lengths_mask([6, 4, 1, 3], T)
    x["response_mask_empty_row"] = lengths_mask([6, 4, 0, 3], T)

    old = -uniform(B, T, lo=0.1, hi=3.0)
    delta = normal(B, T, std=0.35)
    # Hand-set tokens (all valid) so that every clipping branch is exercised.
    old[0, 1], delta[0, 1] = -2.5, math.log(3.5)  # r = 3.5 > c = 3 (dual clip) with A < 0
    old[0, 3], delta[0, 3] = -1.8, math.log(1.6)  # r = 1.6 > 1.5 with A < 0
    old[1, 2], delta[1, 2] = -0.9, math.log(0.55)  # r = 0.55 < 0.7 with A < 0
    old[3, 1], delta[3, 1] = -0.7, math.log(0.6)  # r = 0.6 < 0.7 with A > 0
    x["old_log_prob"] = old
    x["log_prob"] = torch.clamp(old + delta, max=-0.01)

    rollout = torch.clamp(old + normal(B, T, std=0.15), max=-0.01)
    rollout[0, 2] = old[0, 2] - 0.8  # pi_train / pi_rollout = e^0.8 = 2.23 (> 2: truncated)
    rollout[1, 1] = old[1, 1] - 1.7  # e^1.7 = 5.47 (> 5: outside the IcePop band)
    rollout[3, 1] = old[3, 1] + 0.9  # e^-0.9 = 0.41 (< 0.5: outside the IcePop band)
    x["rollout_log_prob"] = rollout
    x["ref_log_prob"] = torch.clamp(old + normal(B, T, std=0.3), max=-0.01)

    adv_tok = normal(B, T)
    adv_tok[0, 1] = -abs(adv_tok[0, 1]) - 0.1
    adv_tok[0, 3] = -abs(adv_tok[0, 3]) - 0.1
    adv_tok[1, 2] = -abs(adv_tok[1, 2]) - 0.1
    adv_tok[3, 1] = abs(adv_tok[3, 1]) + 0.1
    adv_tok[1, 3] = 0.0  # exact zeros at valid tokens (SAPO tau, GMPO sign)
    adv_tok[0, 5] = 0.0
    x["advantages_token"] = adv_tok
    adv_seq = normal(B)
    adv_seq[0] = -abs(adv_seq[0]) - 0.1  # row 0 holds r = 3.5 and 1.6
    adv_seq[1] = abs(adv_seq[1]) + 0.1
    adv_seq[3] = abs(adv_seq[3]) + 0.1
    x["advantages_seq"] = adv_seq
    x["advantages_seq_tiled"] = adv_seq.unsqueeze(-1).expand(B, T).clone()

    extreme = x["log_prob"].clone()
    extreme[0, 4] = old[0, 4] + 25.0
    extreme[1, 0] = x["log_prob"][1, 0] - 25.0  # lp - old = d - 25
    x["log_prob_extreme"] = extreme

    x["rollout_is_weights"] = torch.exp(normal(B, T, std=0.3))
    x["loss_mat"] = normal(B, T)

    # Outcome rewards, set A: B = 4, T = 6, groups [0, 0, 1, 1] (group 1 all equal).
    x["token_level_rewards"] = outcome_rewards([6, 4, 1, 3], [1.0, 0.0, 1.0, 1.0], T)
    x["uid"] = torch.tensor([0, 0, 1, 1])
    x["values"] = normal(B, T)
    # Set B: 8 rows, T = 5, groups [0, 0, 0, 1, 1, 1, 2, 2]; group 1 all equal.
    lengths_b = [5, 3, 1, 4, 2, 5, 3, 4]
    x["response_mask_b"] = lengths_mask(lengths_b, 5)
    x["token_level_rewards_b"] = outcome_rewards(
        lengths_b, [1.0, 0.0, 0.5, 0.3, 0.3, 0.3, 2.0, -1.0], 5
    )
    x["uid_b"] = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    x["uid_b_singleton"] = torch.tensor([0, 0, 0, 1, 1, 1, 2, 3])

    # Value-loss inputs (OpenRLHF ValueLoss / verl compute_value_loss).
    x["old_values"] = x["values"].clone()
    x["new_values"] = x["values"] + normal(B, T, std=0.4)
    x["returns"] = normal(B, T)
    return x


# ---------------------------------------------------------------------------------------------
# Recording helpers
# ---------------------------------------------------------------------------------------------


def to_list(t: Tensor) -> Any:
    return t.detach().to(F64).tolist()


def float_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if value is None:
            continue
        out[key] = float(value.item() if isinstance(value, Tensor) else value)
    return out


def fn_name(fn: Any) -> str:
    return f"{fn.__module__}::{fn.__qualname__}"


class Recorder:
    def __init__(self, inputs: dict[str, Tensor]):
        self.x = inputs
        self.cases: list[dict[str, Any]] = []

    def leaf(self, name: str) -> Tensor:
        return self.x[name].clone().requires_grad_(True)

    def add(
        self,
        case_id: str,
        library: str,
        function: str,
        params: dict[str, Any],
        inputs: dict[str, str],
        outputs: dict[str, Any],
        dtype: str = "float64",
        note: str | None = None,
    ) -> dict[str, Any]:
        assert all(c["id"] != case_id for c in self.cases), case_id
        assert all(name in self.x for name in inputs.values()), inputs
        case = {
            "id": case_id,
            "library": library,
            "function": function,
            "dtype": dtype,
            "params": params,
            "inputs": inputs,
            "outputs": outputs,
        }
        if note:
            case["note"] = note
        self.cases.append(case)
        return case


def grad_or_zeros(t: Tensor) -> Tensor:
    return t.grad if t.grad is not None else torch.zeros_like(t)


# ---------------------------------------------------------------------------------------------
# verl
# ---------------------------------------------------------------------------------------------

AGG_MODES = [
    "token-mean",
    "token-sum",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
]
POLICY_AGG_MODES = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
ADV_SHAPES = {"adv_token": "advantages_token", "adv_seq_tiled": "advantages_seq_tiled"}


def record_verl_agg_loss(rec: Recorder, libs: SimpleNamespace) -> None:
    fn = libs.core_algos.agg_loss
    for mask_name in ["response_mask", "response_mask_empty_row"]:
        for mask_dtype in ["float64", "bool"]:
            for mode in [*AGG_MODES, "seq-mean-token-sum-norm@10"]:
                mode_name, _, lsf = mode.partition("@")
                scale = float(lsf) if lsf else None
                loss_mat = rec.leaf("loss_mat")
                mask = rec.x[mask_name].to(getattr(torch, mask_dtype))
                loss = fn(loss_mat, mask, mode_name, loss_scale_factor=scale)
                loss.backward()
                rec.add(
                    f"verl/agg_loss/{mode_name}/lsf_{lsf or 'none'}/{mask_name}/{mask_dtype}",
                    "verl",
                    fn_name(fn),
                    {
                        "loss_agg_mode": mode_name,
                        "loss_scale_factor": scale,
                        "mask_dtype": mask_dtype,
                    },
                    {"loss_mat": "loss_mat", "loss_mask": mask_name},
                    {"loss": loss.item(), "grad_loss_mat": to_list(loss_mat.grad)},
                )


def verl_actor_config(libs: SimpleNamespace, **overrides: Any) -> Any:
    return libs.verl_config.ActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_mini_batch_size=4,
        ppo_micro_batch_size_per_gpu=4,
        **overrides,
    )


def record_verl_policy(
    rec: Recorder,
    libs: SimpleNamespace,
    mode: str,
    tag: str,
    cfg: dict[str, Any],
    agg: str,
    adv_key: str,
    lp_name: str = "log_prob",
    weights: str | None = None,
    mask_name: str = "response_mask",
) -> None:
    fn = libs.core_algos.get_policy_loss_fn(mode)
    config = verl_actor_config(libs, **cfg)
    log_prob = rec.leaf(lp_name)
    mask = rec.x[mask_name].bool()
    loss, metrics = fn(
        old_log_prob=rec.x["old_log_prob"],
        log_prob=log_prob,
        advantages=rec.x[ADV_SHAPES[adv_key]],
        response_mask=mask,
        loss_agg_mode=agg,
        config=config,
        rollout_is_weights=None if weights is None else rec.x[weights],
    )
    loss.backward()
    inputs = {
        "old_log_prob": "old_log_prob",
        "log_prob": lp_name,
        "advantages": ADV_SHAPES[adv_key],
        "response_mask": mask_name,
    }
    if weights is not None:
        inputs["rollout_is_weights"] = weights
    suffix = "".join(
        [
            f"/{lp_name}" if lp_name != "log_prob" else "",
            "/is_weights" if weights else "",
            f"/{mask_name}" if mask_name != "response_mask" else "",
        ]
    )
    rec.add(
        f"verl/policy/{mode}/{tag}/{agg}/{adv_key}{suffix}",
        "verl",
        fn_name(fn),
        {"loss_mode": mode, "loss_agg_mode": agg, "mask_dtype": "bool", "config": cfg},
        inputs,
        {
            "loss": loss.item(),
            "grad_logprobs": to_list(grad_or_zeros(log_prob)),
            "metrics": float_metrics(metrics),
        },
    )


VERL_POLICY_CONFIGS = {
    "vanilla": {
        "lo0.2_hi0.2_c3": dict(
            clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.2, clip_ratio_c=3.0
        ),
        "lo0.2_hi0.28_c3": dict(
            clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0
        ),
        "lo0.2_hi0.2_c1e9": dict(
            clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.2, clip_ratio_c=1e9
        ),
        "lo0.2_hi0.28_c1e9": dict(
            clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=1e9
        ),
    },
    "gspo": {
        "lo0.2_hi0.28": dict(clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.28),
        "lo3e-4_hi4e-4": dict(clip_ratio=3e-4, clip_ratio_low=3e-4, clip_ratio_high=4e-4),
    },
    "sapo": {"tau_pos1.0_tau_neg1.05": dict(tau_pos=1.0, tau_neg=1.05)},
    "cispo": {"lo0.2_hi0.28": dict(clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.28)},
    "geo_mean": {
        "lo0.4_hi0.4": dict(clip_ratio=0.4, clip_ratio_low=0.4, clip_ratio_high=0.4),
        "lo0.2_hi0.28": dict(clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.28),
    },
    "gpg": {"default": {}},
}


def record_verl_policies(rec: Recorder, libs: SimpleNamespace) -> None:
    for mode, configs in VERL_POLICY_CONFIGS.items():
        for tag, cfg in configs.items():
            for agg in POLICY_AGG_MODES:
                for adv_key in ADV_SHAPES:
                    record_verl_policy(rec, libs, mode, tag, cfg, agg, adv_key)
    # +-20 clamps: one token with lp - old = +25, another with -25.
    for mode, tag in [
        ("vanilla", "lo0.2_hi0.28_c3"),
        ("gspo", "lo0.2_hi0.28"),
        ("cispo", "lo0.2_hi0.28"),
    ]:
        for adv_key in ADV_SHAPES:
            cfg = VERL_POLICY_CONFIGS[mode][tag]
            record_verl_policy(rec, libs, mode, tag, cfg, "token-mean", adv_key, "log_prob_extreme")
    # Rollout IS weights multiply the per-token loss.
    for mode, tag in [("vanilla", "lo0.2_hi0.28_c3"), ("gspo", "lo0.2_hi0.28")]:
        for adv_key in ADV_SHAPES:
            cfg = VERL_POLICY_CONFIGS[mode][tag]
            record_verl_policy(
                rec, libs, mode, tag, cfg, "token-mean", adv_key, weights="rollout_is_weights"
            )
    # Empty response row.
    for mode, tag in [("vanilla", "lo0.2_hi0.28_c3"), ("sapo", "tau_pos1.0_tau_neg1.05")]:
        for agg in POLICY_AGG_MODES:
            cfg = VERL_POLICY_CONFIGS[mode][tag]
            record_verl_policy(
                rec, libs, mode, tag, cfg, agg, "adv_token", mask_name="response_mask_empty_row"
            )
    cfg = VERL_POLICY_CONFIGS["geo_mean"]["lo0.4_hi0.4"]
    record_verl_policy(
        rec,
        libs,
        "geo_mean",
        "lo0.4_hi0.4",
        cfg,
        "token-mean",
        "adv_seq_tiled",
        mask_name="response_mask_empty_row",
    )
    # loss_scale_factor reaches agg_loss only through config.global_batch_info.
    cfg = dict(VERL_POLICY_CONFIGS["vanilla"]["lo0.2_hi0.28_c3"])
    cfg["global_batch_info"] = {"loss_scale_factor": 10.0}
    record_verl_policy(
        rec, libs, "vanilla", "lo0.2_hi0.28_c3_lsf10", cfg, "seq-mean-token-sum-norm", "adv_token"
    )


KL_TYPES = ["k1", "abs", "k2", "k3", "k1+", "abs+", "k2+", "k3+", "low_var_kl+"]
KL_ALIASES = {"kl": "k1", "mse": "k2", "low_var_kl": "k3"}  # checked equal, not recorded


def record_verl_kl(rec: Recorder, libs: SimpleNamespace) -> None:
    fn = libs.core_algos.kl_penalty
    for alias, name in KL_ALIASES.items():
        lp, ref = rec.x["log_prob_extreme"], rec.x["ref_log_prob"]
        assert torch.equal(fn(lp, ref, alias), fn(lp, ref, name)), alias
    for lp_name in ["log_prob", "log_prob_extreme"]:
        for kl_type in KL_TYPES:
            log_prob = rec.leaf(lp_name)
            values = fn(log_prob, rec.x["ref_log_prob"], kl_type)
            values.sum().backward()
            rec.add(
                f"verl/kl_penalty/{kl_type}/{lp_name}",
                "verl",
                fn_name(fn),
                {"kl_penalty": kl_type, "grad_of": "sum over all B*T entries (mask not applied)"},
                {"logprob": lp_name, "ref_logprob": "ref_log_prob"},
                {"values": to_list(values), "grad_logprobs": to_list(log_prob.grad)},
            )


def record_verl_advantages(rec: Recorder, libs: SimpleNamespace) -> None:
    ca = libs.core_algos
    algo = libs.verl_algo_config.AlgoConfig
    sets = {
        "set_a": ("token_level_rewards", "response_mask", "uid"),
        "set_b": ("token_level_rewards_b", "response_mask_b", "uid_b"),
        "set_b_singleton": ("token_level_rewards_b", "response_mask_b", "uid_b_singleton"),
    }

    notes = {
        "compute_grpo_vectorized_outcome_advantage": (
            "float32",
            "verl.utils.groupwise.group_mean_std casts scores to float32",
        ),
        "compute_gpg_outcome_advantage": (
            "float32",
            "alpha = bsz / count_nonzero(scores) is a float32 tensor (4/3 rounded)",
        ),
    }

    def add(case_id: str, fn: Any, params: dict, inputs: dict, result: tuple) -> None:
        adv, ret = result
        outputs = {"advantages": to_list(adv), "returns": to_list(ret)}
        dtype, note = notes.get(fn.__name__, ("float64", None))
        rec.add(case_id, "verl", fn_name(fn), params, inputs, outputs, dtype=dtype, note=note)

    for set_name, (rew, mask, uid) in sets.items():
        rewards, rmask, index = rec.x[rew], rec.x[mask], rec.x[uid].numpy()
        inputs = {"token_level_rewards": rew, "response_mask": mask, "index": uid}
        for norm in [True, False]:
            for fn in [
                ca.compute_grpo_outcome_advantage,
                ca.compute_grpo_vectorized_outcome_advantage,
            ]:
                short = fn.__name__.removeprefix("compute_").removesuffix("_outcome_advantage")
                result = fn(rewards.clone(), rmask, index, norm_adv_by_std_in_grpo=norm)
                params = {"norm_adv_by_std_in_grpo": norm, "epsilon": 1e-6}
                add(f"verl/adv/{short}/norm_{norm}/{set_name}", fn, params, inputs, result)
                if short == "grpo" and norm and set_name == "set_b_singleton":
                    rec.cases[-1]["note"] = (
                        "singleton groups use float32 torch.tensor(1.0) as std, so std + 1e-6 is "
                        "evaluated in float32 (1.0000009537)"
                    )
        for fn in [
            ca.compute_rloo_outcome_advantage,
            ca.compute_rloo_vectorized_outcome_advantage,
            ca.compute_reinforce_plus_plus_baseline_outcome_advantage,
            ca.compute_gpg_outcome_advantage,
        ]:
            short = fn.__name__.removeprefix("compute_").removesuffix("_outcome_advantage")
            result = fn(rewards.clone(), rmask, index)
            add(f"verl/adv/{short}/{set_name}", fn, {}, inputs, result)
        fn = ca.compute_reinforce_plus_plus_outcome_advantage
        if set_name == "set_b_singleton":
            continue  # no grouping: identical to set_b
        for gamma in [1.0, 0.9]:
            result = fn(rewards.clone(), rmask, config=algo(gamma=gamma))
            inputs_rpp = {"token_level_rewards": rew, "response_mask": mask}
            add(
                f"verl/adv/reinforce_plus_plus/gamma_{gamma}/{set_name}",
                fn,
                {"gamma": gamma},
                inputs_rpp,
                result,
            )
    fn = ca.compute_gae_advantage_return
    for gamma, lam in [(0.99, 0.95), (1.0, 1.0)]:
        result = fn(
            rec.x["token_level_rewards"], rec.x["values"], rec.x["response_mask"], gamma, lam
        )
        inputs = {
            "token_level_rewards": "token_level_rewards",
            "values": "values",
            "response_mask": "response_mask",
        }
        add(
            f"verl/adv/gae/gamma_{gamma}_lam_{lam}/set_a",
            fn,
            {"gamma": gamma, "lam": lam},
            inputs,
            result,
        )


def record_verl_value_loss(rec: Recorder, libs: SimpleNamespace) -> None:
    fn = libs.core_algos.compute_value_loss
    for agg in ["token-mean", "seq-mean-token-mean"]:
        vpreds = rec.leaf("new_values")
        loss, clipfrac = fn(
            vpreds, rec.x["returns"], rec.x["old_values"], rec.x["response_mask"], 0.5, agg
        )
        loss.backward()
        rec.add(
            f"verl/value_loss/clip_0.5/{agg}",
            "verl",
            fn_name(fn),
            {"cliprange_value": 0.5, "loss_agg_mode": agg, "mask_dtype": "float64"},
            {
                "vpreds": "new_values",
                "returns": "returns",
                "values": "old_values",
                "response_mask": "response_mask",
            },
            {
                "loss": loss.item(),
                "grad_vpreds": to_list(vpreds.grad),
                "metrics": {"vf_clipfrac": clipfrac.item()},
            },
        )


ROLLOUT_CORR_CASES = {
    "is_token_2.0": dict(rollout_is="token", rollout_is_threshold=2.0),
    "is_sequence_2.0": dict(rollout_is="sequence", rollout_is_threshold=2.0),
    "is_token_0.5_5.0": dict(rollout_is="token", rollout_is_threshold="0.5_5.0"),
    "is_sequence_0.5_5.0": dict(rollout_is="sequence", rollout_is_threshold="0.5_5.0"),
    "is_token_2.0_batch_normalize": dict(
        rollout_is="token", rollout_is_threshold=2.0, rollout_is_batch_normalize=True
    ),
    "is_sequence_2.0+rs_seq_sum_k1_0.5_2.0": dict(
        rollout_is="sequence",
        rollout_is_threshold=2.0,
        rollout_rs="seq_sum_k1",
        rollout_rs_threshold="0.5_2.0",
    ),
    "rs_token_k1_0.5_2.0": dict(
        rollout_is=None, rollout_rs="token_k1", rollout_rs_threshold="0.5_2.0"
    ),
    "rs_seq_mean_k3_0.1": dict(rollout_is=None, rollout_rs="seq_mean_k3", rollout_rs_threshold=0.1),
}


def record_verl_rollout_corr(rec: Recorder, libs: SimpleNamespace) -> None:
    fn = libs.rollout_corr.compute_rollout_correction_and_rejection_mask
    for mask_name in ["response_mask", "response_mask_empty_row"]:
        for tag, kwargs in ROLLOUT_CORR_CASES.items():
            if mask_name != "response_mask" and tag not in ("is_token_2.0", "is_sequence_2.0"):
                continue
            weights_proto, new_mask, metrics = fn(
                rec.x["old_log_prob"], rec.x["rollout_log_prob"], rec.x[mask_name], **kwargs
            )
            outputs: dict[str, Any] = {}
            if weights_proto is not None:
                outputs["rollout_is_weights"] = to_list(weights_proto.batch["rollout_is_weights"])
            outputs["modified_response_mask"] = to_list(new_mask)
            outputs["metrics"] = float_metrics(metrics)
            suffix = f"/{mask_name}" if mask_name != "response_mask" else ""
            rec.add(
                f"verl/rollout_corr/{tag}{suffix}",
                "verl",
                fn_name(fn),
                kwargs,
                {
                    "old_log_prob": "old_log_prob",
                    "rollout_log_prob": "rollout_log_prob",
                    "response_mask": mask_name,
                },
                outputs,
            )
    fn = libs.rollout_corr.compute_offpolicy_metrics
    metrics = fn(rec.x["old_log_prob"], rec.x["rollout_log_prob"], rec.x["response_mask"])
    rec.add(
        "verl/offpolicy_metrics",
        "verl",
        fn_name(fn),
        {},
        {
            "old_log_prob": "old_log_prob",
            "rollout_log_prob": "rollout_log_prob",
            "response_mask": "response_mask",
        },
        {"metrics": float_metrics(metrics)},
    )


# ---------------------------------------------------------------------------------------------
# OpenRLHF
# ---------------------------------------------------------------------------------------------

IS_SCHEMES = {
    "tis": dict(
        is_correction_level="token", is_correction_mode="clip", is_correction_gating="ratio"
    ),
    "icepop": dict(
        is_correction_level="token", is_correction_mode="mask", is_correction_gating="ratio"
    ),
    "seq_mask_tis": dict(
        is_correction_level="seq", is_correction_mode="mask", is_correction_gating="ratio"
    ),
}


def record_openrlhf_policy(
    rec: Recorder,
    libs: SimpleNamespace,
    case_id: str,
    kwargs: dict[str, Any],
    adv_key: str,
    lp_name: str = "log_prob",
    mask_name: str = "response_mask",
) -> None:
    cls = libs.orl_loss.PolicyLoss
    module = cls(**kwargs)
    log_prob = rec.leaf(lp_name)
    loss, clip_ratio, ppo_kl, vllm_kl, is_filter_ratio = module(
        log_prob,
        rec.x["old_log_prob"],
        rec.x[ADV_SHAPES[adv_key]],
        action_mask=rec.x[mask_name],
        rollout_log_probs=rec.x["rollout_log_prob"],
    )
    loss.backward()
    metrics = {
        "clip_ratio": clip_ratio,
        "ppo_kl": ppo_kl,
        "vllm_kl": vllm_kl,
        "is_filter_ratio": is_filter_ratio,
    }
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    rec.add(
        case_id,
        "openrlhf",
        f"{cls.__module__}::{cls.__qualname__}.forward",
        params,
        {
            "log_probs": lp_name,
            "old_log_probs": "old_log_prob",
            "advantages": ADV_SHAPES[adv_key],
            "action_mask": mask_name,
            "rollout_log_probs": "rollout_log_prob",
        },
        {
            "loss": loss.item(),
            "grad_logprobs": to_list(grad_or_zeros(log_prob)),
            "metrics": float_metrics(metrics),
        },
    )


def record_openrlhf(rec: Recorder, libs: SimpleNamespace) -> None:
    clip = dict(clip_eps_low=0.2, clip_eps_high=0.28)
    for adv_key in ADV_SHAPES:
        for token_level in [True, False]:
            for dual in [None, 3.0]:
                kwargs = dict(clip, dual_clip=dual, token_level_loss=token_level)
                case_id = (
                    f"openrlhf/policy/ppo/lo0.2_hi0.28_dual{dual}"
                    f"/token_level_{token_level}/{adv_key}"
                )
                record_openrlhf_policy(rec, libs, case_id, kwargs, adv_key)
        kwargs = dict(clip_eps_low=0.2, clip_eps_high=0.2, token_level_loss=True)
        record_openrlhf_policy(
            rec,
            libs,
            f"openrlhf/policy/ppo/lo0.2_hi0.2_dualNone/token_level_True/{adv_key}",
            kwargs,
            adv_key,
        )
        for tag, eps in [("lo0.2_hi0.28", (0.2, 0.28)), ("lo3e-4_hi4e-4", (3e-4, 4e-4))]:
            kwargs = dict(clip_eps_low=eps[0], clip_eps_high=eps[1], policy_loss_type="gspo")
            record_openrlhf_policy(
                rec, libs, f"openrlhf/policy/gspo/{tag}/{adv_key}", kwargs, adv_key
            )
        for scheme, is_kwargs in IS_SCHEMES.items():
            for token_level in [True, False]:
                kwargs = dict(clip, token_level_loss=token_level, **is_kwargs)
                kwargs["is_correction_threshold"] = (0.5, 5.0)
                record_openrlhf_policy(
                    rec,
                    libs,
                    f"openrlhf/policy/ppo/lo0.2_hi0.28/is_{scheme}_0.5_5.0/token_level_{token_level}/{adv_key}",
                    kwargs,
                    adv_key,
                )
        # gspo with IS correction on: rollout_log_probs replaces old_log_probs in the ratio.
        kwargs = dict(clip, policy_loss_type="gspo", **IS_SCHEMES["icepop"])
        record_openrlhf_policy(
            rec,
            libs,
            f"openrlhf/policy/gspo/lo0.2_hi0.28/is_icepop_0.5_5.0/{adv_key}",
            kwargs,
            adv_key,
        )
        for lp_name in ["log_prob_extreme"]:
            for dual in [None, 3.0]:
                kwargs = dict(clip, dual_clip=dual)
                record_openrlhf_policy(
                    rec,
                    libs,
                    f"openrlhf/policy/ppo/lo0.2_hi0.28_dual{dual}/token_level_True/{adv_key}/{lp_name}",
                    kwargs,
                    adv_key,
                    lp_name=lp_name,
                )
    kwargs = dict(clip, token_level_loss=False)
    record_openrlhf_policy(
        rec,
        libs,
        "openrlhf/policy/ppo/lo0.2_hi0.28_dualNone/token_level_False/adv_token/response_mask_empty_row",
        kwargs,
        "adv_token",
        mask_name="response_mask_empty_row",
    )

    fn = libs.orl_utils.compute_approx_kl
    for lp_name in ["log_prob", "log_prob_extreme"]:
        for estimator in ["k1", "k2", "k3"]:
            for unbiased, with_old in [(False, False), (True, True), (True, False)]:
                log_prob = rec.leaf(lp_name)
                values = fn(
                    log_prob,
                    rec.x["ref_log_prob"],
                    log_probs_old=rec.x["old_log_prob"] if with_old else None,
                    kl_estimator=estimator,
                    unbiased_gradient=unbiased,
                )
                values.sum().backward()
                inputs = {"log_probs": lp_name, "log_probs_base": "ref_log_prob"}
                if with_old:
                    inputs["log_probs_old"] = "old_log_prob"
                rec.add(
                    f"openrlhf/approx_kl/{estimator}/unbiased_{unbiased}"
                    f"{'/with_old' if with_old else ''}/{lp_name}",
                    "openrlhf",
                    fn_name(fn),
                    {
                        "kl_estimator": estimator,
                        "unbiased_gradient": unbiased,
                        "grad_of": "sum over all B*T entries (mask not applied)",
                    },
                    inputs,
                    {"values": to_list(values), "grad_logprobs": to_list(log_prob.grad)},
                    dtype="float32",
                )

    cls = libs.orl_loss.ValueLoss
    for clip_eps in [0.5, None]:
        for token_level in [True, False]:
            values = rec.leaf("new_values")
            loss = cls(clip_eps=clip_eps, token_level_loss=token_level)(
                values, rec.x["old_values"], rec.x["returns"], action_mask=rec.x["response_mask"]
            )
            loss.backward()
            rec.add(
                f"openrlhf/value_loss/clip_{clip_eps}/token_level_{token_level}",
                "openrlhf",
                f"{cls.__module__}::{cls.__qualname__}.forward",
                {"clip_eps": clip_eps, "token_level_loss": token_level},
                {
                    "values": "new_values",
                    "old_values": "old_values",
                    "returns": "returns",
                    "action_mask": "response_mask",
                },
                {"loss": loss.item(), "grad_values": to_list(values.grad)},
            )

    fn = libs.orl_loss.aggregate_loss
    for mask_name in ["response_mask", "response_mask_empty_row"]:
        for token_level in [True, False]:
            loss_mat = rec.leaf("loss_mat")
            loss = fn(loss_mat, rec.x[mask_name], token_level_loss=token_level)
            loss.backward()
            rec.add(
                f"openrlhf/aggregate_loss/token_level_{token_level}/{mask_name}",
                "openrlhf",
                fn_name(fn),
                {"token_level_loss": token_level},
                {"loss": "loss_mat", "loss_mask": mask_name},
                {"loss": loss.item(), "grad_loss_mat": to_list(loss_mat.grad)},
            )


# ---------------------------------------------------------------------------------------------
# TRL
# ---------------------------------------------------------------------------------------------


def trl_standin(
    log_prob: Tensor,
    *,
    loss_type: str,
    level: str,
    eps: float,
    eps_high: float,
    beta: float,
    bias_kl: bool,
    delta: float | None,
    max_completion_length: int,
    use_vllm: bool,
) -> SimpleNamespace:
    """The attributes GRPOTrainer._compute_loss reads, for one process and no accumulation."""

    def get_logps(model, input_ids, attention_mask, logits_to_keep, **kwargs):
        return log_prob, torch.zeros_like(log_prob), None

    accelerator = SimpleNamespace(
        num_processes=1,
        sync_gradients=True,
        reduce=lambda t, reduction="sum": t,
        gather=lambda t: t,
        gather_for_metrics=lambda t: t,
    )
    args = SimpleNamespace(
        use_bias_correction_kl=bias_kl,
        delta=delta,
        sapo_temperature_pos=1.0,
        sapo_temperature_neg=1.05,
        steps_per_generation=1,
    )
    return SimpleNamespace(
        _get_per_token_logps_and_entropies=get_logps,
        aux_loss_enabled=False,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level=level,
        beta=beta,
        args=args,
        loss_type=loss_type,
        epsilon_low=eps,
        epsilon_high=eps_high,
        use_vllm=use_vllm,
        vllm_importance_sampling_correction=True,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        max_completion_length=max_completion_length,
        accelerator=accelerator,
        _entropy_bonus_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
    )


def record_trl_case(
    rec: Recorder,
    libs: SimpleNamespace,
    loss_type: str,
    *,
    level: str = "token",
    eps: float = 0.2,
    eps_high: float = 0.28,
    beta: float = 0.0,
    bias_kl: bool = True,
    delta: float | None = None,
    max_completion_length: int = 512,
    use_vllm: bool = False,
    adv_name: str = "advantages_seq",
    lp_name: str = "log_prob",
    mask_name: str = "response_mask",
) -> None:
    log_prob = rec.leaf(lp_name)
    params = dict(
        loss_type=loss_type,
        importance_sampling_level=level,
        epsilon_low=eps,
        epsilon_high=eps_high,
        beta=beta,
        use_bias_correction_kl=bias_kl,
        delta=delta,
        max_completion_length=max_completion_length,
        use_vllm=use_vllm,
    )
    standin = trl_standin(
        log_prob,
        loss_type=loss_type,
        level=level,
        eps=eps,
        eps_high=eps_high,
        beta=beta,
        bias_kl=bias_kl,
        delta=delta,
        max_completion_length=max_completion_length,
        use_vllm=use_vllm,
    )
    mask = rec.x[mask_name].long()
    inputs = {
        "prompt_ids": torch.zeros(B, 2, dtype=torch.long),
        "prompt_mask": torch.ones(B, 2, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": mask,
        "advantages": rec.x[adv_name],
        "old_per_token_logps": rec.x["old_log_prob"],
        "num_items_in_batch": mask.sum(),
    }
    names = {
        "per_token_logps": lp_name,
        "completion_mask": mask_name,
        "advantages": adv_name,
        "old_per_token_logps": "old_log_prob",
    }
    if beta != 0.0:
        inputs["ref_per_token_logps"] = rec.x["ref_log_prob"]
        names["ref_per_token_logps"] = "ref_log_prob"
    if use_vllm:
        inputs["importance_sampling_ratio"] = rec.x["rollout_is_weights"]
        names["importance_sampling_ratio"] = "rollout_is_weights"
    cls = libs.grpo_trainer.GRPOTrainer
    loss = cls._compute_loss(standin, None, inputs)
    loss.backward()
    # "entropy" is logged from the stubbed entropies (zeros): not a library number.
    metrics = {k: v[-1] for k, v in standin._metrics["train"].items() if k != "entropy"}
    params["num_items_in_batch"] = int(mask.sum())
    params["completion_mask_dtype"] = "int64"
    tag = [f"{loss_type}/{level}/lo{eps}_hi{eps_high}"]
    if loss_type == "dr_grpo":
        tag.append(f"mcl{max_completion_length}")
    if beta:
        tag.append(f"beta{beta}_biascorr{bias_kl}")
    if delta is not None:
        tag.append(f"delta{delta}")
    if use_vllm:
        tag.append("vllm_is")
    tag.append({"advantages_seq": "adv_seq"}.get(adv_name, adv_name.replace("advantages", "adv")))
    if lp_name != "log_prob":
        tag.append(lp_name)
    if mask_name != "response_mask":
        tag.append(mask_name)
    note = None
    if loss_type == "sapo":
        note = "torch.where(A > 0, 1.0, 1.05) makes the temperatures float32 (1.05 -> 1.0499999523)"
    rec.add(
        "trl/grpo_loss/" + "/".join(tag),
        "trl",
        f"{cls.__module__}::{cls.__qualname__}._compute_loss",
        params,
        names,
        {
            "loss": loss.item(),
            "grad_logprobs": to_list(grad_or_zeros(log_prob)),
            "metrics": float_metrics(metrics),
        },
        note=note,
    )


def record_trl(rec: Recorder, libs: SimpleNamespace) -> None:
    for level in ["token", "sequence"]:
        for loss_type in ["grpo", "bnpo", "dapo", "sapo", "luspo"]:
            record_trl_case(rec, libs, loss_type, level=level)
        for mcl in [6, 512]:
            record_trl_case(rec, libs, "dr_grpo", level=level, max_completion_length=mcl)
        for eps_high in [5.0, 0.28]:
            record_trl_case(rec, libs, "cispo", level=level, eps_high=eps_high)
    record_trl_case(rec, libs, "grpo", eps_high=0.2)
    record_trl_case(rec, libs, "dapo", eps_high=0.2)
    record_trl_case(rec, libs, "dapo", eps_high=0.28, delta=3.0)
    record_trl_case(rec, libs, "dapo", eps_high=0.2, delta=3.0, adv_name="advantages_token")
    for bias_kl in [True, False]:
        record_trl_case(rec, libs, "grpo", beta=0.04, bias_kl=bias_kl)
        record_trl_case(rec, libs, "dapo", level="sequence", beta=0.04, bias_kl=bias_kl)
    record_trl_case(rec, libs, "dapo", use_vllm=True)
    for loss_type in ["grpo", "dapo", "bnpo"]:
        record_trl_case(rec, libs, loss_type, adv_name="advantages_token")
    for loss_type in ["grpo", "luspo", "sapo", "dr_grpo"]:
        record_trl_case(rec, libs, loss_type, mask_name="response_mask_empty_row")
    record_trl_case(rec, libs, "grpo", lp_name="log_prob_extreme", adv_name="advantages_token")


# ---------------------------------------------------------------------------------------------
# Hand checks against FORMULAS.md (independent re-derivations of a few recorded numbers)
# ---------------------------------------------------------------------------------------------


def case(rec: Recorder, case_id: str) -> dict[str, Any]:
    return next(c for c in rec.cases if c["id"] == case_id)


def hand_checks(rec: Recorder) -> None:
    x = rec.x
    m, old, lp, adv = x["response_mask"], x["old_log_prob"], x["log_prob"], x["advantages_token"]

    def close(a: float, b: float, tol: float = 1e-12) -> None:
        assert abs(a - b) <= tol * max(1.0, abs(b)), (a, b)

    # verl vanilla, dual clip c = 3, token-mean.
    r = torch.exp(lp - old)
    l1, l2 = -adv * r, -adv * torch.clamp(r, 0.8, 1.28)
    lc = torch.maximum(l1, l2)
    per_tok = torch.where(adv < 0, torch.minimum(-adv * 3.0, lc), lc)
    c = case(rec, "verl/policy/vanilla/lo0.2_hi0.28_c3/token-mean/adv_token")
    close(c["outputs"]["loss"], float((per_tok * m).sum() / m.sum()))
    # OpenRLHF ppo, no dual clip, seq-mean-token-mean.
    seq = (torch.maximum(l1, l2) * m).sum(-1) / (m.sum(-1) + 1e-8)
    c = case(rec, "openrlhf/policy/ppo/lo0.2_hi0.28_dualNone/token_level_False/adv_token")
    close(c["outputs"]["loss"], float(seq.mean()))
    # TRL grpo, token level, (B,) advantages: mean over rows of per-row token means.
    a = x["advantages_seq"].unsqueeze(1)
    per_tok = -torch.minimum(r * a, torch.clamp(r, 0.8, 1.28) * a)
    c = case(rec, "trl/grpo_loss/grpo/token/lo0.2_hi0.28/adv_seq")
    close(c["outputs"]["loss"], float(((per_tok * m).sum(-1) / m.sum(-1)).mean()))
    # verl k3 on the extreme input: value clamped at 10, gradient 0 there.
    c = case(rec, "verl/kl_penalty/k3/log_prob_extreme")
    assert c["outputs"]["values"][0][4] == 10.0 and c["outputs"]["grad_logprobs"][0][4] == 0.0
    # verl GRPO advantage, set A, group 0 scores (1, 0): (1 - 0.5) / (std + 1e-6).
    c = case(rec, "verl/adv/grpo/norm_True/set_a")
    close(c["outputs"]["advantages"][0][0], 0.5 / (math.sqrt(0.5) + 1e-6))
    # verl token TIS: w = min(exp(old - rollout), 2) at the hand-set token (e^0.8 > 2).
    c = case(rec, "verl/rollout_corr/is_token_2.0")
    close(c["outputs"]["rollout_is_weights"][0][2], 2.0)


# ---------------------------------------------------------------------------------------------


def main() -> None:
    libs = load_libraries()
    torch.use_deterministic_algorithms(True)
    inputs = make_inputs()
    rec = Recorder(inputs)
    record_verl_agg_loss(rec, libs)
    record_verl_policies(rec, libs)
    record_verl_kl(rec, libs)
    record_verl_advantages(rec, libs)
    record_verl_value_loss(rec, libs)
    record_verl_rollout_corr(rec, libs)
    record_openrlhf(rec, libs)
    record_trl(rec, libs)
    hand_checks(rec)

    def finite_or_none(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)  # "nan" / "inf" / "-inf": JSON has no such numbers
        if isinstance(v, dict):
            return {k: finite_or_none(w) for k, w in v.items()}
        if isinstance(v, list):
            return [finite_or_none(w) for w in v]
        return v

    data = {
        "versions": {**VERSIONS, "torch": torch.__version__, "numpy": np.__version__},
        "generator": "tests/core/data/make_library_reference.py",
        "notes": {
            "mask": "left-aligned ones; row lengths [6,4,1,3] (empty_row: [6,4,0,3])",
            "grad_logprobs": "d loss / d log_prob at every [B,T] position (padding included)",
            "non_finite": "non-finite floats are stored as the strings 'nan', 'inf', '-inf'",
            "float32_metrics": "verl pg_clipfrac*/vf_clipfrac and TRL clip_ratio*/cispo_clip_ratio "
            "are means of .float() (float32) indicators: compare them at ~1e-7",
            "verl_bool_mask": "with a bool mask verl's masked_mean / seq-mean-token-mean divide by "
            "(int count + 1e-8) evaluated in float32, i.e. by the exact count",
        },
        "inputs": {
            k: to_list(v) if v.is_floating_point() else v.tolist() for k, v in inputs.items()
        },
        "cases": finite_or_none(rec.cases),
    }
    OUT_PATH.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {len(rec.cases)} cases to {OUT_PATH} ({OUT_PATH.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
