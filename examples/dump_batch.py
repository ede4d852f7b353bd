"""Dump a batch from a training loop to one ``.safetensors`` file and have PPO Explorer
inspect it: findings, the token view, what every library would log.

In your own loop, call :func:`dump_batch` right where the policy loss is computed, with the
tensors the loss sees (any device, any float dtype; bfloat16 is cast to float32: NumPy and
safetensors' NumPy reader have no bfloat16):

    dump_batch("batch.safetensors", logprobs=log_prob, old_logprobs=old_log_prob,
               rollout_logprobs=rollout_log_probs, advantages=advantages,
               mask=response_mask, group_ids=uid_as_ints)

then post the file (``post_batch`` below, or curl):

    curl -X POST http://127.0.0.1:8000/api/v1/analyze -F batch=@batch.safetensors \\
         -F convention=verl -F rollout_is_level=token -F first_epoch=true

This script runs a tiny self-contained "training loop" (a random softmax policy over a
vocabulary, one PPO step) to show the whole path:

    .venv/bin/python examples/dump_batch.py --url http://127.0.0.1:8000
    .venv/bin/python examples/dump_batch.py --out /tmp/batch.safetensors --no-post

For verl users: verl's own ``DataProto`` dump is a pickle; never load one from a source you do
not trust, and PPO Explorer never accepts pickles. Export the tensors instead, inside
``DataParallelPPOActor.update_policy`` (or your ``compute_policy_loss`` wrapper):
``old_log_probs`` -> ``old_logprobs``, the actor's fresh ``log_prob`` -> ``logprobs``,
``rollout_log_probs`` -> ``rollout_logprobs``, ``advantages``, ``response_mask`` -> ``mask``,
and ``uid`` (strings) mapped to integers -> ``group_ids`` (one per row).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx
import numpy as np
import torch
from safetensors.numpy import save_file


def dump_batch(path: str | Path, **tensors: torch.Tensor | np.ndarray | list[int]) -> Path:
    """Write the named tensors to one ``.safetensors`` file (CPU, float32 / int64)."""
    arrays = {}
    for name, value in tensors.items():
        if value is None:
            continue
        t = torch.as_tensor(value).detach().cpu()
        t = t.long() if not t.is_floating_point() else t.float()  # bf16 -> f32, ids -> i64
        arrays[name] = t.numpy()
    save_file(arrays, str(path))
    return Path(path)


def post_batch(url: str, path: Path, **knobs: str) -> dict:
    """POST the file to ``/api/v1/analyze`` with form knobs; return the JSON answer."""
    with httpx.Client(base_url=url, timeout=120) as client, path.open("rb") as f:
        r = client.post("/api/v1/analyze", files={"batch": (path.name, f)}, data=knobs)
    if r.status_code != 200:
        raise SystemExit(f"error {r.status_code}: {r.json().get('detail')}")
    return r.json()


def toy_training_step(seed: int = 0) -> dict[str, torch.Tensor]:
    """One GRPO-style step of a random softmax policy: 8 prompts x 4 answers of unequal length,
    sampled by an 'inference engine' whose log-probs differ slightly from the trainer's."""
    gen = torch.Generator().manual_seed(seed)
    rows, width, vocab = 32, 48, 50
    logits = torch.randn(rows, width, vocab, generator=gen)
    tokens = torch.distributions.Categorical(logits=logits).sample()
    old = torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)
    rollout = old + 0.02 * torch.randn(rows, width, generator=gen)  # kernel mismatch
    new_logits = logits + 0.05 * torch.randn(rows, width, vocab, generator=gen)
    logprobs = torch.log_softmax(new_logits, -1).gather(-1, tokens[..., None]).squeeze(-1)
    lengths = torch.randint(width // 4, width + 1, (rows,), generator=gen)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).float()
    group_ids = torch.arange(rows) // 4
    scores = (torch.rand(rows, generator=gen) > 0.5).float()
    return {
        "logprobs": logprobs,
        "old_logprobs": old,
        "rollout_logprobs": rollout,
        "mask": mask,
        "scores": scores,
        "group_ids": group_ids,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", default="batch.safetensors")
    parser.add_argument("--convention", default="verl-grpo")
    parser.add_argument("--no-post", action="store_true", help="only write the file")
    args = parser.parse_args()
    path = dump_batch(args.out, **toy_training_step())
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    if args.no_post:
        return 0
    result = post_batch(
        args.url, path, convention=args.convention, rollout_is_level="token", micro_batches="4"
    )
    print(f"convention {result['convention']['name']}: policy loss "
          f"{result['breakdown']['policy_loss']:.6f}")  # fmt: skip
    for f in result["findings"] or [{"severity": "ok", "code": "no findings", "message": ""}]:
        print(f"[{f['severity']}] {f['code']}: {f['message']}")
    print("what each library would log (policy loss, clip fraction, approx KL):")
    for p in result["conventions"]["presets"]:
        print(
            f"  {p['name']:<36}{p['loss']: .5f}  {p['clip_fraction_as_logged']:.4f}"
            f"  {p['approx_kl_as_logged']:.5f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
