"""The run report: every format read, every library's name mapped, every finding planted and
absent, and the errors (broken line, unknown format, size)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from api_support import assert_error, make_client
from fastapi.testclient import TestClient

from app.runs import formats
from app.runs.metric_map import ALIASES, CANONICAL
from app.runs.report import build_report, decimate

REPORT = "/api/v1/runs/report"
FORMAT_LIST = "['verl_jsonl', 'verl_console', 'trl_state', 'tensorboard', 'csv']"


def clean_run(n: int = 60) -> dict[str, list[float]]:
    """A healthy run: entropy decays slowly, KL small and smooth, clip fraction moderate,
    rewards rise while KL to the reference stays bounded, lengths vary."""
    return {
        "actor/entropy": [1.5 - 0.005 * s for s in range(n)],
        "actor/ppo_kl": [0.002 + 0.0001 * (s % 3) for s in range(n)],
        "actor/pg_clipfrac": [0.05 + 0.01 * (s % 4) for s in range(n)],
        "critic/score/mean": [0.1 + 0.01 * s for s in range(n)],
        "actor/kl_loss": [0.01 + 0.0005 * (s % 5) for s in range(n)],
        "response_length/mean": [300 + 40 * math.sin(s) for s in range(n)],
        "critic/vf_explained_var": [0.3 + 0.001 * s for s in range(n)],
        "actor/grad_norm": [1.0 + 0.1 * (s % 2) for s in range(n)],
    }


def verl_jsonl(metrics: dict[str, list[float]]) -> bytes:
    n = len(next(iter(metrics.values())))
    rows = [{"step": s, "data": {k: v[s] for k, v in metrics.items()}} for s in range(n)]
    return "\n".join(json.dumps(r) for r in rows).encode()


def post(client: TestClient, body: bytes, name: str = "log.jsonl", **data: str) -> dict:
    r = client.post(REPORT, files={"file": (name, body)}, data=data)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_clean_run_has_no_finding(client: TestClient) -> None:
    got = post(client, verl_jsonl(clean_run()))
    assert got["format"] == "verl_jsonl" and got["steps"] == 60
    assert got["findings"] == []
    assert got["metrics"]["entropy"]["source"] == "actor/entropy"
    assert got["metrics"]["entropy"]["values"][:2] == [1.5, 1.495]
    assert set(got["metrics"]) == {
        "entropy",
        "approx_kl",
        "clip_fraction",
        "reward_mean",
        "kl_to_reference",
        "response_length_mean",
        "explained_variance",
        "grad_norm",
    }


# --- formats ---------------------------------------------------------------------------------

METRICS = {"actor/pg_clipfrac": [0.1, 0.2, 0.3], "actor/entropy": [1.0, 0.9, 0.8]}


def as_console(metrics: dict[str, list[float]]) -> bytes:
    lines = ["(TaskRunner pid=1) starting training"]
    for s in range(3):
        pairs = " - ".join(f"{k}:{v[s]}" for k, v in metrics.items())
        lines.append(f"(TaskRunner pid=1) step:{s + 1} - {pairs}")
    return "\n".join(lines).encode()


def as_trl(metrics: dict[str, list[float]]) -> bytes:
    names = {"actor/pg_clipfrac": "clip_ratio/region_mean", "actor/entropy": "entropy"}
    history = [
        {"step": (s + 1) * 10, "epoch": 0.1, **{names[k]: v[s] for k, v in metrics.items()}}
        for s in range(3)
    ]
    return json.dumps({"global_step": 30, "log_history": history}).encode()


def as_csv(metrics: dict[str, list[float]]) -> bytes:
    names = {"actor/pg_clipfrac": "train/clip_fraction", "actor/entropy": "losses/entropy"}
    header = "step," + ",".join(names[k] for k in metrics)
    rows = [f"{s + 1}," + ",".join(str(v[s]) for v in metrics.values()) for s in range(3)]
    return "\n".join([header, *rows]).encode()


def as_tensorboard(tmp_path: Path) -> bytes:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path))
    for s in range(3):
        writer.add_scalar("train/ppo_clip_ratio", METRICS["actor/pg_clipfrac"][s], s + 1)
        writer.add_scalar("train/entropy_loss", -METRICS["actor/entropy"][s], s + 1)
    writer.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["verl_jsonl", "verl_console", "trl_state", "csv", "tensorboard"])
def test_every_format_is_read_and_detected(client: TestClient, kind: str, tmp_path: Path) -> None:
    body, name = {
        "verl_jsonl": (verl_jsonl(METRICS), "metrics.jsonl"),
        "verl_console": (as_console(METRICS), "console.log"),
        "trl_state": (as_trl(METRICS), "trainer_state.json"),
        "csv": (as_csv(METRICS), "export.csv"),
        "tensorboard": (
            as_tensorboard(tmp_path) if kind == "tensorboard" else b"",
            "events.out.tfevents.1",
        ),
    }[kind]  # fmt: skip
    got = post(client, body, name)
    assert got["format"] == kind
    assert got["metrics"]["clip_fraction"]["values"] == pytest.approx([0.1, 0.2, 0.3])
    # SB3 logs entropy as a loss (-H): mapped back to +H; the others log H.
    entropy = "entropy" if kind != "tensorboard" else None
    if entropy:
        assert got["metrics"]["entropy"]["values"] == pytest.approx([1.0, 0.9, 0.8])
    assert got["steps"] == 3
    # An explicit format gives the same report.
    assert post(client, body, "renamed.bin", format=kind) == got


def test_sb3_entropy_loss_is_mapped_with_its_sign_flipped(client: TestClient) -> None:
    body = b"step,train/entropy_loss\n1,-1.0\n2,-0.5\n"
    got = post(client, body, "sb3.csv")
    assert got["metrics"]["entropy"] == {
        "source": "train/entropy_loss",
        "points": 2,
        "steps": [1, 2],
        "values": [1.0, 0.5],
    }


@pytest.mark.parametrize("alias", ALIASES, ids=[f"{a.library}:{a.name}" for a in ALIASES])
def test_every_library_name_maps_to_its_canonical_metric(alias) -> None:  # type: ignore[no-untyped-def]
    body = f"step,{alias.name}\n1,2.0\n2,3.0\n".encode()
    got = build_report(body, "x.csv", None)
    assert got["metrics"][alias.canonical]["source"] == alias.name
    assert got["metrics"][alias.canonical]["values"] == [2.0 * alias.scale, 3.0 * alias.scale]
    assert alias.canonical in CANONICAL


def test_every_canonical_name_has_an_alias() -> None:
    assert {a.canonical for a in ALIASES} == set(CANONICAL)


def test_unknown_names_are_listed_and_a_second_source_is_not_merged() -> None:
    body = b"step,critic/score/mean,reward,my/custom\n1,0.5,0.7,1\n"
    got = build_report(body, "x.csv", None)
    assert got["metrics"]["reward_mean"]["source"] == "critic/score/mean"
    assert got["unmapped"] == ["my/custom", "reward"]


def test_the_metric_map_endpoint(client: TestClient) -> None:
    r = client.get("/api/v1/runs/metric-map")
    assert r.status_code == 200
    body = r.json()
    assert set(body["canonical"]) == set(CANONICAL)
    assert len(body["aliases"]) == len(ALIASES)
    clip = next(a for a in body["aliases"] if a["name"] == "losses/clipfrac")
    assert clip == {
        "library": "cleanrl",
        "name": "losses/clipfrac",
        "canonical": "clip_fraction",
        "formula": "mean(|r - 1| > ε)",
        "scale": 1.0,
    }


# --- errors ----------------------------------------------------------------------------------


def test_a_broken_line_is_named(client: TestClient) -> None:
    body = verl_jsonl(METRICS) + b'\n{"step": 4, "data": {"actor/entropy": 0.7}\n'
    r = client.post(REPORT, files={"file": ("log.jsonl", body)})
    assert_error(r, 422, ["body", "file"], "file: line 4: invalid JSON...")
    r = client.post(REPORT, files={"file": ("x.csv", b"step,a\n1,2\n3\n")})
    assert_error(r, 422, ["body", "file"], "file: line 3: 1 columns, the header has 2")


def test_an_unknown_format_lists_the_formats(client: TestClient) -> None:
    r = client.post(REPORT, files={"file": ("notes.txt", b"hello, world")})
    first = assert_error(r, 422, ["body", "file"])
    assert FORMAT_LIST in first["msg"]
    r = client.post(REPORT, files={"file": ("x.csv", b"step,a\n1,2\n")}, data={"format": "wandb"})
    assert_error(
        r, 422, ["body", "format"], f"format: unknown format 'wandb'; expected one of {FORMAT_LIST}"
    )


def test_limits_and_missing_file(client: TestClient) -> None:
    with make_client(runs_max_bytes=1024) as small:
        r = small.post(REPORT, files={"file": ("log.jsonl", verl_jsonl(clean_run()))})
        assert_error(r, 422, ["body", "file"], "file: over the limit of 1024 bytes")
    r = client.post(REPORT, data={"format": "csv"}, files={"other": ("x", b"1")})
    assert r.status_code == 422
    r = client.post(REPORT, files={"file": ("empty.csv", b"  \n")})
    assert_error(r, 422, ["body", "file"], "file: is empty")


def test_tensorboard_without_the_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard.backend.event_processing", None)
    with pytest.raises(formats.PPOInputError) as err:
        formats.parse(b"\x00" * 32, "tensorboard")
    assert "pip install 'ppo-explorer[tensorboard]'" in err.value.problem


# --- findings: each planted, and absent from the clean run ---------------------------------


def planted(code: str) -> dict[str, list[float]]:
    m = clean_run()
    n = len(m["actor/entropy"])
    if code == "entropy_collapse":
        m["actor/entropy"] = [1.5] * 30 + [0.05] * (n - 30)
    elif code == "kl_spike":
        m["actor/ppo_kl"][40] = 0.5
    elif code == "clip_fraction_zero":
        m["actor/pg_clipfrac"] = [0.0] * n
    elif code == "clip_fraction_high":
        m["actor/pg_clipfrac"] = [0.1] * 20 + [0.45] * (n - 20)
    elif code == "nonfinite":
        m["actor/pg_loss"] = [0.1] * 25 + [float("nan")] * (n - 25)
    elif code == "explained_variance_negative":
        m["critic/vf_explained_var"] = [0.2] * 10 + [-0.4] * (n - 10)
    elif code == "reward_up_kl_runaway":
        m["actor/kl_loss"] = [0.01 * 1.1**s for s in range(n)]
    elif code == "length_at_cap":
        m["response_length/mean"] = [300 + 10 * s for s in range(30)] + [1024.0] * (n - 30)
    return m


FINDINGS = {
    "entropy_collapse": ("entropy", 30, "entropy"),
    "kl_spike": ("approx_kl", 40, "kl"),
    "clip_fraction_zero": ("clip_fraction", None, "clip"),
    "clip_fraction_high": ("clip_fraction", 20, "clip"),
    "nonfinite": ("policy_loss", 25, "clip"),
    "explained_variance_negative": ("explained_variance", 10, "value"),
    "reward_up_kl_runaway": ("kl_to_reference", 59, "kl"),
    "length_at_cap": ("response_length_mean", 30, "family"),
}


@pytest.mark.parametrize("code", list(FINDINGS))
def test_each_finding_is_planted_and_found(code: str) -> None:
    metric, step, panel = FINDINGS[code]
    # JSON cannot carry NaN: the planted NaN travels as a CSV cell.
    metrics = planted(code)
    names = list(metrics)
    lines = ["step," + ",".join(names)]
    lines += [f"{s}," + ",".join(str(metrics[k][s]) for k in names) for s in range(60)]
    got = build_report("\n".join(lines).encode(), "run.csv", None)
    found = {f["code"]: f for f in got["findings"]}
    assert set(found) == {code}, got["findings"]
    f = found[code]
    assert (f["metric"], f["step"], f["panel"]) == (metric, step, panel)
    assert f["message"]
    if code == "nonfinite":
        assert f["severity"] == "error"
        assert got["metrics"]["policy_loss"]["values"][25] is None  # NaN is null in JSON


def test_long_series_are_decimated_but_keep_spikes_and_nan() -> None:
    n = 20_000
    values = [0.01] * n
    values[12_345] = 5.0  # a spike
    lines = ["step,actor/ppo_kl,actor/pg_loss"]
    lines += [f"{s},{values[s]},{'nan' if s == 17_000 else 0.1}" for s in range(n)]
    got = build_report("\n".join(lines).encode(), "x.csv", None)
    kl = got["metrics"]["approx_kl"]
    assert kl["points"] == n and len(kl["steps"]) <= 5000
    assert 12_345 in kl["steps"] and max(v for v in kl["values"] if v is not None) == 5.0
    loss = got["metrics"]["policy_loss"]
    assert loss["values"][loss["steps"].index(17_000)] is None
    assert {f["code"] for f in got["findings"]} >= {"kl_spike", "nonfinite"}


def test_verl_jsonl_with_nan_literals_takes_the_line_path() -> None:
    # Python's json writes NaN as a bare literal: the file is still read, and reported.
    body = (
        b'{"step": 1, "data": {"actor/pg_loss": 0.1}}\n{"step": 2, "data": {"actor/pg_loss": NaN}}'
    )
    got = build_report(body, "metrics.jsonl", None)
    assert got["metrics"]["policy_loss"]["values"] == [0.1, None]
    assert got["findings"][0]["code"] == "nonfinite"


# --- the fast paths agree with the plain readings ------------------------------------------


def plain_decimate(values: list[float], limit: int) -> list[int]:
    """The rule of ``decimate`` written as a loop: per bucket, first minimum, first maximum
    (finite points only) and first non-finite point."""
    n = len(values)
    if n <= limit:
        return list(range(n))
    size = math.ceil(n / (limit // 2))
    keep: list[int] = []
    for start in range(0, n, size):
        idx = range(start, min(start + size, n))
        finite = [i for i in idx if math.isfinite(values[i])]
        chosen = set()
        if finite:
            chosen |= {min(finite, key=values.__getitem__), max(finite, key=values.__getitem__)}
        bad = [i for i in idx if not math.isfinite(values[i])]
        chosen |= set(bad[:1])
        keep.extend(sorted(chosen))
    return keep


@pytest.mark.parametrize(("n", "limit", "seed"), [(10, 4, 0), (1001, 40, 1), (5003, 100, 2)])
def test_decimate_keeps_what_the_plain_rule_keeps(n: int, limit: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n).round(1).tolist()  # rounded: ties, where the first must win
    for i in rng.choice(n, size=max(1, n // 50), replace=False).tolist():
        values[i] = [math.nan, math.inf, -math.inf][i % 3]
    assert decimate(list(range(n)), values, limit) == plain_decimate(values, limit)


def test_chunked_json_lines_read_like_the_line_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = []
    for s in range(300):
        data: dict[str, object] = {"actor/pg_loss": 0.5 - s / 1000, "timing/x": 1.0}
        if s >= 250:  # appears only in the last chunks
            data["actor/entropy"] = 1.0 + s / 1000
        data["actor/ppo_kl"] = "n/a" if s % 7 == 0 else s / 1e4  # mixed: the per-value path
        if s >= 120:
            data["late/unmapped"] = s
        rows.append({"step": s, "data": data})
    body = "\n".join(json.dumps(r) for r in rows).encode()
    monkeypatch.setattr(formats, "CHUNK_BYTES", 512)  # about ten chunks
    fast = formats.parse(body, "verl_jsonl")
    plain = formats._verl_jsonl_lines(body)
    assert list(fast.series) == list(plain.series)
    for name, series in plain.series.items():
        assert list(fast.series[name].steps) == series.steps, name
        assert list(fast.series[name].values) == series.values, name
    got = build_report(body, "m.jsonl", None)
    assert got["metrics"]["entropy"]["steps"][0] == 250
    assert got["metrics"]["approx_kl"]["points"] == 300 - len(range(0, 300, 7))
    assert set(got["unmapped"]) == {"timing/x", "late/unmapped"}


def test_an_absurd_step_or_no_metric_is_named(client: TestClient) -> None:
    r = client.post(REPORT, files={"file": ("m.jsonl", b'{"step": 1e300, "data": {"a": 1}}')})
    assert_error(r, 422, ["body", "file"], "file: line 1: the step 1e+300 is over 1e+15")
    r = client.post(REPORT, files={"file": ("m.jsonl", b'{"step": 1, "data": {"a": "x"}}')})
    assert_error(r, 422, ["body", "file"], "file: no numeric metric found in this verl_jsonl log")


def test_a_broken_multipart_body_is_a_422(client: TestClient) -> None:
    boundary = "XyZ"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.jsonl"\r\n\r\n'
    )
    cut = head.encode() + b'{"step": 1, "data": {}}'  # no closing boundary
    r = client.post(
        REPORT, content=cut, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert_error(r, 422, ["body"], "the multipart body ends before its closing boundary")
    nameless = f"--{boundary}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{boundary}--\r\n"
    r = client.post(
        REPORT,
        content=nameless.encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error(r, 422, ["body"], "each part needs 'Content-Disposition: form-data; name=...'")
    r = client.post(REPORT, content=b"x", headers={"content-type": "text/plain"})
    assert_error(r, 422, ["header", "content-type"], "expected multipart/form-data")
    r = client.post(REPORT, content=b"x", headers={"content-type": "multipart/form-data"})
    assert_error(r, 422, ["body"], "the content-type has no multipart boundary")
