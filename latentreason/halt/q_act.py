"""Q-learning adaptive computation time (HRM's ACT), faithful to sapientinc/HRM.

A Q head on the H state at position 0 predicts two values, halt and continue. In training a row
stops when q_halt > q_continue (after a random minimum number of steps with probability
`exploration_prob`) or at `max_steps`; q_halt learns whether the prediction is exactly right, and
q_continue learns a bootstrapped target from one extra no-grad segment. At evaluation every row
runs `max_steps` segments, as in the reference, unless `eval_halt` picks one of the threshold rules
of Ge et al. (2025): stop when sigmoid(q_halt) > `eval_threshold` ("q_halt"), or when
sigmoid(q_halt - q_continue) > `eval_threshold` ("q_halt_minus_continue").
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from latentreason.errors import ConfigError
from latentreason.halt.base import HaltingPolicy, HaltLogits, explore, halting_head
from latentreason.registry import register

EVAL_HALT_RULES = ("max_steps", "q_halt", "q_halt_minus_continue")


def check_eval_halt(eval_halt: str, eval_threshold: float, allowed: tuple[str, ...], policy: str) -> None:
    """Reject an unknown inference-time halting rule or a threshold outside [0, 1], with the choices."""
    if eval_halt not in allowed:
        raise ConfigError(
            f"halt.eval_halt={eval_halt!r} is not a rule of the {policy} policy; choose one of: {', '.join(allowed)}"
        )
    if not 0.0 <= eval_threshold <= 1.0:
        raise ConfigError(
            f"halt.eval_threshold={eval_threshold!r} must be a probability in [0, 1] (it is compared with a sigmoid)"
        )


def eval_halted(
    logits: HaltLogits, steps: torch.Tensor, max_steps: int, eval_halt: str, eval_threshold: float
) -> torch.Tensor:
    """Inference-time halting: rows stop at `max_steps`, or earlier when the chosen rule fires."""
    halted = steps >= max_steps
    if eval_halt == "q_halt":
        halted = halted | (torch.sigmoid(logits["q_halt"]) > eval_threshold)
    elif eval_halt == "q_halt_minus_continue":
        halted = halted | (torch.sigmoid(logits["q_halt"] - logits["q_continue"]) > eval_threshold)
    return halted


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
        eval_halt: str = "max_steps",
        eval_threshold: float = 0.5,
    ):
        super().__init__()
        if max_steps < 1:
            raise ConfigError(f"halt.max_steps must be >= 1, got {max_steps}")
        check_eval_halt(eval_halt, eval_threshold, EVAL_HALT_RULES, "q_act")
        self.max_steps, self.exploration_prob, self.loss_weight = max_steps, exploration_prob, loss_weight
        self.eval_halt, self.eval_threshold = eval_halt, eval_threshold
        self.head = halting_head(hidden_size, 2, init_bias)  # halt and continue Q values

    def logits(self, hidden: torch.Tensor) -> HaltLogits:
        q = self.head(hidden[:, 0]).float()
        return {"q_halt": q[:, 0], "q_continue": q[:, 1]}

    def halt(self, logits: HaltLogits, steps: torch.Tensor, next_logits: Callable[[], HaltLogits]):
        with torch.no_grad():
            is_last = steps >= self.max_steps
            if not self.training:
                return eval_halted(logits, steps, self.max_steps, self.eval_halt, self.eval_threshold), {}
            if self.max_steps == 1:
                return is_last, {}
            halted = is_last | (logits["q_halt"] > logits["q_continue"])
            halted = explore(halted, steps, self.max_steps, self.exploration_prob)
            nxt = next_logits()
            bootstrap = torch.where(is_last, nxt["q_halt"], torch.maximum(nxt["q_halt"], nxt["q_continue"]))
            return halted, {"q_continue": torch.sigmoid(bootstrap)}

    def loss(
        self, logits: HaltLogits, targets: dict[str, torch.Tensor], exact: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        terms = {"q_halt": F.binary_cross_entropy_with_logits(logits["q_halt"], exact.float(), reduction="sum")}
        if "q_continue" in targets:
            terms["q_continue"] = F.binary_cross_entropy_with_logits(
                logits["q_continue"], targets["q_continue"], reduction="sum"
            )
        return {k: self.loss_weight * v for k, v in terms.items()}
