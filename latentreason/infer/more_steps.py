"""`more_steps`: keep reasoning past the training maximum, k x max_steps segments.

Latent-reasoning models apply the same update at every segment, so a puzzle they did not finish
in max_steps may be finished with more. With `halting=true` a row stops as soon as its halting
head says its answer is right (sigmoid(q_halt) > 0.5), so easy puzzles do not pay for hard ones.
"""

from __future__ import annotations

from latentreason.errors import ConfigError
from latentreason.infer.base import Candidates, InferenceStrategy, needs_q_halt, q_halt_stop, run_model
from latentreason.registry import register


@register("infer", "more_steps")
class MoreSteps(InferenceStrategy):
    """Run factor x max_steps segments, optionally stopping each row when its halting head fires."""

    def __init__(self, factor: float = 2.0, halting: bool = False, trained=None):
        if not factor > 0:
            raise ConfigError(f"infer.factor={factor!r} should be positive (2: twice the training maximum of segments)")
        self.factor, self.halting = factor, halting

    def prepare(self, trained, split) -> None:
        if self.halting:
            needs_q_halt(trained.model, "infer=more_steps infer.halting=true")

    def run(self, model, task, inputs, puzzle_ids, compute) -> Candidates:
        cap = max(1, round(self.factor * model.policy.max_steps))
        return run_model(model, inputs, puzzle_ids, compute, max_steps=cap, early_exit=self.halting, stop=q_halt_stop)
