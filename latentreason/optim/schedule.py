"""HRM's learning-rate schedule: linear warmup, then cosine down to a floor (constant by default)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int,
    min_ratio: float = 1.0,
    num_cycles: float = 0.5,
) -> float:
    """LR multiplier: linear 0 -> 1 over ``warmup_steps``, then cosine 1 -> ``min_ratio``.

    Same formula as ``cosine_schedule_with_warmup_lr_lambda`` in HRM's ``pretrain.py`` (divided by
    base_lr). ``min_ratio=1.0`` (HRM's configs) is constant after warmup. One deliberate change:
    progress is clamped at 1, so steps past ``total_steps`` stay at ``min_ratio`` instead of the
    cosine climbing back up (HRM never steps past ``total_steps``, so it never sees the difference).
    """
    if step < warmup_steps:
        return float(step) / float(max(1, warmup_steps))
    progress = float(step - warmup_steps) / float(max(1, total_steps - warmup_steps))
    progress = min(progress, 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    return min_ratio + max(0.0, (1.0 - min_ratio) * cosine)


def make_scheduler(optimizer: torch.optim.Optimizer, **kwargs: Any) -> LambdaLR:
    """``LambdaLR`` applying :func:`warmup_cosine` (same keyword arguments) to each group's lr.

    Shifted by one step, as HRM counts: its first update already uses the multiplier of step 1
    (LambdaLR alone would give the first ``optimizer.step()`` the multiplier of step 0, i.e. lr 0).
    """
    return LambdaLR(optimizer, lambda step: warmup_cosine(step + 1, **kwargs))
