"""AdamW from torch.optim, as a registered optimizer."""

from __future__ import annotations

import torch

from latentreason.registry import register


@register("optim", "adamw")
def adamw(params, lr: float, betas: tuple[float, float], weight_decay: float) -> torch.optim.AdamW:
    """AdamW (torch.optim): Adam with decoupled weight decay."""
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
