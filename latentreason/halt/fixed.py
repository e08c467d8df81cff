"""A fixed number of segments: every row runs `max_steps` segments, in training and at evaluation.

No head and no loss. This is the "same number of reasoning steps for every example" baseline of
Ge et al. (2025), and deep supervision with a constant segment count.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from latentreason.errors import ConfigError
from latentreason.halt.base import HaltingPolicy, HaltLogits
from latentreason.registry import register


@register("halt", "fixed")
class Fixed(HaltingPolicy):
    """Fixed: every example gets exactly max_steps segments; no halting head."""

    def __init__(self, hidden_size: int | None = None, max_steps: int = 16):
        super().__init__()
        if max_steps < 1:
            raise ConfigError(f"halt.max_steps must be >= 1, got {max_steps}")
        self.max_steps = max_steps  # hidden_size is passed by the framework to every policy; unused

    def logits(self, hidden: torch.Tensor) -> HaltLogits:
        return {}

    def halt(self, logits: HaltLogits, steps: torch.Tensor, next_logits: Callable[[], HaltLogits]):
        return steps >= self.max_steps, {}

    def loss(
        self, logits: HaltLogits, targets: dict[str, torch.Tensor], exact: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {}
