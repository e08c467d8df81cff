"""Output losses: HRM's stablemax cross-entropy (its default) and the usual softmax one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_LABEL = -100
LOSSES = ("stablemax", "softmax")  # what token_cross_entropy computes


def check_loss(loss: str) -> None:
    """Reject an unknown `task.loss` when the task is built, before any data is."""
    if loss not in LOSSES:
        from latentreason.errors import ConfigError

        raise ConfigError(f"task.loss={loss!r} is not a loss; use one of: {', '.join(LOSSES)}")


def log_stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log of s(x) / sum s(x), with s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0.

    Stablemax grows linearly rather than exponentially, which HRM found avoids the late-training
    blow-up of softmax logits on small data.
    """
    s = torch.where(logits < 0, 1 / (1 - logits + 1e-30), logits + 1)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, kind: str = "stablemax") -> torch.Tensor:
    """Per-token loss (batch, length); zero where the label is IGNORE_LABEL."""
    valid = labels != IGNORE_LABEL
    safe_labels = torch.where(valid, labels, 0).long()
    if kind == "stablemax":
        logprobs = log_stablemax(logits.double())  # float64, as the reference computes it
        picked = torch.gather(logprobs, -1, safe_labels.unsqueeze(-1)).squeeze(-1)
        return torch.where(valid, -picked, 0).float()
    if kind == "softmax":
        flat = F.cross_entropy(logits.float().flatten(0, -2), safe_labels.flatten(), reduction="none")
        return torch.where(valid, flat.view(labels.shape), 0)
    raise ValueError(f"Unknown loss {kind!r}; use 'stablemax' or 'softmax'")
