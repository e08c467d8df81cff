"""Q-learning adaptive computation time (HRM's ACT), faithful to sapientinc/HRM.

A Q head on the H state at position 0 predicts two values, halt and continue. In training a row
stops when q_halt > q_continue (after a random minimum number of steps with probability
`exploration_prob`) or at `max_steps`; q_halt learns whether the prediction is exactly right, and
q_continue learns a bootstrapped target from one extra no-grad segment. At evaluation every row
runs `max_steps` segments, as in the reference.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from latentreason.cores.blocks import Linear
from latentreason.halting.base import HaltingPolicy, HaltLogits
from latentreason.registry import register


@register("halt", "q_act")
class QACT(HaltingPolicy):
    """Q-ACT: halt/continue Q head trained with a bootstrapped target (HRM)."""

    def __init__(
        self,
        hidden_size: int,
        max_steps: int = 16,
        exploration_prob: float = 0.1,
        loss_weight: float = 0.5,
        init_bias: float = -5.0,
    ):
        super().__init__()
        if max_steps < 1:
            raise ValueError(f"halt.max_steps must be >= 1, got {max_steps}")
        self.max_steps, self.exploration_prob, self.loss_weight = max_steps, exploration_prob, loss_weight
        self.head = Linear(hidden_size, 2, bias=True)
        with torch.no_grad():  # start with halting off: both Q values far below zero
            self.head.weight.zero_()
            self.head.bias.fill_(init_bias)

    def logits(self, hidden: torch.Tensor) -> HaltLogits:
        q = self.head(hidden[:, 0]).float()
        return {"q_halt": q[:, 0], "q_continue": q[:, 1]}

    def halt(self, logits: HaltLogits, steps: torch.Tensor, next_logits: Callable[[], HaltLogits]):
        with torch.no_grad():
            is_last = steps >= self.max_steps
            if not self.training or self.max_steps == 1:
                return is_last, {}
            halted = is_last | (logits["q_halt"] > logits["q_continue"])
            explore = torch.rand_like(logits["q_halt"]) < self.exploration_prob
            min_steps = explore * torch.randint_like(steps, low=2, high=self.max_steps + 1)
            halted = halted & (steps >= min_steps)
            nxt = next_logits()
            bootstrap = torch.where(is_last, nxt["q_halt"], torch.maximum(nxt["q_halt"], nxt["q_continue"]))
            return halted, {"q_continue": torch.sigmoid(bootstrap)}

    def loss(self, logits: HaltLogits, targets: dict[str, torch.Tensor], exact: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {"q_halt": F.binary_cross_entropy_with_logits(logits["q_halt"], exact.float(), reduction="sum")}
        if "q_continue" in targets:
            terms["q_continue"] = F.binary_cross_entropy_with_logits(logits["q_continue"], targets["q_continue"], reduction="sum")
        return {k: self.loss_weight * v for k, v in terms.items()}
