"""`augment_vote` (Augmented HRM; ARC voting): solve each puzzle under the task's symmetries, map back, vote.

A symmetry (Sudoku: relabelled digits, a transposition, shuffled bands, stacks, rows and columns;
Maze: a rotation or reflection) turns a puzzle into another with the same answer, transformed the
same way. A model that solves some of the copies and not others can be outvoted into the right
answer: each copy's answer is mapped back with the exact inverse, and the answer most copies give
wins, ties going to the most confident. The `count` copies of a batch are stacked along the batch
dimension and run by the `inner` strategy (single, or noise_select: augment_vote over PTRM) as one.
"""

from __future__ import annotations

from latentreason.errors import ConfigError
from latentreason.infer.base import Candidates, InferenceStrategy, build_strategy, valid_rows, vote
from latentreason.registry import register
from latentreason.tasks.symmetry import apply_all, invert_all


@register("infer", "augment_vote")
class AugmentVote(InferenceStrategy):
    """Solve under `count` symmetries of the task (the identity first), map the answers back and vote."""

    def __init__(self, count: int = 8, seed: int = 0, check: bool = False, inner: dict | str = "single", trained=None):
        if not isinstance(count, int) or count < 1:
            raise ConfigError(
                f"infer.count={count!r} should be a positive integer (the number of symmetric copies, the "
                "identity included)"
            )
        self.count, self.seed, self.check = count, seed, check
        self.inner = build_strategy(inner or "single", trained)
        self._symmetries: tuple | None = None

    def symmetries(self, task) -> list:
        if self._symmetries is None or self._symmetries[0] is not task:
            found = task.symmetries(self.count, self.seed)
            if not found:
                raise ConfigError(
                    f"infer=augment_vote: the {type(task).__name__} task offers no symmetries (Sudoku, Maze and ARC do)"
                )
            self._symmetries = (task, found)
        return self._symmetries[1]

    def prepare(self, trained, split) -> None:
        self.inner.prepare(trained, split)

    def run(self, model, task, inputs, puzzle_ids, compute) -> Candidates:
        symmetries = self.symmetries(task)
        copies = len(symmetries)
        stacked = apply_all(symmetries, inputs).reshape(copies * len(inputs), -1)  # copy a of row b at a * B + b
        ids = puzzle_ids.repeat(copies) if puzzle_ids is not None else None
        every = self.inner.run(model, task, stacked.to(inputs.dtype), ids, compute).view(copies)
        every.tokens = invert_all(symmetries, every.tokens)
        valid = valid_rows(task, inputs, every.tokens) if self.check else None
        chosen = every.choose(vote(every.tokens, every.confidence, valid))
        chosen.checked = self.check or every.checked
        return chosen
