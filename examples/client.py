"""Post a rollout batch to PPO Explorer and print the loss breakdown and diagnostics.

Usage (with the server running, e.g. `make run`):

    .venv/bin/python examples/client.py                       # JSON, CleanRL's convention
    .venv/bin/python examples/client.py --npy --convention verl
    .venv/bin/python examples/client.py --url http://127.0.0.1:8000 --batch 64 --tokens 128
"""

from __future__ import annotations

import argparse
import io
import sys

import httpx
import numpy as np

Batch = dict[str, np.ndarray]


def make_batch(batch: int, tokens: int, seed: int) -> Batch:
    """A synthetic batch shaped like an RLHF rollout: responses of unequal lengths."""
    rng = np.random.default_rng(seed)
    old = -np.abs(rng.normal(1.5, 0.8, (batch, tokens)))
    new = old + rng.normal(0.0, 0.1, (batch, tokens))
    lengths = rng.integers(tokens // 4, tokens + 1, batch)
    mask = (np.arange(tokens)[None, :] < lengths[:, None]).astype(np.float32)
    values = rng.normal(0.0, 1.0, (batch, tokens))
    return {
        "logprobs": new,
        "old_logprobs": old,
        "advantages": rng.normal(0.0, 1.0, (batch, tokens)),
        "values": values,
        "returns": values + rng.normal(0.0, 0.5, (batch, tokens)),
        "old_values": values + rng.normal(0.0, 0.05, (batch, tokens)),
        "mask": mask,
    }


def post_json(client: httpx.Client, batch: Batch, convention: str) -> httpx.Response:
    body = {name: array.tolist() for name, array in batch.items()}
    body["convention"] = convention
    return client.post("/api/v1/analyze", json=body)


def post_npy(client: httpx.Client, batch: Batch, convention: str) -> httpx.Response:
    files = {}
    for name, array in batch.items():
        buffer = io.BytesIO()
        np.save(buffer, array.astype(np.float32), allow_pickle=False)
        files[name] = (f"{name}.npy", buffer.getvalue(), "application/octet-stream")
    return client.post("/api/v1/analyze", files=files, data={"convention": convention})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--convention",
        default="cleanrl",
        choices=["seed", "cleanrl", "sb3", "verl", "openrlhf", "trl"],
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--npy", action="store_true", help="upload .npy files instead of JSON")
    args = parser.parse_args()

    batch = make_batch(args.batch, args.tokens, args.seed)
    with httpx.Client(base_url=args.url, timeout=60) as client:
        post = post_npy if args.npy else post_json
        response = post(client, batch, args.convention)
    if response.status_code != 200:
        for item in response.json().get("detail", []):
            print(f"error {response.status_code}: {item['msg']}", file=sys.stderr)
        return 1
    result = response.json()
    print(f"convention: {result['convention']['name']}  {result['convention']['formula']}")
    print(f"tokens: {result['tokens']} of shape {result['shape']}")
    print("breakdown:")
    for key, value in result["breakdown"].items():
        print(f"  {key:<24}{'-' if value is None else f'{value: .6f}'}")
    print("diagnostics:")
    for key, value in result["diagnostics"].items():
        shown = value if isinstance(value, bool) or value is None else f"{value: .6f}"
        print(f"  {key:<24}{shown}")
    for note in result["notes"]:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
