"""POST /analyze: JSON and multipart ``.npy``, advantages or rewards, masks, every convention,
against ppo_core's ``ppo_total_loss`` on the same tensors; and the upload refusals."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from api_support import as_lists, assert_error, convention_json, npy_bytes, post_text
from fastapi.testclient import TestClient

from app.inspector import VIEW_RULE
from ppo_core import CONVENTIONS, compute_advantages, get_convention, ppo_total_loss
from ppo_core.conventions import Convention
from ppo_core.inspector import TOKEN_STATES

ANALYZE = "/api/v1/analyze"


def rollout(seed: int = 0) -> dict[str, torch.Tensor]:
    """A small 2-D batch with right padding, every optional field present."""
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale

    old = normal(3, 6) - 2.0
    values = normal(3, 6)
    mask = torch.ones(3, 6, dtype=torch.float64)
    mask[1, 4:] = 0.0
    mask[2, 2:] = 0.0
    return {
        "logprobs": old + normal(3, 6, scale=0.3),
        "old_logprobs": old,
        "advantages": normal(3, 6),
        "values": values,
        "returns": values + normal(3, 6, scale=0.5),
        "old_values": values + normal(3, 6, scale=0.3),
        "ref_logprobs": old + normal(3, 6, scale=0.2),
        "logits": normal(3, 6, 5),
        "mask": mask,
    }


def expected_numbers(t: dict[str, torch.Tensor], convention: str) -> dict[str, Any]:
    """The breakdown and main diagnostics as ppo_core computes them."""
    conv = get_convention(convention)
    t = dict(t)
    if "rewards" in t:
        t["advantages"], gae_returns = compute_advantages(
            t.pop("rewards"), t["values"], t["mask"], conv
        )
        t.setdefault("returns", gae_returns)
    res = ppo_total_loss(
        t.pop("logprobs"),
        t.pop("old_logprobs"),
        t.pop("advantages"),
        t.pop("values"),
        t.pop("returns"),
        **t,
        convention=conv,
    )
    p = res.policy
    kl = float(res.kl)  # type: ignore[arg-type]
    return {
        "breakdown": {
            "policy_loss": float(p.loss),
            "value_loss": float(res.value.loss),
            "entropy": float(res.entropy),  # type: ignore[arg-type]
            "kl": kl,
            "kl_term": conv.kl_coef * kl if res.kl_in_loss else 0.0,
            "total_loss": float(res.total_loss),
        },
        "diagnostics": {
            "clip_fraction": p.clip_fraction,
            "ratio_outside_fraction": p.ratio_outside_fraction,
            "approx_kl": p.approx_kl,
            "approx_kl_k3": p.approx_kl_k3,
            "ratio_max": p.ratio_max,
            "explained_variance": res.explained_variance,
            "value_clip_fraction": res.value.clip_fraction,
            "value_clip_applied": res.value_clip_applied,
            "kl_to_reference": kl,
            "clip_fraction_as_logged": getattr(p, conv.clip_fraction_metric),
            "approx_kl_as_logged": getattr(p, conv.approx_kl_metric),
        },
    }


def assert_matches(got: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected["breakdown"].items():
        assert got["breakdown"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    for key, value in expected["diagnostics"].items():
        assert got["diagnostics"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def expected_preset_loss(c: Convention) -> float:
    """A preset's policy loss when r = 1, A = 1 and log pi = 0 on one row of 2 tokens: the clip
    family's per-token loss is -1, SAPO's gate -(4/τ)σ(0) = -2, CISPO and GPG multiply log pi
    = 0, CleanRL / SB3 normalise A = 1 to 0; sums over the row are -2, and sum-norm divides the
    row sum by L (default T = 2)."""
    if c.advantage_norm == "minibatch" or c.policy_loss_mode in ("cispo", "gpg"):
        return 0.0
    per_token = -2.0 if c.policy_loss_mode == "sapo" else -1.0
    if c.policy_loss_mode == "geo_mean" or c.loss_agg_mode in ("token-mean", "seq-mean-token-mean"):
        return per_token
    if c.loss_agg_mode == "seq-mean-token-sum-norm":
        return 2 * per_token / (c.loss_scale_factor or 2)
    return 2 * per_token


def test_analyze_whole_body_by_hand(client: TestClient) -> None:
    body = {"logprobs": [0.0, 0.0], "old_logprobs": [0.0, 0.0], "advantages": [1.0, 1.0]}
    r = client.post(ANALYZE, json=body | {"bins": 2})
    assert r.status_code == 200, r.text
    zeros = dict.fromkeys(
        ["clip_fraction", "clip_fraction_lower", "ratio_outside_fraction", "approx_kl"], 0.0
    )
    assert r.json() == {
        "tokens": 2,
        "shape": [2],
        "inputs": ["advantages", "logprobs", "old_logprobs"],
        "breakdown": {
            "policy_loss": -1.0,
            "value_loss": 0.0,
            "entropy": 0.0,
            "value_term": 0.0,
            "entropy_term": -0.0,
            "kl": None,
            "kl_term": 0.0,
            "total_loss": -1.0,
        },
        "diagnostics": zeros
        | {
            "approx_kl_k2": 0.0,
            "approx_kl_k3": 0.0,
            "ratio_min": 1.0,
            "ratio_mean": 1.0,
            "ratio_max": 1.0,
            "explained_variance": None,  # returns default to 0: Var(R) = 0
            "value_clip_fraction": 0.0,
            "value_clip_applied": False,
            "kl_to_reference": None,
            "advantage_mean": 1.0,
            "advantage_std": 0.0,
            "clip_fraction_as_logged": 0.0,
            "approx_kl_as_logged": 0.0,
        },
        "histograms": {  # constant inputs: one bin of width 1 around the value
            "ratio": {"edges": [0.5, 1.5], "counts": [2]},
            "advantage": {"edges": [0.5, 1.5], "counts": [2]},
            "per_token_loss": {"edges": [-1.5, -0.5], "counts": [2]},
            "logprob_gradient": {"edges": [-1.0, 0.0], "counts": [2]},
            "log_ratio": {"edges": [-0.5, 0.5], "counts": [2]},
        },
        # token-mean of -A r over 2 tokens: d/d logprob = -A r / 2 = -0.5 each.
        "logprob_gradient": [-0.5, -0.5],
        "rollout_correction": None,
        "policy_loss_mode": "vanilla",
        "findings": [],  # a clean batch
        "token_view": {
            "rule": VIEW_RULE,
            "states": list(TOKEN_STATES),
            "rows": [0],
            "starts": [0],
            "lengths": [2],
            "ratio": [[1.0, 1.0]],
            "loss": [[-1.0, -1.0]],
            "advantage": [[1.0, 1.0]],
            "gradient": [[-0.5, -0.5]],
            "mask": [[1, 1]],
            "state": [[1, 1]],  # trust_region
            "rollout_weight": None,
        },
        "aggregation": {  # per-token loss -1 on one row of 2 tokens (T = 2)
            "rows": [0],
            "lengths": [2],
            "modes": {
                "token-mean": {"loss": -1.0, "sequence_weight": [1.0]},
                "token-sum": {"loss": -2.0, "sequence_weight": [2.0]},
                "seq-mean-token-mean": {"loss": -1.0, "sequence_weight": [1.0]},
                "seq-mean-token-sum": {"loss": -2.0, "sequence_weight": [2.0]},
                "seq-mean-token-sum-norm": {"loss": -1.0, "sequence_weight": [1.0]},
            },
        },
        "microbatch": None,
        "conventions": {
            "rows_used": 1,
            "rows_total": 1,
            "presets": [
                {
                    "name": c.name,
                    "library": c.library,
                    "policy_loss_mode": c.policy_loss_mode,
                    # r = 1, A = 1, log pi = 0 on one row of 2 tokens (T = 2).
                    "loss": expected_preset_loss(c),
                    "clip_fraction_as_logged": 0.0,
                    "approx_kl_as_logged": 0.0,
                    "clip_fraction_metric": c.clip_fraction_metric,
                    "approx_kl_metric": c.approx_kl_metric,
                }
                for c in CONVENTIONS.values()
            ],
        },
        "convention": convention_json("seed"),
        "notes": [
            "no values: the value loss is not computed and counts as 0",
            "no logits or entropy: the entropy term is 0",
        ],
    }


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_analyze_json_per_convention(client: TestClient, convention: str) -> None:
    t = rollout()
    r = client.post(ANALYZE, json=as_lists(t) | {"convention": convention})
    assert r.status_code == 200, r.text
    got = r.json()
    assert_matches(got, expected_numbers(t, convention))
    assert got["tokens"] == 18 - 2 - 4
    assert got["shape"] == [3, 6]
    assert got["convention"] == convention_json(convention)
    for hist in got["histograms"].values():
        assert sum(hist["counts"]) == 12 and len(hist["edges"]) == 41


@pytest.mark.parametrize("convention", ["seed", "verl", "trl"])
def test_analyze_with_rewards_instead_of_advantages(client: TestClient, convention: str) -> None:
    t = rollout(1)
    del t["advantages"], t["returns"]
    t["rewards"] = torch.zeros(3, 6, dtype=torch.float64)
    t["rewards"][:, -1] = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    r = client.post(ANALYZE, json=as_lists(t) | {"convention": convention})
    assert r.status_code == 200, r.text
    assert_matches(r.json(), expected_numbers(t, convention))
    conv = get_convention(convention)
    note = f"advantages from rewards by GAE (gamma={conv.gamma:g}, lam={conv.lam:g})"
    if conv.advantage_norm == "whiten":
        note += ", whitened"
    assert note in r.json()["notes"]


def test_analyze_mask_changes_the_numbers(client: TestClient) -> None:
    t = rollout(2)
    masked = client.post(ANALYZE, json=as_lists(t))
    del t["mask"]
    unmasked = client.post(ANALYZE, json=as_lists(t))
    assert masked.status_code == unmasked.status_code == 200
    assert masked.json()["tokens"] == 12 and unmasked.json()["tokens"] == 18
    assert_matches(unmasked.json(), expected_numbers(t, "seed"))
    assert masked.json()["breakdown"] != unmasked.json()["breakdown"]


@pytest.mark.parametrize("convention", ["cleanrl", "verl"])
def test_analyze_multipart_npy_equals_json(client: TestClient, convention: str) -> None:
    t = rollout(3)
    files = {name: (f"{name}.npy", npy_bytes(v.numpy())) for name, v in t.items()}
    via_npy = client.post(ANALYZE, files=files, data={"convention": convention, "bins": "8"})
    via_json = client.post(ANALYZE, json=as_lists(t) | {"convention": convention, "bins": 8})
    assert via_npy.status_code == 200, via_npy.text
    assert via_npy.json() == via_json.json()
    assert_matches(via_npy.json(), expected_numbers(t, convention))


def test_analyze_npy_float32_and_fortran_order(client: TestClient) -> None:
    t = {k: v.float() for k, v in rollout(4).items()}
    files = {
        name: (f"{name}.npy", npy_bytes(np.asfortranarray(v.numpy()))) for name, v in t.items()
    }
    r = client.post(ANALYZE, files=files, data={"convention": "openrlhf"})
    assert r.status_code == 200, r.text
    assert_matches(r.json(), expected_numbers({k: v.double() for k, v in t.items()}, "openrlhf"))


# --- upload refusals ----------------------------------------------------------------------

BASE_FILES = {
    "logprobs": ("lp.npy", npy_bytes(np.zeros(3))),
    "old_logprobs": ("old.npy", npy_bytes(np.zeros(3))),
}


def post_advantages_file(client: TestClient, raw: bytes) -> Any:
    return client.post(ANALYZE, files=BASE_FILES | {"advantages": ("adv.npy", raw)})


class _WritesFileWhenUnpickled:
    """Unpickling this calls ``open(path, "w")``: a canary for "nothing is ever unpickled"."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_npy_pickled_object_array_is_refused_unread(client: TestClient, tmp_path: Path) -> None:
    canary = tmp_path / "unpickled"
    payload = np.array([_WritesFileWhenUnpickled(canary), 1.0], dtype=object)
    r = post_advantages_file(client, npy_bytes(payload, allow_pickle=True))
    assert_error(
        r, 422, ["body", "advantages"], "advantages: object-dtype (pickled) arrays are refused"
    )
    assert not canary.exists()


def test_npy_bare_pickle_is_not_an_array(client: TestClient) -> None:
    r = post_advantages_file(client, pickle.dumps(np.ones(3)))
    # Not .npy, .npz (zip) or .safetensors (8-byte header size + JSON): refused, never loaded.
    assert_error(r, 422, ["body", "advantages"], "advantages: not a .npy, .npz or .safetensors ...")


def test_npy_truncated_data(client: TestClient) -> None:
    r = post_advantages_file(client, npy_bytes(np.ones(3))[:-5])
    assert_error(
        r, 422, ["body", "advantages"], "advantages: truncated: 19 data bytes, expected 24"
    )


def test_npy_truncated_header(client: TestClient) -> None:
    r = post_advantages_file(client, npy_bytes(np.ones(3))[:20])
    assert_error(r, 422, ["body", "advantages"], "advantages: malformed .npy header: ...")


@pytest.mark.parametrize(
    ("array", "dtype"),
    [(np.array(["a", "b", "c"]), "<U1"), (np.ones(3, dtype=np.complex128), "complex128")],
)
def test_npy_non_numeric_dtype(client: TestClient, array: Any, dtype: str) -> None:
    r = post_advantages_file(client, npy_bytes(array))
    assert_error(
        r, 422, ["body", "advantages"], f"advantages: expected a numeric array, got dtype {dtype}"
    )


def test_npy_random_bytes(client: TestClient) -> None:
    raw = np.random.default_rng(0).bytes(64)
    r = post_advantages_file(client, raw)
    assert_error(r, 422, ["body", "advantages"], "advantages: not a .npy, .npz or .safetensors ...")


def test_npy_non_finite(client: TestClient) -> None:
    r = post_advantages_file(client, npy_bytes(np.array([0.0, np.inf, 1.0])))
    assert_error(r, 422, ["body", "advantages"], "advantages: non-finite value inf at index [1]")


def test_npy_shape_mismatch(client: TestClient) -> None:
    r = post_advantages_file(client, npy_bytes(np.ones(4)))
    assert_error(
        r, 422, ["body", "advantages"], "advantages: shape [4] does not match logprobs [3]"
    )


def test_multipart_unknown_file_field(client: TestClient) -> None:
    files = BASE_FILES | {"advantage": ("a.npy", npy_bytes(np.ones(3)))}
    r = client.post(ANALYZE, files=files)
    assert_error(
        r, 422, ["body", "advantage"], "advantage: not a tensor field; expected one of ..."
    )


def test_multipart_tensor_as_text_field(client: TestClient) -> None:
    r = client.post(ANALYZE, files=BASE_FILES, data={"advantages": "[1, 2, 3]"})
    assert_error(
        r, 422, ["body", "advantages"], "advantages: tensor fields must be uploaded as files"
    )


def test_multipart_bad_knob(client: TestClient) -> None:
    files = BASE_FILES | {"advantages": ("a.npy", npy_bytes(np.ones(3)))}
    r = client.post(ANALYZE, files=files, data={"convention": "ppo2"})
    assert_error(r, 422, ["body", "convention"], "Input should be 'seed', 'cleanrl', ...")


def test_multipart_malformed(client: TestClient) -> None:
    headers = {"content-type": "multipart/form-data; boundary=xyz"}
    r = client.post(ANALYZE, content=b"not multipart at all", headers=headers)
    assert_error(r, 422, ["body"], "invalid multipart body: ...")


def test_analyze_needs_advantages_or_rewards(client: TestClient) -> None:
    r = client.post(ANALYZE, json={"logprobs": [0.0], "old_logprobs": [0.0]})
    assert_error(
        r,
        422,
        ["body", "advantages"],
        "advantages: field required (or send rewards or scores to compute them)",
    )


def test_analyze_body_must_be_an_object(client: TestClient) -> None:
    assert_error(client.post(ANALYZE, json=[1, 2]), 422, ["body"], "expected a JSON object")


def test_npy_over_element_limit_checked_from_header(client: TestClient) -> None:
    # The header claims 10**9 elements and only the header is sent: refused by the count
    # (not as truncated), before any data would be read.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)}
    )
    r = client.post(ANALYZE, files=BASE_FILES | {"advantages": ("a.npy", header.getvalue())})
    assert_error(
        r,
        422,
        ["body", "advantages"],
        f"advantages: has 1000000000 elements, over the limit of {4 * 1024 * 1024}",
    )


def test_non_finite_in_analyze_json(client: TestClient) -> None:
    text = json.dumps({"logprobs": [0.0, 0.0], "old_logprobs": [0.0, float("nan")]})
    r = post_text(client, ANALYZE, text)
    assert_error(
        r, 422, ["body", "old_logprobs"], "old_logprobs: non-finite value nan at index [1]"
    )


def test_malformed_json_on_analyze(client: TestClient) -> None:
    r = post_text(client, ANALYZE, '{"logprobs": [0.0,')
    assert_error(r, 422, ["body"], "invalid JSON: ...")
