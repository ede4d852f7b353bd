"""The lab's trainer: one rollout/update loop for the three algorithms (the package docstring
says how they differ), stacked on an algorithm axis, and the per-iteration metrics."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ppo_core.advantages import group_advantages
from ppo_core.entropy import entropy_from_logits
from ppo_core.kl import AdaptiveKLController, FixedKLController, categorical_kl, kl_per_token
from ppo_core.lab.config import ALGORITHMS, Algorithm, LabConfig, check_algorithms
from ppo_core.lab.inference import logit_table, per_word, pick, state_marginals
from ppo_core.lab.model import BOS, VOCAB, decode, initial_logits, reward
from ppo_core.policy import policy_loss

KL_HORIZON = 10
"""Horizon of the adaptive KL controller, in iterations (``n_steps = 1`` per iteration): the
coefficient moves by at most ``0.2 / KL_HORIZON`` = 2 % per iteration."""

LOG_RATIO_CLAMP = 20.0
"""``|log pi - log pi_old|`` (and ``|log pi - log pi_ref|``) is clamped here before ``exp``,
as verl does: PG's ratio can otherwise reach ``exp(88)`` and its loss overflow to ``inf``."""

SAMPLES_PER_CHECKPOINT = 3
"""Decoded sentences recorded at each checkpoint (every 10 % of the iterations and the last)."""


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


class LabTrainer:
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
        self.ref_table = logit_table(bigram, position)
        self.bigram = bigram.repeat(n, 1, 1).requires_grad_(True)
        self.position = position.repeat(n, 1, 1).requires_grad_(True)
        self.params = (self.bigram, self.position)
        self.generators = [torch.Generator().manual_seed(config.seed) for _ in algorithms]
        self.rows = torch.arange(n).view(n, 1, 1)
        self.group = torch.arange(n).view(n, 1)
        self.steps = torch.arange(config.seq_len)
        self.is_pg = torch.tensor([a == "pg" for a in algorithms]).view(n, 1, 1)
        self.kl_row = algorithms.index("ppo-kl") if "ppo-kl" in algorithms else None
        self.kl_ctl: FixedKLController | AdaptiveKLController = FixedKLController(config.kl_coef)
        if config.target_kl is not None:
            self.kl_ctl = AdaptiveKLController(config.kl_coef, config.target_kl, KL_HORIZON)
        with torch.no_grad():
            self.table = logit_table(self.bigram, self.position)
            self.marginals = state_marginals(self.table)

    def _sample(self, table: Tensor) -> tuple[Tensor, Tensor]:
        """Autoregressive sampling by Gumbel-max: ``(words, previous words)``, ``[A, B, T]``."""
        batch, seq_len = self.config.batch_size, self.config.seq_len
        shape = (batch, seq_len, len(VOCAB))
        uniform = torch.stack([torch.rand(shape, generator=g) for g in self.generators])
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-12, 1.0 - 1e-7)))
        rows = self.rows.view(-1, 1)
        states = [torch.full(uniform.shape[:2], BOS, dtype=torch.long)]
        for t in range(seq_len):
            states.append((table[rows, t, states[-1]] + gumbel[:, :, t]).argmax(dim=-1))
        sentence = torch.stack(states, dim=-1)
        return sentence[..., 1:], sentence[..., :-1]

    def _loss(self, batch: _Batch, table: Tensor, kl_coef: float) -> tuple[Tensor, Tensor]:
        """Sum over algorithms of each one's loss; also returns the words' log-probs."""
        # A word's state (t, prev) is a row of the table: log-softmax once per state, not per word.
        log_probs = torch.log_softmax(table, dim=-1)
        logp = pick(log_probs, batch.word)
        # ppo_core.policy.policy_loss on every algorithm's words at once ([A * B, T]): its
        # ratio (log-ratio clamped at +-LOG_RATIO_CLAMP, as verl, then exp) and its clipped
        # surrogate per word. (Its float diagnostics cost ~0.15 ms per epoch; step() reports
        # them per algorithm from the last epoch.)
        words = (-1, self.config.seq_len)
        out = policy_loss(
            logp.reshape(words),
            batch.old_logp.reshape(words),
            batch.advantages.reshape(words),
            clip_ratio=self.config.clip_ratio,
            log_ratio_clamp=LOG_RATIO_CLAMP,
        )
        ratio = out.ratio.view_as(logp)
        clipped = out.per_token_loss.view_as(logp)
        # The one difference between pg and ppo: pg keeps the unclipped, importance-weighted
        # surrogate -A r (gradient -A r grad log pi); ppo takes the clipped one.
        per_word = torch.where(self.is_pg, -batch.advantages * ratio, clipped)
        loss = per_word.mean(dim=(1, 2))  # token-mean, per algorithm
        if self.config.entropy_coef > 0:
            entropy = pick(entropy_from_logits(table), batch.state)
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
            old_logp=pick(torch.log_softmax(table, dim=-1), word),
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
            ref_kl = per_word(categorical_kl(old_table, ref_table), old_marginals)
            entropy = per_word(entropy_from_logits(old_table), old_marginals)

        kl_coef = self.kl_ctl.value
        logp = batch.old_logp
        for _ in range(cfg.epochs):
            loss, logp = self._loss(batch, logit_table(self.bigram, self.position), kl_coef)
            grads = torch.autograd.grad(loss, self.params)
            with torch.no_grad():
                for param, grad in zip(self.params, grads, strict=True):
                    param.add_(grad, alpha=-cfg.lr)  # plain SGD

        with torch.no_grad():
            self.table = logit_table(self.bigram, self.position)
            self.marginals = state_marginals(self.table)
            update_kl = per_word(categorical_kl(self.table, old_table), self.marginals)
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
    return _iterate(config, check_algorithms(algorithms))


def _iterate(
    config: LabConfig, algorithms: tuple[Algorithm, ...]
) -> Generator[LabStep, None, None]:
    # torch's thread count is the caller's (the server sets it once per process): toggling
    # the process-wide setting here raced with other threads. The lab's tensors are far below
    # torch's parallel grain, so the results do not depend on it.
    lab = LabTrainer(config, algorithms)
    for i in range(config.iterations):
        yield LabStep(i, lab.step(is_checkpoint(i, config.iterations)))


def run_lab(config: LabConfig, algorithms: Sequence[str] = ALGORITHMS) -> dict[str, LabSeries]:
    """Run :func:`iterate_lab` to the end and collect one :class:`LabSeries` per algorithm.

    Examples:
        >>> series = run_lab(LabConfig(iterations=2, batch_size=8), ["ppo"])
        >>> len(series["ppo"].mean_reward), sorted(series["ppo"].samples)
        (2, [0, 1])
    """
    names = check_algorithms(algorithms)
    series: dict[str, LabSeries] = {name: LabSeries(name) for name in names}
    for step in _iterate(config, names):
        for name, metrics in step.metrics.items():
            series[name].append(step.iteration, metrics)
    return series
