"""TRM's halting: one halt logit trained by BCE against exact correctness, no continue value.

As in SamsungSAILMontreal/TinyRecursiveModels (`no_ACT_continue: True`): a row stops in training
when q_halt > 0 (i.e. sigmoid(q_halt) > 0.5) or at `max_steps`, with the same exploration as
HRM's Q-ACT (with probability `exploration_prob` a row draws a minimum number of steps from
[2, max_steps]). There is no bootstrapped target, so no extra segment is run. At evaluation every
row runs `max_steps` segments, as in the reference, unless `eval_halt="q_halt"` stops a row when
sigmoid(q_halt) > `eval_threshold`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from latentreason.errors import ConfigError
from latentreason.halt.base import HaltingPolicy, HaltLogits, explore, halting_head
from latentreason.halt.q_act import check_eval_halt, eval_halted
from latentreason.registry import register

EVAL_HALT_RULES = ("max_steps", "q_halt")


@register("halt", "halt_only")
class HaltOnly(HaltingPolicy):
    """Halt-only ACT (TRM): a single halt logit trained on exact correctness; halt when q_halt > 0."""

    def __init__(
        self,
        hidden_size: int,
        max_steps: int = 16,
        exploration_prob: float = 0.1,
        loss_weight: float = 0.5,
        init_bias: float = -5.0,
        eval_halt: str = "max_steps",
        eval_threshold: float = 0.5,
    ):
        super().__init__()
        if max_steps < 1:
            raise ConfigError(f"halt.max_steps must be >= 1, got {max_steps}")
        if eval_halt == "q_halt_minus_continue":
            raise ConfigError(
                "halt.eval_halt='q_halt_minus_continue' needs a continue value, which halt_only does not have; use q_halt or max_steps (or halt=q_act)"
            )
        check_eval_halt(eval_halt, eval_threshold, EVAL_HALT_RULES, "halt_only")
        self.max_steps, self.exploration_prob, self.loss_weight = max_steps, exploration_prob, loss_weight
        self.eval_halt, self.eval_threshold = eval_halt, eval_threshold
        self.head = halting_head(hidden_size, 1, init_bias)

    def logits(self, hidden: torch.Tensor) -> HaltLogits:
        return {"q_halt": self.head(hidden[:, 0]).float()[:, 0]}

    def halt(self, logits: HaltLogits, steps: torch.Tensor, next_logits: Callable[[], HaltLogits]):
        with torch.no_grad():
            if not self.training:
                return eval_halted(logits, steps, self.max_steps, self.eval_halt, self.eval_threshold), {}
            is_last = steps >= self.max_steps
            if self.max_steps == 1:
                return is_last, {}
            halted = is_last | (logits["q_halt"] > 0)
            return explore(halted, steps, self.max_steps, self.exploration_prob), {}

    def loss(
        self, logits: HaltLogits, targets: dict[str, torch.Tensor], exact: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        bce = F.binary_cross_entropy_with_logits(logits["q_halt"], exact.float(), reduction="sum")
        return {"q_halt": self.loss_weight * bce}
