"""examples/dump_batch.py: a training loop's batch dumped to .safetensors is accepted as is."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi.testclient import TestClient

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dump_batch.py"


def load_example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("dump_batch", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dumped_batch_is_analyzed(client: TestClient, tmp_path: Path) -> None:
    example = load_example()
    path = example.dump_batch(tmp_path / "batch.safetensors", **example.toy_training_step())
    with path.open("rb") as f:
        r = client.post(
            "/api/v1/analyze",
            files={"batch": (path.name, f)},
            data={"convention": "verl-grpo", "rollout_is_level": "token", "micro_batches": "4"},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["shape"] == [32, 48]
    assert body["rollout_correction"]["applied"] is True
    assert body["microbatch"]["micro_batches"] == 4
    assert any("grpo" in note for note in body["notes"])  # advantages from scores + group_ids
