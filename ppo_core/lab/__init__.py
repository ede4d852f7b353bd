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

The package: :mod:`~ppo_core.lab.model` (the toy language model and the scripted reward),
:mod:`~ppo_core.lab.inference` (exact KLs and entropies), :mod:`~ppo_core.lab.config` (the
knobs, their limits and the presets), :mod:`~ppo_core.lab.trainer` (the loop).

Examples:
    >>> series = run_lab(LabConfig(iterations=5, batch_size=16), ["pg", "ppo"])
    >>> [len(s.update_kl) for s in series.values()]
    [5, 5]
    >>> series["pg"].update_kl[0] > series["ppo"].update_kl[0]
    True
"""

from __future__ import annotations

from ppo_core.lab.config import (
    ALGORITHMS,
    MAX_BATCH_SIZE,
    MAX_ENTROPY_COEF,
    MAX_EPOCHS,
    MAX_ITERATIONS,
    MAX_KL_COEF,
    MAX_LR,
    MAX_SEED,
    MAX_SEQ_LEN,
    MAX_TARGET_KL,
    MIN_BATCH_SIZE,
    MIN_SEQ_LEN,
    PRESETS,
    Algorithm,
    LabConfig,
)
from ppo_core.lab.model import CORPUS, GRAMMAR, MAT_BONUS, VOCAB, decode, initial_logits, reward
from ppo_core.lab.trainer import (
    SAMPLES_PER_CHECKPOINT,
    LabMetrics,
    LabSeries,
    LabStep,
    is_checkpoint,
    iterate_lab,
    run_lab,
)

__all__ = [
    "ALGORITHMS",
    "CORPUS",
    "GRAMMAR",
    "MAT_BONUS",
    "MAX_BATCH_SIZE",
    "MAX_ENTROPY_COEF",
    "MAX_EPOCHS",
    "MAX_ITERATIONS",
    "MAX_KL_COEF",
    "MAX_LR",
    "MAX_SEED",
    "MAX_SEQ_LEN",
    "MAX_TARGET_KL",
    "MIN_BATCH_SIZE",
    "MIN_SEQ_LEN",
    "PRESETS",
    "SAMPLES_PER_CHECKPOINT",
    "VOCAB",
    "Algorithm",
    "LabConfig",
    "LabMetrics",
    "LabSeries",
    "LabStep",
    "decode",
    "initial_logits",
    "is_checkpoint",
    "iterate_lab",
    "reward",
    "run_lab",
]
