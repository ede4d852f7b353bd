"""A tiny live training lab: vanilla policy gradient blows up, PPO stays proximal.

**The policy** is a toy language model over :data:`VOCAB` (16 real words) that writes
``seq_len``-word sentences one word at a time. Its next-word logits are a bigram table plus a
per-position bias, ``z_t(w) = B[w_{t-1}, w] + P[t, w]`` (``w_{-1}`` is a begin-of-sentence
state ``<s>``). It starts "pretrained": ``B`` is the smoothed log bigram frequency of
:data:`CORPUS` plus a little noise drawn from the seed, ``P = 0``; that initial policy, frozen,
is the reference policy. The model is Markov in the state ``(t, w_{t-1})``, so the lab reports
*exact* KLs and entropies (a forward recursion over the state marginals), free of sampling
noise, and every forward pass is one ``[T, V+1, V]`` table.

**The scripted reward model** scores a sentence ``w`` as
``fluency(w) + MAT_BONUS * count(w, "mat")``, where fluency is the share of transitions
(``<s>`` to the first word included) that :data:`GRAMMAR` allows. With 8 words the best score
is 1.45 ("the mat and the mat and the mat"). **The trap**: every "mat" pays, so
"the mat mat mat mat mat mat mat" scores 1.30 and is a local optimum — changing any one word
lowers its reward (a middle "mat" -> "and" gains 1/8 fluency and loses 0.15) — into which a
policy that collapses early can fall.

**Three trainers** share one rollout/update loop and differ only in the loss:

* ``pg``: vanilla policy gradient with a baseline, as the *importance-weighted* surrogate
  ``-A r`` with ``r = exp(log pi - log pi_old)`` — the seed's "unclipped (dangerous!)" line.
  Its gradient ``-A r grad log pi`` is REINFORCE's ``-A grad log pi`` on the first epoch
  (``r = 1``) and grows with ``r`` over the later epochs on the same batch.
* ``ppo``: the clipped surrogate of :func:`ppo_core.policy.policy_loss` (its clip rule,
  :func:`ppo_core.policy.clipped_surrogate`, on its clamped ratio; ``policy_loss`` itself
  reports the clip fraction and approx KL, once per iteration).
* ``ppo-kl``: the clipped surrogate plus ``beta * k2``, ``k2 = (log pi - log pi_ref)^2 / 2``
  (:func:`ppo_core.kl.kl_per_token`), in the loss as verl's ``use_kl_loss``. ``beta`` comes
  from :class:`ppo_core.kl.FixedKLController`, or :class:`ppo_core.kl.AdaptiveKLController`
  when ``target_kl`` is set. Why k2: on samples from ``pi`` its gradient
  ``(log pi - log pi_ref) grad log pi`` has expectation ``grad KL(pi || pi_ref)``, and stays
  bounded; k3's gradient ``(1 - pi_ref / pi) grad log pi`` has expectation
  ``grad KL(pi_ref || pi)`` (the other KL) and is unbounded where ``pi << pi_ref`` — in this
  lab, at a high learning rate, it diverged.

All three subtract ``entropy_coef * H`` (:func:`ppo_core.entropy.entropy_from_logits`, over the
batch's states), use the batch-mean reward as the baseline (:func:`ppo_core.advantages.
group_advantages` without std scaling: a std-scaled advantage turns the last tiny reward
differences into unit-size pushes and makes any entropy bonus irrelevant), aggregate per word
(token-mean), and take ``epochs`` full-batch plain-SGD steps per rollout. Plain SGD, not Adam:
a step then follows the gradient's size, so PG's importance weight really amplifies it and
PPO's clip really removes it (Adam rescales every coordinate to a step of about ``lr``, which
lets a tiny unclipped gradient move PPO nearly as far as PG). All losses are minimised.

Examples:
    >>> series = run_lab(LabConfig(iterations=5, batch_size=16), ["pg", "ppo"])
    >>> [len(s.update_kl) for s in series.values()]
    [5, 5]
    >>> series["pg"].update_kl[0] > series["ppo"].update_kl[0]
    True
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
from torch import Tensor

from ppo_core._checks import PPOInputError
from ppo_core.advantages import group_advantages
from ppo_core.entropy import entropy_from_logits
from ppo_core.kl import AdaptiveKLController, FixedKLController, categorical_kl, kl_per_token
from ppo_core.policy import clip_bounds, clipped_surrogate, policy_loss

Algorithm = Literal["pg", "ppo", "ppo-kl"]
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)

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

KL_HORIZON = 10
"""Horizon of the adaptive KL controller, in iterations (``n_steps = 1`` per iteration): the
coefficient moves by at most ``0.2 / KL_HORIZON`` = 2 % per iteration."""

LOG_RATIO_CLAMP = 20.0
"""``|log pi - log pi_old|`` (and ``|log pi - log pi_ref|``) is clamped here before ``exp``,
as verl does: PG's ratio can otherwise reach ``exp(88)`` and its loss overflow to ``inf``."""

SAMPLES_PER_CHECKPOINT = 3
"""Decoded sentences recorded at each checkpoint (every 10 % of the iterations and the last)."""

# Limits of LabConfig's knobs (checked there; an API should enforce the same bounds). They cap
# the cost of one run, iterations x (a rollout + epochs SGD steps): measured on 2 busy cores,
# about 14 ms per iteration for the default preset (3 algorithms, 6 epochs, 64 x 8 words) and
# about 120 ms at the limits (16 epochs, 512 x 12 words), i.e. about a minute for 500 iterations.
MAX_ITERATIONS = 500
MAX_BATCH_SIZE = 512
MIN_BATCH_SIZE = 2
MAX_EPOCHS = 16
MIN_SEQ_LEN = 4
MAX_SEQ_LEN = 12
MAX_LR = 200.0
MAX_ENTROPY_COEF = 1.0
MAX_KL_COEF = 1.0
MAX_TARGET_KL = 10.0
MAX_SEED = 2**32 - 1

_BOS = len(VOCAB)
_WORD_ID = {w: i for i, w in enumerate(VOCAB)}
_MAT = _WORD_ID["mat"]


def _grammar_matrix() -> Tensor:
    allowed = torch.zeros(len(VOCAB) + 1, len(VOCAB), dtype=torch.bool)
    for prev, nexts in GRAMMAR.items():
        row = _BOS if prev == "<s>" else _WORD_ID[prev]
        for word in nexts:
            allowed[row, _WORD_ID[word]] = True
    return allowed


_ALLOWED = _grammar_matrix()


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PPOInputError(name, f"must be an integer in [{low}, {high}], got {value!r}")


def _check_real(
    name: str, value: float, low: float, high: float, *, open_low: bool, open_high: bool = False
) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low)
    ok = ok and (value < high if open_high else value <= high)
    if not ok:
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise PPOInputError(name, f"must be a number in {interval}, got {value!r}")


@dataclass(frozen=True)
class LabConfig:
    """Knobs of the lab, checked on construction (:class:`PPOInputError` names the field).

    The limits are the module's ``MAX_*`` / ``MIN_*`` constants, which an API should enforce
    too. The defaults are the "default" preset.

    Attributes:
        lr: Plain-SGD learning rate, in (0, :data:`MAX_LR`]. SGD on a per-word mean loss
            needs large values: 20 learns in a few dozen iterations, 100 is "too high".
        epochs: SGD steps on each rollout (full batch), 1..:data:`MAX_EPOCHS`.
        batch_size: Sentences per rollout, :data:`MIN_BATCH_SIZE`..:data:`MAX_BATCH_SIZE`.
        iterations: Rollout/update iterations, 1..:data:`MAX_ITERATIONS`.
        clip_ratio: PPO's epsilon, in (0, 1). ``pg`` ignores it but reports the share of
            words PPO would have clipped.
        entropy_coef: Entropy bonus weight, in [0, :data:`MAX_ENTROPY_COEF`].
        kl_coef: ``ppo-kl``'s (initial) KL coefficient beta, in [0, :data:`MAX_KL_COEF`].
        target_kl: ``None`` keeps beta fixed; a number in (0, :data:`MAX_TARGET_KL`] adapts it
            toward this exact per-word KL to the reference (Ziegler et al.'s controller).
        seed: Seeds the initial policy's noise and every algorithm's sampling,
            in [0, :data:`MAX_SEED`].
        seq_len: Words per sentence, :data:`MIN_SEQ_LEN`..:data:`MAX_SEQ_LEN`.

    Examples:
        >>> LabConfig(lr=100.0).epochs
        6
        >>> LabConfig(epochs=0)
        Traceback (most recent call last):
        ...
        ppo_core._checks.PPOInputError: epochs: must be an integer in [1, 16], got 0
    """

    lr: float = 20.0
    epochs: int = 6
    batch_size: int = 64
    iterations: int = 100
    clip_ratio: float = 0.2
    entropy_coef: float = 0.01
    kl_coef: float = 0.05
    target_kl: float | None = None
    seed: int = 0
    seq_len: int = 8

    def __post_init__(self) -> None:
        _check_real("lr", self.lr, 0.0, MAX_LR, open_low=True)
        _check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_int("batch_size", self.batch_size, MIN_BATCH_SIZE, MAX_BATCH_SIZE)
        _check_int("iterations", self.iterations, 1, MAX_ITERATIONS)
        _check_real("clip_ratio", self.clip_ratio, 0.0, 1.0, open_low=True, open_high=True)
        _check_real("entropy_coef", self.entropy_coef, 0.0, MAX_ENTROPY_COEF, open_low=False)
        _check_real("kl_coef", self.kl_coef, 0.0, MAX_KL_COEF, open_low=False)
        if self.target_kl is not None:
            _check_real("target_kl", self.target_kl, 0.0, MAX_TARGET_KL, open_low=True)
            if self.kl_coef == 0:
                raise PPOInputError("kl_coef", "must be > 0 when target_kl is set (adaptive)")
        _check_int("seed", self.seed, 0, MAX_SEED)
        _check_int("seq_len", self.seq_len, MIN_SEQ_LEN, MAX_SEQ_LEN)


PRESETS: dict[str, LabConfig] = {
    "default": LabConfig(),
    "high learning rate": LabConfig(lr=100.0),
    "no entropy bonus": LabConfig(entropy_coef=0.0),
    "with KL penalty": LabConfig(kl_coef=0.1, target_kl=0.1),
}
"""Named starting points for the page and the API (each differs from "default" in one idea)."""


@dataclass(frozen=True)
class LabMetrics:
    """One algorithm's numbers for one iteration.

    Rollout numbers (``mean_reward``, ``ref_kl``, ``entropy``, ``samples``) describe the policy
    that wrote this iteration's batch; update numbers (``update_kl``, ``clip_fraction``,
    ``approx_kl``) describe the update made on that batch. KLs and entropy are per word, in
    nats.
    """

    mean_reward: float
    """Mean reward of the batch's sentences."""
    update_kl: float
    """Exact ``KL(pi_new || pi_old)`` of this update, after all epochs (sequence KL / seq_len)."""
    ref_kl: float
    """Exact ``KL(pi || pi_ref)`` to the frozen initial policy (sequence KL / seq_len)."""
    entropy: float
    """Exact mean per-word entropy of the policy over its own sentences."""
    clip_fraction: float
    """``policy_loss``'s clip fraction on the last epoch (for ``pg``: where PPO *would* clip)."""
    approx_kl: float
    """``policy_loss``'s k1 ``mean(old - new)`` over the batch, on the last epoch."""
    kl_coef: float
    """KL coefficient used by this update (0 for ``pg`` and ``ppo``)."""
    samples: tuple[str, ...] = ()
    """A few decoded sentences of the batch at checkpoints; empty elsewhere."""


@dataclass(frozen=True)
class LabStep:
    """Everything computed in one iteration, for every requested algorithm."""

    iteration: int
    metrics: dict[str, LabMetrics]


@dataclass
class LabSeries:
    """One algorithm's whole run: a list per metric, index ``i`` is iteration ``i``."""

    algorithm: str
    mean_reward: list[float] = field(default_factory=list)
    update_kl: list[float] = field(default_factory=list)
    ref_kl: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    clip_fraction: list[float] = field(default_factory=list)
    approx_kl: list[float] = field(default_factory=list)
    kl_coef: list[float] = field(default_factory=list)
    samples: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """Decoded sentences keyed by checkpoint iteration."""

    def append(self, iteration: int, m: LabMetrics) -> None:
        """Add one iteration's metrics."""
        self.mean_reward.append(m.mean_reward)
        self.update_kl.append(m.update_kl)
        self.ref_kl.append(m.ref_kl)
        self.entropy.append(m.entropy)
        self.clip_fraction.append(m.clip_fraction)
        self.approx_kl.append(m.approx_kl)
        self.kl_coef.append(m.kl_coef)
        if m.samples:
            self.samples[iteration] = m.samples


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
    prev = torch.cat([torch.full_like(tokens[..., :1], _BOS), tokens[..., :-1]], dim=-1)
    fluency = _ALLOWED[prev, tokens].to(torch.float32).mean(dim=-1)
    return fluency + MAT_BONUS * (tokens == _MAT).sum(dim=-1).to(torch.float32)


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
        prev = _BOS
        for word in sentence.split():
            counts[prev, _WORD_ID[word]] += 1.0
            prev = _WORD_ID[word]
    gen = torch.Generator().manual_seed(seed)
    bigram = torch.log(counts / counts.sum(dim=1, keepdim=True))
    bigram = bigram + INIT_NOISE * torch.randn(bigram.shape, generator=gen)
    return bigram, torch.zeros(seq_len, len(VOCAB))


def _logit_table(bigram: Tensor, position: Tensor) -> Tensor:
    """Every next-word logit, ``[..., T, V+1, V]``: row ``[t, s]`` is the state "word ``t``,
    after word ``s``", from ``bigram [..., V+1, V]`` and ``position [..., T, V]``."""
    return bigram.unsqueeze(-3) + position.unsqueeze(-2)


def _state_marginals(table: Tensor) -> Tensor:
    """``d[..., t, s]`` = P(word ``t - 1`` is ``s``) under the policy ``table``.

    Forward recursion over the word marginals ``w_t = w_{t-1} @ softmax(table_t)``; at ``t = 0``
    the state is BOS with probability 1, and BOS never comes back.
    """
    probs = torch.softmax(table, dim=-1)
    word = probs[..., 0, _BOS, :]
    words = [word]
    for t in range(1, table.shape[-3] - 1):
        word = (word.unsqueeze(-2) @ probs[..., t, :_BOS, :]).squeeze(-2)
        words.append(word)
    bos = torch.zeros(*table.shape[:-3], 1, table.shape[-2])
    bos[..., 0, _BOS] = 1.0
    later = torch.nn.functional.pad(torch.stack(words, dim=-2), (0, 1))  # BOS column: 0
    return torch.cat([bos, later], dim=-2)


def _per_word(per_state: Tensor, marginals: Tensor) -> Tensor:
    """Exact expectation over the policy's sentences, per word: ``sum_{t,s} d[t,s] x[t,s] / T``.

    By the chain rule this is the sequence-level KL (or entropy) divided by ``T``.
    """
    return (marginals * per_state).sum(dim=(-2, -1)) / per_state.shape[-2]


def _pick(values: Tensor, flat_index: Tensor) -> Tensor:
    """``values.flatten()[flat_index]`` via ``index_select`` (its backward, ``index_add``, is
    several times faster than that of multi-dimensional advanced indexing)."""
    return values.reshape(-1).index_select(0, flat_index.reshape(-1)).view(flat_index.shape)


@dataclass(frozen=True)
class _Batch:
    """One rollout per algorithm, ``[A, B, T]`` each: where each word sits in the logit table,
    and the fixed numbers the loss needs."""

    state: Tensor
    """Flat index of each word's state ``(algorithm, t, prev)`` in a ``[A, T, V+1]`` table."""
    word: Tensor
    """Flat index of each word in a ``[A, T, V+1, V]`` table."""
    old_logp: Tensor
    ref_logp: Tensor
    advantages: Tensor


class _Lab:
    """The requested algorithms' policies, stacked on a leading algorithm axis ``A``.

    One rollout/update loop serves every algorithm; :meth:`_loss` is the only place they differ.
    Stacking runs all of them through the same tensor ops (the lab is bound by per-op overhead,
    not arithmetic) while each slice keeps its own parameters, generator and loss: slice ``a``
    of the summed loss's gradient is the gradient of algorithm ``a``'s own loss, so each
    algorithm's numbers are the same as if it ran alone.
    """

    def __init__(self, config: LabConfig, algorithms: tuple[Algorithm, ...]) -> None:
        self.config = config
        self.algorithms = algorithms
        n = len(algorithms)
        bigram, position = initial_logits(config.seed, config.seq_len)
        self.ref_table = _logit_table(bigram, position)
        self.bigram = bigram.repeat(n, 1, 1).requires_grad_(True)
        self.position = position.repeat(n, 1, 1).requires_grad_(True)
        self.params = (self.bigram, self.position)
        self.generators = [torch.Generator().manual_seed(config.seed) for _ in algorithms]
        self.rows = torch.arange(n).view(n, 1, 1)
        self.group = torch.arange(n).view(n, 1)
        self.steps = torch.arange(config.seq_len)
        self.is_pg = torch.tensor([a == "pg" for a in algorithms]).view(n, 1, 1)
        self.clip = clip_bounds(config.clip_ratio)
        self.kl_row = algorithms.index("ppo-kl") if "ppo-kl" in algorithms else None
        self.kl_ctl: FixedKLController | AdaptiveKLController = FixedKLController(config.kl_coef)
        if config.target_kl is not None:
            self.kl_ctl = AdaptiveKLController(config.kl_coef, config.target_kl, KL_HORIZON)
        with torch.no_grad():
            self.table = _logit_table(self.bigram, self.position)
            self.marginals = _state_marginals(self.table)

    def _sample(self, table: Tensor) -> tuple[Tensor, Tensor]:
        """Autoregressive sampling by Gumbel-max: ``(words, previous words)``, ``[A, B, T]``."""
        batch, seq_len = self.config.batch_size, self.config.seq_len
        shape = (batch, seq_len, len(VOCAB))
        uniform = torch.stack([torch.rand(shape, generator=g) for g in self.generators])
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-12, 1.0 - 1e-7)))
        rows = self.rows.view(-1, 1)
        states = [torch.full(uniform.shape[:2], _BOS, dtype=torch.long)]
        for t in range(seq_len):
            states.append((table[rows, t, states[-1]] + gumbel[:, :, t]).argmax(dim=-1))
        sentence = torch.stack(states, dim=-1)
        return sentence[..., 1:], sentence[..., :-1]

    def _loss(self, batch: _Batch, table: Tensor, kl_coef: float) -> tuple[Tensor, Tensor]:
        """Sum over algorithms of each one's loss; also returns the words' log-probs."""
        # A word's state (t, prev) is a row of the table: log-softmax once per state, not per word.
        log_probs = torch.log_softmax(table, dim=-1)
        logp = _pick(log_probs, batch.word)
        # policy_loss's ratio (log-ratio clamped, then exp) and its clip rule, clipped_surrogate,
        # without its dozen diagnostic reductions: step() calls policy_loss itself for those,
        # once per iteration instead of once per epoch (the loop is bound by per-op overhead).
        log_ratio = (logp - batch.old_logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
        ratio = torch.exp(log_ratio)
        clipped = clipped_surrogate(ratio, batch.advantages, self.clip).loss
        # The one difference between pg and ppo: pg keeps the unclipped, importance-weighted
        # surrogate -A r (gradient -A r grad log pi); ppo takes the clipped one.
        per_word = torch.where(self.is_pg, -batch.advantages * ratio, clipped)
        loss = per_word.mean(dim=(1, 2))  # token-mean, per algorithm
        if self.config.entropy_coef > 0:
            entropy = _pick(entropy_from_logits(table), batch.state)
            loss = loss - self.config.entropy_coef * entropy.mean(dim=(1, 2))
        total = loss.sum()
        if self.kl_row is not None:
            # ppo-kl: + beta * k2 to the reference (why k2, not k3: see the module docstring).
            k2 = kl_per_token(
                logp[self.kl_row],
                batch.ref_logp[self.kl_row],
                "k2",
                log_ratio_clamp=LOG_RATIO_CLAMP,
            )
            total = total + kl_coef * k2.mean()
        return total, logp.detach()

    def _rollout(self, table: Tensor) -> tuple[Tensor, Tensor, _Batch]:
        """Sample a batch from the policy ``table``: ``(words, rewards, batch)``."""
        tokens, prev = self._sample(table)
        rewards = reward(tokens)
        # Baseline: each algorithm's own batch-mean reward (one group per algorithm).
        groups = self.group.expand(rewards.shape).flatten()
        advantages = group_advantages(rewards.flatten(), groups, normalize_std=False)
        state = (self.rows * self.config.seq_len + self.steps) * (len(VOCAB) + 1) + prev
        word = state * len(VOCAB) + tokens
        batch = _Batch(
            state=state,
            word=word,
            old_logp=_pick(torch.log_softmax(table, dim=-1), word),
            ref_logp=torch.log_softmax(self.ref_table, dim=-1)[self.steps, prev, tokens],
            advantages=advantages.view(*rewards.shape, 1).expand(tokens.shape),
        )
        return tokens, rewards, batch

    def step(self, checkpoint: bool) -> dict[str, LabMetrics]:
        """One rollout per algorithm and ``epochs`` SGD steps on it; returns the metrics."""
        cfg = self.config
        old_table, old_marginals = self.table, self.marginals
        with torch.no_grad():
            tokens, rewards, batch = self._rollout(old_table)
            ref_table = self.ref_table.expand_as(old_table)
            ref_kl = _per_word(categorical_kl(old_table, ref_table), old_marginals)
            entropy = _per_word(entropy_from_logits(old_table), old_marginals)

        kl_coef = self.kl_ctl.value
        logp = batch.old_logp
        for _ in range(cfg.epochs):
            loss, logp = self._loss(batch, _logit_table(self.bigram, self.position), kl_coef)
            grads = torch.autograd.grad(loss, self.params)
            with torch.no_grad():
                for param, grad in zip(self.params, grads, strict=True):
                    param.add_(grad, alpha=-cfg.lr)  # plain SGD

        with torch.no_grad():
            self.table = _logit_table(self.bigram, self.position)
            self.marginals = _state_marginals(self.table)
            update_kl = _per_word(categorical_kl(self.table, old_table), self.marginals)
        if self.kl_row is not None:
            self.kl_ctl.update(float(ref_kl[self.kl_row]), 1)

        per_algorithm = torch.stack([rewards.mean(dim=-1), update_kl, ref_kl, entropy]).T.tolist()
        metrics: dict[str, LabMetrics] = {}
        for i, name in enumerate(self.algorithms):
            # Diagnostics of the last epoch (its forward pass, before its step), per algorithm.
            diag = policy_loss(
                logp[i],
                batch.old_logp[i],
                batch.advantages[i],
                clip_ratio=cfg.clip_ratio,
                log_ratio_clamp=LOG_RATIO_CLAMP,
            )
            metrics[name] = LabMetrics(
                mean_reward=per_algorithm[i][0],
                update_kl=per_algorithm[i][1],
                ref_kl=per_algorithm[i][2],
                entropy=per_algorithm[i][3],
                clip_fraction=diag.clip_fraction,
                approx_kl=diag.approx_kl,
                kl_coef=kl_coef if i == self.kl_row else 0.0,
                samples=tuple(decode(tokens[i, :SAMPLES_PER_CHECKPOINT])) if checkpoint else (),
            )
        return metrics


def _check_algorithms(algorithms: Sequence[str]) -> tuple[Algorithm, ...]:
    if isinstance(algorithms, str) or not algorithms:
        raise PPOInputError("algorithms", f"expected a non-empty list of {list(ALGORITHMS)}")
    out: list[Algorithm] = []
    for name in algorithms:
        match = next((a for a in ALGORITHMS if a == name), None)
        if match is None:
            raise PPOInputError(
                "algorithms", f"unknown algorithm {name!r}; expected one of {list(ALGORITHMS)}"
            )
        if match in out:
            raise PPOInputError("algorithms", f"{name!r} is listed twice")
        out.append(match)
    return tuple(out)


def is_checkpoint(iteration: int, iterations: int) -> bool:
    """Whether samples are decoded at ``iteration``: every 10 % of the run, and the last.

    Examples:
        >>> [i for i in range(25) if is_checkpoint(i, 25)]
        [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24]
    """
    return iteration % max(1, iterations // 10) == 0 or iteration == iterations - 1


def iterate_lab(
    config: LabConfig, algorithms: Sequence[str] = ALGORITHMS
) -> Generator[LabStep, None, None]:
    """Train one policy per algorithm side by side, yielding each iteration as it is computed.

    Every algorithm starts from the same initial policy and samples from its own generator
    seeded with ``config.seed``, so iteration 0's batches are identical. Lazy: the work happens
    on each ``next()``, so a caller that stops iterating (a client that left) stops it.

    Args:
        config: The knobs.
        algorithms: Any of :data:`ALGORITHMS`, each at most once, in the order to run them.

    Returns:
        A generator of one :class:`LabStep` per iteration, with a :class:`LabMetrics` per
        algorithm; ``close()`` it to stop early. Each step costs a few milliseconds (the
        default preset: about 14 ms for three algorithms), so a server should pull it off the
        event loop (e.g. ``starlette.concurrency.iterate_in_threadpool``).

    Raises:
        PPOInputError: ``field == "algorithms"`` for an empty, unknown or repeated name (at
            call time, before any work).

    Examples:
        >>> steps = list(iterate_lab(LabConfig(iterations=3, batch_size=8), ["pg", "ppo"]))
        >>> [s.iteration for s in steps], list(steps[0].metrics)
        ([0, 1, 2], ['pg', 'ppo'])
        >>> steps[0].metrics["pg"].mean_reward == steps[0].metrics["ppo"].mean_reward
        True
    """
    return _iterate(config, _check_algorithms(algorithms))


def _iterate(
    config: LabConfig, algorithms: tuple[Algorithm, ...]
) -> Generator[LabStep, None, None]:
    # torch's thread count is the caller's (the server sets it once per process): toggling
    # the process-wide setting here raced with other threads. The lab's tensors are far below
    # torch's parallel grain, so the results do not depend on it.
    lab = _Lab(config, algorithms)
    for i in range(config.iterations):
        yield LabStep(i, lab.step(is_checkpoint(i, config.iterations)))


def run_lab(config: LabConfig, algorithms: Sequence[str] = ALGORITHMS) -> dict[str, LabSeries]:
    """Run :func:`iterate_lab` to the end and collect one :class:`LabSeries` per algorithm.

    Examples:
        >>> series = run_lab(LabConfig(iterations=2, batch_size=8), ["ppo"])
        >>> len(series["ppo"].mean_reward), sorted(series["ppo"].samples)
        (2, [0, 1])
    """
    names = _check_algorithms(algorithms)
    series: dict[str, LabSeries] = {name: LabSeries(name) for name in names}
    for step in _iterate(config, names):
        for name, metrics in step.metrics.items():
            series[name].append(step.iteration, metrics)
    return series
