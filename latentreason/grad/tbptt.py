"""Truncated backpropagation through time: only the last k updates of a segment carry gradient.

k = None (or k >= the schedule's length) is full BPTT through the whole segment, with memory for
backward growing linearly in the number of updates. TRM's rule (the first T - 1 recursions without
grad, full backprop through the last) is k = L_cycles + 1 on the `trm` core; URM also trains with
truncated BPTT.
"""

from __future__ import annotations

from latentreason.cores.base import Update
from latentreason.errors import ConfigError
from latentreason.grad.base import GradientEstimator
from latentreason.registry import register


@register("grad", "tbptt")
class TBPTT(GradientEstimator):
    """Truncated BPTT: backprop through the last k updates of the segment (k = None: all of them)."""

    def __init__(self, k: int | None = None):
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ConfigError(f"grad.k must be a positive integer or null (all updates), got {k!r}")
        self.k = k

    def graded(self, schedule: tuple[Update, ...]) -> set[int]:
        n = len(schedule)
        k = n if self.k is None else min(self.k, n)
        return set(range(n - k, n))

    def __repr__(self) -> str:
        return f"TBPTT(k={self.k})"
