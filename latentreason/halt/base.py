"""A halting policy decides how many segments each example gets, with its own heads and losses."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

HaltLogits = dict[str, torch.Tensor]


class HaltingPolicy(nn.Module):
    """Subclasses define `logits`, `halt` and `loss`.

    `max_steps` bounds the number of segments an example gets, in training and at evaluation.
    """

    max_steps: int

    def logits(self, hidden: torch.Tensor) -> HaltLogits:
        """Halting logits (float32, one per row) read from the core's readout at position 0."""
        return {}

    def halt(
        self,
        logits: HaltLogits,
        steps: torch.Tensor,
        next_logits: Callable[[], HaltLogits],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Which rows stop after this segment (`steps` counts it), and any targets for `loss`.

        `next_logits` runs one more no-grad segment from the new state and returns its logits;
        call it only if the policy needs it (it costs a full segment).
        """
        raise NotImplementedError

    def loss(
        self, logits: HaltLogits, targets: dict[str, torch.Tensor], exact: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Weighted, batch-summed loss terms; `exact` says per row whether the prediction is exactly right."""
        return {}


def halting_head(hidden_size: int, outputs: int, init_bias: float) -> nn.Linear:
    """A halting head with zero weights and a strongly negative bias: halting starts off (HRM, TRM)."""
    from latentreason.cores.blocks import Linear

    head = Linear(hidden_size, outputs, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(init_bias)
    return head


def explore(halted: torch.Tensor, steps: torch.Tensor, max_steps: int, probability: float) -> torch.Tensor:
    """Exploration: with `probability` a row gets a minimum number of steps drawn from [2, max_steps]."""
    chosen = torch.rand(steps.shape, device=steps.device) < probability
    min_steps = chosen * torch.randint_like(steps, low=2, high=max_steps + 1)
    return halted & (steps >= min_steps)
