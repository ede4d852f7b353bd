"""The seed tutorial's four functions, copied verbatim (shared/seed/000_224a837bfd212000.txt).

They are the reference that ``ppo_core``'s re-exported seed functions must reproduce. Only the
indentation (lost in the tutorial's text) was restored; the code and its comments are unchanged.
"""

# fmt: off
import torch
import torch.nn.functional as F


def compute_ppo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_ratio: float = 0.2
) -> torch.Tensor:
    """
    Compute PPO clipped surrogate loss.

    The "surrogate" part is RL jargon for "objective we're optimizing."
    We can't optimize the true policy directly, so we optimize a surrogate.

    Args:
        logprobs: Log probabilities under current policy
        old_logprobs: Log probabilities under old policy (from rollout)
        advantages: Advantage estimates (how good was each action)
        clip_ratio: Clipping threshold epsilon (default 0.2)

    Returns:
        PPO loss (to minimize — we return negative of objective)
    """
    # Compute probability ratio r_t = π_new / π_old
    # We work in log space for numerical stability
    # exp(log(a) - log(b)) = exp(log(a/b)) = a/b
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)

    # Unclipped objective: ratio * advantage
    unclipped = ratio * advantages

    # Clipped objective: clip(ratio, 1-ε, 1+ε) * advantage
    clipped_ratio = torch.clamp(ratio, 1 - clip_ratio, 1 + clip_ratio)
    clipped = clipped_ratio * advantages

    # Take minimum (conservative update) and negate (we minimize loss)
    loss = -torch.min(unclipped, clipped).mean()

    return loss


def compute_value_loss(
    values: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor = None,
    clip_value: bool = True,
    clip_ratio: float = 0.2
) -> torch.Tensor:
    """
    Compute value function loss (optionally clipped).

    Yes, we can clip the value function too! Same idea as policy clipping:
    don't let the value function change too dramatically in one update.

    Args:
        values: Current value predictions V_θ(s)
        returns: Actual returns R (ground truth)
        old_values: Previous value predictions (for clipping)
        clip_value: Whether to clip value updates
        clip_ratio: How much change to allow (default 0.2)

    Returns:
        Value function loss (MSE, possibly clipped)
    """
    if clip_value and old_values is not None:
        # Clipped value loss: similar idea to clipped policy loss
        # Don't let the value function change by more than ±clip_ratio
        value_clipped = old_values + torch.clamp(
            values - old_values, -clip_ratio, clip_ratio
        )

        # Compute both clipped and unclipped errors
        loss_unclipped = (values - returns) ** 2
        loss_clipped = (value_clipped - returns) ** 2

        # Take maximum (pessimistic again!)
        loss = torch.max(loss_unclipped, loss_clipped).mean()
    else:
        # Standard MSE (mean squared error)
        loss = F.mse_loss(values, returns)

    return loss


def compute_entropy(
    logits: torch.Tensor
) -> torch.Tensor:
    """
    Compute entropy of policy distribution.

    Entropy = -Σ p(x) log p(x) across all possible actions x

    High entropy = More exploration (good early in training)
    Low entropy = More deterministic (good later in training)

    Args:
        logits: Raw model outputs (before softmax)

    Returns:
        Mean entropy across batch
    """
    # Convert logits to probabilities
    probs = F.softmax(logits, dim=-1)

    # Convert logits to log probabilities (numerically stable)
    log_probs = F.log_softmax(logits, dim=-1)

    # Entropy = -Σ p(x) log p(x)
    entropy = -(probs * log_probs).sum(dim=-1)

    return entropy.mean()


def compute_ppo_total_loss(
    policy_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    returns: torch.Tensor,
    logits: torch.Tensor,
    clip_ratio: float = 0.2,
    vf_coef: float = 0.5,
    entropy_coef: float = 0.01
) -> dict:
    """
    Compute total PPO loss combining all three components.

    This is the loss you actually optimize during RLHF training.

    Total = Policy Loss + vf_coef * Value Loss - entropy_coef * Entropy

    Args:
        policy_logprobs: Log probs under current policy
        old_logprobs: Log probs under old policy (from rollout)
        advantages: Advantage estimates
        values: Value function predictions
        returns: Actual returns (ground truth for value function)
        logits: Raw model outputs (for computing entropy)
        clip_ratio: PPO clipping threshold (default 0.2)
        vf_coef: Value function loss weight (default 0.5)
        entropy_coef: Entropy bonus weight (default 0.01)

    Returns:
        Dictionary with total loss and individual components
    """
    # 1. Clipped policy loss (the main objective)
    policy_loss = compute_ppo_loss(policy_logprobs, old_logprobs, advantages, clip_ratio)

    # 2. Value function loss (helps compute better advantages)
    value_loss = compute_value_loss(values, returns, clip_value=False)

    # 3. Entropy bonus (encourages exploration)
    entropy = compute_entropy(logits)

    # Combine: minimize policy loss and value loss, maximize entropy
    total_loss = policy_loss + vf_coef * value_loss - entropy_coef * entropy

    return {
        'total_loss': total_loss,
        'policy_loss': policy_loss,
        'value_loss': value_loss,
        'entropy': entropy
    }
# fmt: on
