"""The batch inspector on POST /api/v1/analyze: every finding planted and absent, the same batch
in every upload format, NaN / inf at padding, the token view, aggregation, micro-batches,
conventions, advantages from scores, and the response bound."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pytest
import torch
from api_support import assert_error, npy_bytes
from fastapi.testclient import TestClient
from safetensors.numpy import save as save_safetensors

from ppo_core import PPOInputError, group_advantages
from ppo_core.conventions import CONVENTIONS
from ppo_core.findings import (
    APPROX_KL_HIGH,
    CLIP_FRACTION_HIGH,
    LOW_ENTROPY,
    ROLLOUT_K3_KL,
)
from ppo_core.inspector import MAX_VIEW_ROWS, MAX_VIEW_TOKENS, TOKEN_STATES

ANALYZE = "/api/v1/analyze"


def clean_batch(rows: int = 6, width: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """A healthy batch: small policy moves, varied advantages, a good critic, rows of
    different lengths, no empty row."""
    rng = np.random.default_rng(seed)
    old = -np.abs(rng.normal(1.0, 0.5, (rows, width)))
    values = rng.normal(0, 1, (rows, width))
    lengths = np.linspace(width // 2, width, rows).round().astype(int)
    return {
        "logprobs": old + rng.normal(0, 0.02, (rows, width)),
        "old_logprobs": old,
        "advantages": rng.normal(0, 1, (rows, width)),
        "values": values,
        "returns": values + rng.normal(0, 0.3, (rows, width)),
        "mask": (np.arange(width)[None, :] < lengths[:, None]).astype(float),
        "entropy": np.full((rows, width), 1.5),
    }


def as_json(batch: dict[str, np.ndarray]) -> dict[str, object]:
    return {k: v.tolist() for k, v in batch.items()}


def analyze(client: TestClient, batch: dict[str, np.ndarray], **knobs: object) -> dict:
    r = client.post(ANALYZE, json=as_json(batch) | knobs)
    assert r.status_code == 200, r.text
    return r.json()


def codes(body: dict) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in body["findings"]}


def test_a_clean_batch_has_no_finding(client: TestClient) -> None:
    b = clean_batch()
    rollout = b["old_logprobs"] + 1e-4
    got = analyze(
        client,
        b | {"rollout_logprobs": rollout},
        first_epoch=False,
        convention="verl",
    )
    assert got["findings"] == []
    scores = np.array([1.0, 0.0, 1.0, 0.0, 0.5, 0.0])
    got = analyze(
        client,
        {k: v for k, v in b.items() if k != "advantages"} | {"scores": scores},
        group_ids=[0, 0, 1, 1, 2, 2],
    )
    assert got["findings"] == []


def planted(name: str) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """A clean batch with one problem planted, and the knobs that expose it."""
    b = clean_batch()
    knobs: dict[str, object] = {}
    if name == "clip_fraction_high":
        b["logprobs"] = b["old_logprobs"] + 0.5  # r = 1.65 everywhere: most tokens clipped
    elif name == "approx_kl_high":
        b["logprobs"] = b["old_logprobs"] - 0.5  # k1 = 0.5
    elif name == "log_ratio_extreme":
        b["logprobs"][0, 0] += 25.0
    elif name == "ratio_off_one_first_epoch":
        b["logprobs"][1, 1] += 0.01
        knobs["first_epoch"] = True
    elif name == "fully_masked_rows":
        b["mask"][2] = 0.0
    elif name == "zero_std_groups":
        del b["advantages"]
        b["scores"] = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])  # groups 0 and 1 all equal
        knobs["group_ids"] = [0, 0, 1, 1, 2, 2]
    elif name == "rollout_mismatch":
        b["rollout_logprobs"] = b["old_logprobs"] + np.random.default_rng(1).normal(
            0, 0.5, b["old_logprobs"].shape
        )
    elif name == "explained_variance_negative":
        b["values"] = -b["returns"]
    elif name == "low_entropy":
        b["entropy"] = np.full_like(b["entropy"], 0.01)
    elif name == "nonfinite_in_padding":
        b["logprobs"][0, -1] = np.nan  # row 0 is the shortest: its last token is padding
        b["old_logprobs"][0, -1] = np.inf
    return b, knobs


FINDINGS = [
    "clip_fraction_high",
    "approx_kl_high",
    "log_ratio_extreme",
    "ratio_off_one_first_epoch",
    "fully_masked_rows",
    "zero_std_groups",
    "rollout_mismatch",
    "explained_variance_negative",
    "low_entropy",
    "nonfinite_in_padding",
]


@pytest.mark.parametrize("name", FINDINGS)
def test_each_finding_is_reported_when_planted(client: TestClient, name: str) -> None:
    b, knobs = planted(name)
    if name == "nonfinite_in_padding":  # JSON cannot carry NaN: send .npy files
        files = {k: (f"{k}.npy", npy_bytes(v)) for k, v in b.items()}
        r = client.post(ANALYZE, files=files)
        assert r.status_code == 200, r.text
        got = r.json()
    else:
        got = analyze(client, b, **knobs)
    found = {f["code"]: f for f in got["findings"]}
    assert name in found, got["findings"]
    f = found[name]
    assert f["severity"] in ("info", "warning", "error") and f["message"] and f["panel"]
    assert set(f) == {"code", "severity", "message", "value", "threshold", "panel"}
    # Planting one problem does not raise unrelated warnings about the clean rest.
    others = {c for c, s in codes(got).items() if s != "info"} - {name}
    allowed = {"clip_fraction_high": {"approx_kl_high"}, "approx_kl_high": {"clip_fraction_high"}}
    assert others <= allowed.get(name, set()), others


def test_finding_values_and_thresholds(client: TestClient) -> None:
    b, _ = planted("clip_fraction_high")
    f = {x["code"]: x for x in analyze(client, b)["findings"]}["clip_fraction_high"]
    # r = e^0.5 everywhere: the clipped term is taken where A > 0 (about half the tokens).
    a = clean_batch()["advantages"][clean_batch()["mask"] > 0]
    assert f["value"] == pytest.approx((a > 0).mean()) and f["threshold"] == CLIP_FRACTION_HIGH
    b, _ = planted("approx_kl_high")
    f = {x["code"]: x for x in analyze(client, b)["findings"]}["approx_kl_high"]
    assert f["value"] == pytest.approx(0.5) and f["threshold"] == APPROX_KL_HIGH
    b, _ = planted("low_entropy")
    f = {x["code"]: x for x in analyze(client, b)["findings"]}["low_entropy"]
    assert f["value"] == pytest.approx(0.01) and f["threshold"] == LOW_ENTROPY
    b, _ = planted("rollout_mismatch")
    f = {x["code"]: x for x in analyze(client, b)["findings"]}["rollout_mismatch"]
    assert f["value"] > ROLLOUT_K3_KL
    b, knobs = planted("zero_std_groups")
    f = {x["code"]: x for x in analyze(client, b, **knobs)["findings"]}["zero_std_groups"]
    assert f["value"] == pytest.approx(2 / 3) and f["severity"] == "warning"


# --- formats ---------------------------------------------------------------------------------


def npz_bytes(batch: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **batch)
    return buf.getvalue()


def test_the_same_batch_in_every_format_gives_identical_numbers(client: TestClient) -> None:
    b = clean_batch(seed=3) | {"rollout_logprobs": clean_batch(seed=3)["old_logprobs"] + 0.01}
    knobs = {"convention": "verl-gspo", "rollout_is_level": "token"}
    as_json_body = analyze(client, b, **knobs)
    npy = client.post(
        ANALYZE, files={k: (f"{k}.npy", npy_bytes(v)) for k, v in b.items()}, data=knobs
    ).json()
    npz = client.post(ANALYZE, files={"batch": ("b.npz", npz_bytes(b))}, data=knobs).json()
    st = client.post(
        ANALYZE, files={"batch": ("b.safetensors", save_safetensors(b))}, data=knobs
    ).json()
    for other in (npy, npz, st):
        assert json.dumps(other, sort_keys=True) == json.dumps(as_json_body, sort_keys=True)


def test_unknown_names_and_dtypes_in_batch_files_are_named(client: TestClient) -> None:
    b = clean_batch()
    extra = b | {"old_log_probs": b["old_logprobs"]}
    r = client.post(ANALYZE, files={"batch": ("b.safetensors", save_safetensors(extra))})
    assert_error(r, 422, ["body", "old_log_probs"], "old_log_probs: not a batch field...")
    r = client.post(ANALYZE, files={"batch": ("b.npz", npz_bytes(extra))})
    assert_error(r, 422, ["body", "old_log_probs"], "old_log_probs: not a batch field...")
    raw = bytearray(save_safetensors(b))
    header = raw[8 : 8 + int.from_bytes(raw[:8], "little")].replace(b'"F64"', b'"BF16"', 1)
    raw[8 : 8 + len(header)] = header
    r = client.post(ANALYZE, files={"batch": ("b.safetensors", bytes(raw))})
    first = assert_error(r, 422, ["body", next(iter(sorted(b)))], None)
    assert "unsupported dtype 'BF16'" in first["msg"]


def test_npz_member_over_the_element_limit_is_refused(client: TestClient) -> None:
    from api_support import make_client

    with make_client(max_tensor_elements=16) as small:
        b = clean_batch(rows=4, width=8)
        r = small.post(ANALYZE, files={"batch": ("b.npz", npz_bytes(b))})
        assert r.status_code == 422, r.text
        assert "over the limit of 16" in r.json()["detail"][0]["msg"]


def test_npz_is_never_unpickled(client: TestClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("logprobs.npy", npy_bytes(np.array([object()], dtype=object), allow_pickle=True))
    r = client.post(ANALYZE, files={"batch": ("b.npz", buf.getvalue())})
    assert_error(
        r, 422, ["body", "logprobs"], "logprobs: object-dtype (pickled) arrays are refused"
    )


# --- non-finite values -----------------------------------------------------------------------


def test_nonfinite_at_a_valid_position_is_refused_with_its_index(client: TestClient) -> None:
    b = clean_batch()
    b["advantages"][1, 0] = np.inf
    r = client.post(ANALYZE, files={k: (f"{k}.npy", npy_bytes(v)) for k, v in b.items()})
    assert_error(
        r, 422, ["body", "advantages"], "advantages: non-finite value inf at index [1, 0]..."
    )


def test_nonfinite_in_padding_changes_no_number(client: TestClient) -> None:
    b, _ = planted("nonfinite_in_padding")
    clean = clean_batch()
    files = {k: (f"{k}.npy", npy_bytes(v)) for k, v in b.items()}
    got = client.post(ANALYZE, files=files).json()
    want = analyze(client, clean)
    assert got["breakdown"] == pytest.approx(want["breakdown"])
    f = {x["code"]: x for x in got["findings"]}["nonfinite_in_padding"]
    assert f["value"] == 2.0 and f["severity"] == "info"


# --- token view ------------------------------------------------------------------------------


def test_token_view_states_and_bounds(client: TestClient) -> None:
    # Row 0: r = e^0.5 (A > 0) -> clipped high; row 1: r = e^-0.5, A > 0 -> inside (gradient
    # flows); row 2: r = e^-0.5 with A < 0 -> clipped low; row 3: r = 5, A < 0, dual clip 3.
    lp = np.array([[0.5, 0.5], [-0.5, -0.5], [-0.5, -0.5], [math.log(5), 0.0]])
    adv = np.array([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]])
    body = {
        "logprobs": lp.tolist(),
        "old_logprobs": np.zeros_like(lp).tolist(),
        "advantages": adv.tolist(),
        "mask": [[1, 1], [1, 1], [1, 1], [1, 0]],
        "convention": "verl",
    }
    v = client.post(ANALYZE, json=body).json()["token_view"]
    rows = zip(v["rows"], v["state"], strict=True)
    state = {row: [v["states"][s] for s in states] for row, states in rows}
    assert state[0] == ["clipped_high", "clipped_high"]
    assert state[1] == ["trust_region", "trust_region"]
    assert state[2] == ["clipped_low", "clipped_low"]
    assert state[3] == ["dual_clip", "padding"]
    assert v["rows"][0] == 1  # the only row whose tokens get a gradient: shown first
    assert v["states"] == list(TOKEN_STATES)


def test_token_view_rollout_states(client: TestClient) -> None:
    lp = np.zeros((2, 3))
    rollout = np.array([[0.0, -2.0, 0.0], [0.0, 0.0, -0.1]])  # rho = e^2 at [0, 1]
    body = {
        "logprobs": lp.tolist(),
        "old_logprobs": lp.tolist(),
        "advantages": [[1.0] * 3, [1.0] * 3],
        "rollout_logprobs": rollout.tolist(),
        "rollout_is_level": "token",
    }
    tis = client.post(ANALYZE, json=body).json()["token_view"]
    named = [[tis["states"][s] for s in row] for row in tis["state"]]
    assert ["trust_region", "rollout_truncated", "trust_region"] in named
    mis = client.post(ANALYZE, json=body | {"rollout_is_mode": "mask"}).json()["token_view"]
    named = [[mis["states"][s] for s in row] for row in mis["state"]]
    assert ["trust_region", "rollout_masked", "trust_region"] in named
    assert mis["rollout_weight"] is not None


def test_token_view_is_bounded_and_the_response_small(client: TestClient) -> None:
    rng = np.random.default_rng(5)
    rows, width = 64, 2048
    old = -np.abs(rng.normal(1, 0.5, (rows, width)))
    b = {
        "logprobs": old + rng.normal(0, 0.1, (rows, width)),
        "old_logprobs": old,
        "advantages": rng.normal(0, 1, (rows, width)),
    }
    b["logprobs"][40, 1500] += 30  # an extreme token: its row comes first, its window holds it
    files = {k: (f"{k}.npy", npy_bytes(v.astype(np.float32))) for k, v in b.items()}
    r = client.post(ANALYZE, files=files)
    assert r.status_code == 200, r.text
    assert len(r.content) < 2_000_000
    v = r.json()["token_view"]
    assert len(v["rows"]) == MAX_VIEW_ROWS and v["rows"][0] == 40
    assert all(len(row) == MAX_VIEW_TOKENS for row in v["ratio"])
    assert v["starts"][0] <= 1500 < v["starts"][0] + MAX_VIEW_TOKENS
    assert r.json()["logprob_gradient"] is None  # above the per-token limit
    assert len(r.json()["aggregation"]["rows"]) == rows


# --- aggregation, micro-batches, conventions -------------------------------------------------


def test_aggregation_weights_long_and_short_answers(client: TestClient) -> None:
    body = {
        "logprobs": [[0.0] * 4, [0.0] * 4],
        "old_logprobs": [[0.0] * 4, [0.0] * 4],
        "advantages": [[1.0] * 4, [1.0] * 4],
        "mask": [[1, 0, 0, 0], [1, 1, 1, 1]],
    }
    agg = client.post(ANALYZE, json=body).json()["aggregation"]
    assert agg["lengths"] == [1, 4] and agg["rows"] == [0, 1]
    modes = agg["modes"]
    assert modes["token-mean"]["sequence_weight"] == pytest.approx([0.2, 0.8])
    assert modes["seq-mean-token-mean"]["sequence_weight"] == pytest.approx([0.5, 0.5])
    assert modes["seq-mean-token-sum-norm"]["loss"] == pytest.approx(-5 / 2 / 4)
    assert modes["token-sum"]["loss"] == pytest.approx(-5.0)


def test_microbatch_shows_where_normalisation_breaks(client: TestClient) -> None:
    # Two micro-batches of one row each, lengths 1 and 4: token-mean averaged over
    # micro-batches weighs the short row's token 1/2 instead of 1/5; seq-mean-token-mean and
    # seq-mean-token-sum(-norm) have one row per micro-batch and stay exact.
    body = {
        "logprobs": [[0.1, 0.0, 0.0, 0.0], [0.2, -0.1, 0.1, 0.0]],
        "old_logprobs": [[0.0] * 4, [0.0] * 4],
        "advantages": [[1.0, 1.0, 1.0, 1.0], [-1.0, 0.5, 1.0, 1.0]],
        "mask": [[1, 0, 0, 0], [1, 1, 1, 1]],
        "micro_batches": 2,
    }
    mb = client.post(ANALYZE, json=body).json()["microbatch"]
    assert mb["micro_batches"] == 2
    assert mb["modes"]["token-mean"]["gradient_relative_error"] > 0.1
    for mode in ("seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        row = mb["modes"][mode]
        assert row["gradient_relative_error"] == pytest.approx(0.0, abs=1e-12), mode
        assert row["loss_accumulated"] == pytest.approx(row["loss_full"]), mode
    # token-sum: each micro-batch's sum is scaled by 1/k: half the full loss.
    ts = mb["modes"]["token-sum"]
    assert ts["loss_accumulated"] == pytest.approx(ts["loss_full"] / 2)
    too_many = client.post(ANALYZE, json=body | {"micro_batches": 3})
    assert_error(too_many, 422, ["body", "micro_batches"], "micro_batches: must be <= ...")


def test_conventions_cover_every_preset(client: TestClient) -> None:
    got = analyze(client, clean_batch())["conventions"]
    assert [p["name"] for p in got["presets"]] == list(CONVENTIONS)
    assert got["rows_used"] == got["rows_total"] == 6
    by = {p["name"]: p for p in got["presets"]}
    assert by["cleanrl"]["clip_fraction_metric"] == "ratio_outside_fraction"
    assert by["trl"]["approx_kl_metric"] == "approx_kl_k2"
    # verl and verl-grpo share the policy knobs here (no rollout, no KL in the policy loss).
    assert by["verl"]["loss"] == by["verl-grpo"]["loss"]


# --- advantages from scores ------------------------------------------------------------------


def test_scores_with_groups_give_the_estimators_advantages(client: TestClient) -> None:
    b = {k: v for k, v in clean_batch().items() if k != "advantages"}
    scores = [1.0, 0.0, 0.3, 0.9, 0.5, 0.5]
    ids = [0, 0, 1, 1, 2, 2]
    for name, estimator in (("verl-grpo", "grpo"), ("verl-rloo", "rloo")):
        got = analyze(client, b | {"scores": np.array(scores)}, group_ids=ids, convention=name)
        want = group_advantages(
            torch.tensor(scores, dtype=torch.float64), torch.tensor(ids), estimator=estimator
        )
        assert got["token_view"]["advantage"][0][0] == pytest.approx(
            float(want[got["token_view"]["rows"][0]])
        )
        assert any(estimator in n for n in got["notes"])
    missing = client.post(ANALYZE, json=as_json(b) | {"scores": scores, "convention": "verl-grpo"})
    assert_error(missing, 422, ["body", "group_ids"], "group_ids: field required with scores...")
    wrong = client.post(ANALYZE, json=as_json(b) | {"scores": scores[:3], "group_ids": ids[:3]})
    assert_error(wrong, 422, ["body", "group_ids"], "group_ids: expected one per sequence (6)...")
    both = client.post(ANALYZE, json=as_json(clean_batch()) | {"scores": scores, "group_ids": ids})
    assert_error(both, 422, ["body", "scores"], "scores: give one of advantages, rewards...")
    rpp = analyze(
        client, b | {"scores": np.array(scores)}, advantage_estimator="reinforce_plus_plus"
    )
    assert any("REINFORCE++" in n for n in rpp["notes"])


@pytest.mark.parametrize("chunk", [7, 64, 1 << 16])
def test_json_field_counter_refuses_an_oversized_tensor_while_streaming(chunk: int) -> None:
    # The body is fed in chunks (keys split across them too); the counter raises at the first
    # chunk where old_logprobs passes 1,000 numbers, long before the body's end.
    from app.tensors import JsonFieldCounter

    body = json.dumps(
        {"logprobs": [0.1] * 10, "old_logprobs": [0.1] * 5000, "advantages": [1.0] * 10}
    ).encode()
    fields = frozenset({"logprobs", "old_logprobs", "advantages"})
    counter = JsonFieldCounter(fields, 1000)
    fed = 0
    with pytest.raises(PPOInputError) as err:
        for start in range(0, len(body), chunk):
            counter.feed(body[start : start + chunk])
            fed = start + chunk
    assert err.value.field == "old_logprobs"
    assert fed < 0.5 * len(body)  # refused before the rest arrived
    # Nested lists count every number: 10 x 100 = 1,000 numbers pass a 1,000 limit, not 999.
    rows = json.dumps({"old_logprobs": [[0.1] * 100] * 10, "x": 1}).encode()
    for limit, refused in ((1000, False), (999, True)):
        counter = JsonFieldCounter(fields, limit)
        try:
            for start in range(0, len(rows), chunk):
                counter.feed(rows[start : start + chunk])
            assert not refused
        except PPOInputError:
            assert refused


def test_an_oversized_json_tensor_is_a_422_over_http() -> None:
    from api_support import make_client

    with make_client(max_tensor_elements=1000) as small:
        body = {"logprobs": [0.0] * 10, "old_logprobs": [0.0] * 10, "advantages": [0.0] * 2000}
        r = small.post(ANALYZE, json=body)
        assert_error(r, 422, ["body", "advantages"], "advantages: has over 1000 elements...")


def test_rollout_level_without_rollout_logprobs_is_noted_and_mask_bounds_reported(
    client: TestClient,
) -> None:
    got = analyze(client, clean_batch(), rollout_is_level="token")
    assert got["rollout_correction"] is None
    assert any("no rollout_logprobs" in note for note in got["notes"])
    b = clean_batch() | {"rollout_logprobs": clean_batch()["old_logprobs"]}
    masked = analyze(client, b, rollout_is_level="token", rollout_is_mode="mask")
    corr = masked["rollout_correction"]
    assert corr["threshold_low"] == pytest.approx(1 / corr["threshold"])  # the default applied
    assert masked["inputs"] == sorted(b)
    assert "log_ratio" in masked["histograms"]
