"""`single`: one pass, as the run's own evaluation makes it (max steps, or the policy's halting rule)."""

from __future__ import annotations

from latentreason.infer.base import Candidates, InferenceStrategy, run_model
from latentreason.registry import register


@register("infer", "single")
class Single(InferenceStrategy):
    """One pass: segments until the policy halts each row, at most max_steps (today's eval and solve)."""

    def __init__(self, trained=None):
        pass

    def run(self, model, task, inputs, puzzle_ids, compute) -> Candidates:
        return run_model(model, inputs, puzzle_ids, compute)
