"""The lab's toy language model and its scripted reward.

The policy writes ``seq_len``-word sentences over :data:`VOCAB`; its next-word logits are a
bigram table plus a per-position bias (``z_t(w) = B[w_{t-1}, w] + P[t, w]``), starting from the
smoothed bigram model of :data:`CORPUS` (:func:`initial_logits`). The reward is
``fluency + MAT_BONUS * count("mat")`` (:func:`reward`; the package docstring tells its trap).
"""

from __future__ import annotations

import torch
from torch import Tensor

VOCAB: tuple[str, ...] = (
    "the", "a", "big", "red", "cat", "dog", "sat", "ran",
    "slept", "on", "in", "mat", "rug", "park", "and", "sun",
)  # fmt: skip
"""The 16 words the policy can write."""

GRAMMAR: dict[str, tuple[str, ...]] = {
    "<s>": ("the", "a"),
    "the": ("big", "red", "cat", "dog", "mat", "rug", "park", "sun"),
    "a": ("big", "red", "cat", "dog", "mat", "rug", "park"),
    "big": ("red", "cat", "dog", "mat", "rug", "park", "sun"),
    "red": ("cat", "dog", "mat", "rug", "sun"),
    "cat": ("sat", "ran", "slept", "and"),
    "dog": ("sat", "ran", "slept", "and"),
    "sat": ("on", "in", "and"),
    "ran": ("on", "in", "and"),
    "slept": ("on", "in", "and"),
    "on": ("the", "a"),
    "in": ("the", "a"),
    "mat": ("and",),
    "rug": ("and",),
    "park": ("and",),
    "and": ("the", "a", "sat", "ran", "slept"),
    "sun": ("sat", "and"),
}
"""Allowed next words after each word (``"<s>"``: the first word). Anything else is not fluent."""

CORPUS: tuple[str, ...] = (
    "the cat sat on the mat",
    "the dog sat on the rug",
    "a cat ran in the park",
    "the big dog ran in the park and sat",
    "a red cat slept on a mat",
    "the sun sat on the park",
    "a dog slept in the sun",
    "the red dog sat on a rug and slept",
    "a big cat ran on the mat",
    "the cat and the dog ran in the park",
    "a big red sun",
    "the dog slept on the mat and the cat sat",
)
"""The "pretraining" corpus: the initial (reference) policy is its smoothed bigram model."""

MAT_BONUS = 0.15
"""Reward per occurrence of "mat" — the trap that makes repeating one word attractive."""

CORPUS_SMOOTHING = 0.3
"""Add-alpha smoothing of the corpus bigram counts (keeps every word possible)."""

INIT_NOISE = 0.1
"""Std of the seeded Gaussian noise added to the initial logits (seeds differ a little)."""

BOS = len(VOCAB)
"""State index of the begin-of-sentence ``<s>`` (one past the last word)."""
WORD_ID = {w: i for i, w in enumerate(VOCAB)}
MAT = WORD_ID["mat"]


def grammar_matrix() -> Tensor:
    """Bool ``[V+1, V]``: ``allowed[prev, word]`` per :data:`GRAMMAR` (row ``BOS``: first words)."""
    allowed = torch.zeros(len(VOCAB) + 1, len(VOCAB), dtype=torch.bool)
    for prev, nexts in GRAMMAR.items():
        row = BOS if prev == "<s>" else WORD_ID[prev]
        for word in nexts:
            allowed[row, WORD_ID[word]] = True
    return allowed


ALLOWED = grammar_matrix()


def reward(tokens: Tensor) -> Tensor:
    """The scripted reward model: ``fluency + MAT_BONUS * count("mat")`` per sentence.

    Args:
        tokens: Word ids ``[..., T]`` (indices into :data:`VOCAB`).

    Returns:
        Rewards ``[...]``: fluency (share of :data:`GRAMMAR`-allowed transitions, the first word
        included) plus the "mat" bonus.

    Examples:
        >>> ids = lambda s: [VOCAB.index(w) for w in s.split()]
        >>> reward(torch.tensor([ids("the cat sat on the mat"), ids("mat mat mat mat mat mat")]))
        tensor([1.1500, 0.9000])
    """
    prev = torch.cat([torch.full_like(tokens[..., :1], BOS), tokens[..., :-1]], dim=-1)
    fluency = ALLOWED[prev, tokens].to(torch.float32).mean(dim=-1)
    return fluency + MAT_BONUS * (tokens == MAT).sum(dim=-1).to(torch.float32)


def decode(tokens: Tensor) -> list[str]:
    """Word ids ``[B, T]`` -> one sentence per row.

    Examples:
        >>> decode(torch.tensor([[0, 4, 6]]))
        ['the cat sat']
    """
    return [" ".join(VOCAB[i] for i in row) for row in tokens.tolist()]


def initial_logits(seed: int, seq_len: int) -> tuple[Tensor, Tensor]:
    """The "pretrained" policy: ``(bigram [V+1, V], position [seq_len, V])`` logits.

    ``bigram`` is the log of the add-:data:`CORPUS_SMOOTHING` bigram frequencies of
    :data:`CORPUS` plus ``N(0, INIT_NOISE^2)`` noise from ``seed``; ``position`` starts at 0.
    """
    counts = torch.full((len(VOCAB) + 1, len(VOCAB)), CORPUS_SMOOTHING)
    for sentence in CORPUS:
        prev = BOS
        for word in sentence.split():
            counts[prev, WORD_ID[word]] += 1.0
            prev = WORD_ID[word]
    gen = torch.Generator().manual_seed(seed)
    bigram = torch.log(counts / counts.sum(dim=1, keepdim=True))
    bigram = bigram + INIT_NOISE * torch.randn(bigram.shape, generator=gen)
    return bigram, torch.zeros(seq_len, len(VOCAB))
