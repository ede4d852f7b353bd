"""Exact inference for the lab's Markov policy: KLs and entropies without sampling noise.

The policy is Markov in the state ``(t, w_{t-1})``, so one ``[..., T, V+1, V]`` logit table is
the whole policy, and a forward recursion over the state marginals turns per-state quantities
(a categorical KL, an entropy) into exact per-word expectations over its sentences.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppo_core.lab.model import BOS


def logit_table(bigram: Tensor, position: Tensor) -> Tensor:
    """Every next-word logit, ``[..., T, V+1, V]``: row ``[t, s]`` is the state "word ``t``,
    after word ``s``", from ``bigram [..., V+1, V]`` and ``position [..., T, V]``."""
    return bigram.unsqueeze(-3) + position.unsqueeze(-2)


def state_marginals(table: Tensor) -> Tensor:
    """``d[..., t, s]`` = P(word ``t - 1`` is ``s``) under the policy ``table``.

    Forward recursion over the word marginals ``w_t = w_{t-1} @ softmax(table_t)``; at ``t = 0``
    the state is BOS with probability 1, and BOS never comes back.
    """
    probs = torch.softmax(table, dim=-1)
    word = probs[..., 0, BOS, :]
    words = [word]
    for t in range(1, table.shape[-3] - 1):
        word = (word.unsqueeze(-2) @ probs[..., t, :BOS, :]).squeeze(-2)
        words.append(word)
    bos = torch.zeros(*table.shape[:-3], 1, table.shape[-2])
    bos[..., 0, BOS] = 1.0
    later = torch.nn.functional.pad(torch.stack(words, dim=-2), (0, 1))  # BOS column: 0
    return torch.cat([bos, later], dim=-2)


def per_word(per_state: Tensor, marginals: Tensor) -> Tensor:
    """Exact expectation over the policy's sentences, per word: ``sum_{t,s} d[t,s] x[t,s] / T``.

    By the chain rule this is the sequence-level KL (or entropy) divided by ``T``.
    """
    return (marginals * per_state).sum(dim=(-2, -1)) / per_state.shape[-2]


def pick(values: Tensor, flat_index: Tensor) -> Tensor:
    """``values.flatten()[flat_index]`` via ``index_select`` (its backward, ``index_add``, is
    several times faster than that of multi-dimensional advanced indexing)."""
    return values.reshape(-1).index_select(0, flat_index.reshape(-1)).view(flat_index.shape)
