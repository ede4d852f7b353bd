"""The lab endpoints: JSON run, server-sent event stream, limits and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from api_support import make_client
from fastapi.testclient import TestClient

from ppo_core.lab import LabConfig, run_lab


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with make_client(heavy_concurrency=1, heavy_queue=0, lab_max_work=200_000) as c:
        yield c


def events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_run_matches_ppo_core_and_names_the_series(client: TestClient) -> None:
    body = {"algorithms": ["pg", "ppo"], "iterations": 4, "seed": 3, "batch_size": 16}
    r = client.post("/api/v1/lab/run", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    expected = run_lab(LabConfig(iterations=4, seed=3, batch_size=16), ["pg", "ppo"])
    assert data["algorithms"] == ["pg", "ppo"]
    for name in ("pg", "ppo"):
        run = data["runs"][name]
        assert run["reward"] == pytest.approx(expected[name].mean_reward)
        assert run["kl_old"] == pytest.approx(expected[name].update_kl)
        assert run["kl_ref"] == pytest.approx(expected[name].ref_kl)
        assert run["entropy"] == pytest.approx(expected[name].entropy)
        assert len(run["clip_fraction"]) == 4
        assert run["samples"] and all(isinstance(s, str) for s in run["samples"][0]["sentences"])


def test_same_seed_same_result(client: TestClient) -> None:
    body = {"algorithms": ["ppo-kl"], "iterations": 3, "seed": 7, "batch_size": 8}
    first = client.post("/api/v1/lab/run", json=body).json()
    second = client.post("/api/v1/lab/run", json=body).json()
    assert first == second


def test_preset_sets_knobs_and_a_knob_overrides_it(client: TestClient) -> None:
    r = client.post(
        "/api/v1/lab/run",
        json={"preset": "with KL penalty", "iterations": 2, "batch_size": 8, "kl_coef": 0.3},
    )
    config = r.json()["config"]
    assert config["target_kl"] == 0.1  # from the preset
    assert config["kl_coef"] == 0.3  # overridden


def test_stream_sends_start_steps_done(client: TestClient) -> None:
    r = client.get(
        "/api/v1/lab/stream",
        params={"algorithms": ["pg", "ppo"], "iterations": 3, "batch_size": 8, "seed": 1},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    got = events(r.text)
    assert [kind for kind, _ in got] == ["start", "step", "step", "step", "done"]
    assert got[0][1]["algorithms"] == ["pg", "ppo"]
    steps = [data for kind, data in got if kind == "step"]
    assert [s["iteration"] for s in steps] == [0, 1, 2]
    expected = run_lab(LabConfig(iterations=3, batch_size=8, seed=1), ["pg", "ppo"])
    assert [s["metrics"]["ppo"]["kl_old"] for s in steps] == pytest.approx(
        expected["ppo"].update_kl
    )


@pytest.mark.parametrize(
    ("params", "field", "phrase"),
    [
        ({"algorithms": ["sarsa"]}, "algorithms", "'pg', 'ppo' or 'ppo-kl'"),
        ({"iterations": 0}, "iterations", "greater than or equal to 1"),
        ({"iterations": 501}, "iterations", "less than or equal to 500"),
        ({"batch_size": 100_000}, "batch_size", "less than or equal to"),
        ({"clip_ratio": 1.5}, "clip_ratio", "less than 1"),
        ({"preset": "yolo"}, "preset", "default"),
        ({"iterations": 500, "batch_size": 512}, "iterations", "exceeds the limit of 200000"),
    ],
)
def test_stream_and_run_refuse_bad_knobs(
    client: TestClient, params: dict, field: str, phrase: str
) -> None:
    r = client.get("/api/v1/lab/stream", params=params)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert field in detail["loc"]
    assert phrase in detail["msg"]
    r = client.post("/api/v1/lab/run", json=params)
    assert r.status_code == 422
    assert field in r.json()["detail"][0]["loc"]


def test_stream_answers_503_when_heavy_slots_are_taken(client: TestClient) -> None:
    heavy = client.app.state.heavy  # type: ignore[attr-defined]
    heavy._admitted = heavy.capacity  # every slot taken by other requests
    try:
        r = client.get("/api/v1/lab/stream", params={"iterations": 2})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        r = client.post("/api/v1/lab/run", json={"iterations": 2})
        assert r.status_code == 503
    finally:
        heavy._admitted = 0


def test_concurrent_lab_streams_leave_the_thread_count_alone() -> None:
    # Two streams at once, in two client threads: each used to set torch's process-wide thread
    # count to 1 around every step and restore "the previous" value, so interleaved runs could
    # leave the process on one thread for good. The count is now set once at start-up.
    import threading

    import torch

    with make_client(heavy_concurrency=2, heavy_queue=2, torch_threads=2) as c:
        heavy = c.app.state.heavy  # type: ignore[attr-defined]

        def counts() -> tuple[int, int]:  # (event loop's thread, a heavy thread)
            async def ask() -> tuple[int, int]:
                return torch.get_num_threads(), await heavy.in_thread(torch.get_num_threads)

            return c.portal.call(ask)  # type: ignore[union-attr]

        assert counts() == (2, 2)
        done: list[int] = []

        def stream(seed: int) -> None:
            params = {"algorithms": ["pg", "ppo", "ppo-kl"], "iterations": 30, "seed": seed}
            r = c.get("/api/v1/lab/stream", params=params)
            done.append(r.status_code)
            assert events(r.text)[-1][0] == "done"

        threads = [threading.Thread(target=stream, args=(seed,)) for seed in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert done == [200, 200]
        assert counts() == (2, 2)


def test_the_documented_default_lab_work_is_the_default_runs_work() -> None:
    # app/settings.py quotes the default run's cost: keep the figure true.
    from app.settings import Settings
    from ppo_core.lab import LabConfig

    c = LabConfig()
    work = c.iterations * c.epochs * c.batch_size * c.seq_len * 3
    assert f"{work / 1e6:.2f} M" in (Settings.model_fields["lab_max_work"].description or "")


def test_presets_are_listed_from_the_one_source_with_limits_and_budget(
    client: TestClient,
) -> None:
    from dataclasses import asdict, replace

    from app.routes.lab import PresetName
    from ppo_core import PPOInputError
    from ppo_core.lab import PRESETS

    body = client.get("/api/v1/lab/presets").json()
    assert body["presets"] == {name: asdict(c) for name, c in PRESETS.items()}
    assert list(PresetName.__args__) == list(PRESETS)  # the request's choices are the same
    assert body["max_work"] == 200_000  # this server's setting
    assert body["work"] == "iterations x epochs x batch_size x seq_len x algorithms"
    assert body["algorithms"] == ["pg", "ppo", "ppo-kl"]
    # Every listed range is the one the core enforces: its ends accepted or refused as said.
    default = PRESETS["default"]
    for name, lim in body["limits"].items():
        if name == "target_kl":
            continue  # checked with kl_coef > 0 below
        cast = int if lim["integer"] else float
        step = 1 if lim["integer"] else 1e-9 * max(1.0, lim["max"])
        for end, exclusive, beyond in (
            (lim["min"], lim["min_exclusive"], lim["min"] - step),
            (lim["max"], lim["max_exclusive"], lim["max"] + step),
        ):
            if exclusive:
                with pytest.raises(PPOInputError):
                    replace(default, **{name: cast(end)})
            else:
                replace(default, **{name: cast(end)})
            with pytest.raises(PPOInputError):
                replace(default, **{name: cast(beyond)})
    assert set(body["limits"]) >= {"iterations", "lr", "epochs", "batch_size", "seq_len", "seed"}


def test_the_page_lab_sliders_start_at_the_default_preset_within_the_core_limits(
    client: TestClient,
) -> None:
    import re

    from ppo_core import lab

    html = client.get("/").text

    def slider(key: str) -> dict[str, float]:
        tag = re.search(rf'<input type="range"[^>]*data-key="{key}"[^>]*>', html, re.S)
        assert tag, key
        return {a: float(v) for a, v in re.findall(r'\b(min|max|value)="([^"]+)"', tag.group(0))}

    default = lab.PRESETS["default"]
    expected = {
        "lLr": (default.lr, lab.MAX_LR),
        "lEp": (default.epochs, lab.MAX_EPOCHS),
        "lBs": (default.batch_size, lab.MAX_BATCH_SIZE),
        "lIt": (default.iterations, lab.MAX_ITERATIONS),
        "lKl": (default.kl_coef, lab.MAX_KL_COEF),
    }
    for key, (value, high) in expected.items():
        got = slider(key)
        assert (got["value"], got["max"]) == (value, high), key
    assert slider("lBs")["min"] == lab.MIN_BATCH_SIZE
    assert slider("lSeed")["value"] == default.seed
    # The shared knobs start where the lab's default preset does.
    assert slider("eps")["value"] == default.clip_ratio
    assert slider("ent")["value"] == default.entropy_coef
