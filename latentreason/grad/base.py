"""A gradient estimator decides which updates of a segment's schedule carry gradient.

Every other update runs under `torch.no_grad()`. The same walk serves every core, because a core
is described only by its schedule (see latentreason.cores.base).
"""

from __future__ import annotations

import torch

from latentreason.cores.base import Core, State, Update


class GradientEstimator:
    def graded(self, schedule: tuple[Update, ...]) -> set[int]:
        """Indices of the updates that run with gradient."""
        raise NotImplementedError

    def run(self, core: Core, state: State, x: torch.Tensor) -> State:
        """Run one segment: every update of the core's schedule, in order."""
        schedule = core.schedule()
        graded = self.graded(schedule) if torch.is_grad_enabled() else set()
        for index, update in enumerate(schedule):
            with torch.set_grad_enabled(index in graded):
                state = core.apply(update, state, x)
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
