"""HRM's one-step gradient: only the last update of each state field carries gradient.

Justified in the HRM paper as a 1-step Neumann approximation of the implicit-function gradient
at a fixed point (DEQ); memory for backward is constant in the number of cycles.
"""

from __future__ import annotations

from latentreason.cores.base import Update
from latentreason.grad.base import GradientEstimator
from latentreason.registry import register


@register("grad", "one_step")
class OneStep(GradientEstimator):
    """One-step gradient: backprop through the last update of each state field only."""

    def graded(self, schedule: tuple[Update, ...]) -> set[int]:
        last = {update.writes: index for index, update in enumerate(schedule)}
        return set(last.values())
