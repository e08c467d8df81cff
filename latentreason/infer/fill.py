"""`fill`: commit the model's surest open cells as givens and solve again, round after round.

A one-pass model predicts every open cell at once. Where it is unsure of some cells, the cells it is
surest of are mostly right, and each one it commits narrows what the others can be. `fill` runs the
model, turns the `fraction` most confident open cells of every row (by the output distribution the
model was trained with: stablemax or softmax) into givens, and runs it again; the last of `rounds`
passes answers whatever is still open. It is MaskGIT's confidence-ordered decoding (Chang et al.,
2022) applied to a puzzle's blanks: it uses no rule of the game, only the model's own confidence,
and needs a task whose inputs mark open cells with a blank token (Sudoku).
"""

from __future__ import annotations

import torch

from latentreason.errors import ConfigError
from latentreason.infer.base import Candidates, InferenceStrategy
from latentreason.inference import confidence, run_to_halt
from latentreason.registry import register
from latentreason.train.losses import log_stablemax


def token_probabilities(logits: torch.Tensor, loss: str) -> torch.Tensor:
    """The per-cell distribution the model was trained to output: stablemax (HRM's loss) or softmax."""
    logits = logits.float()
    return (log_stablemax(logits) if loss == "stablemax" else torch.log_softmax(logits, -1)).exp()


def surest_open_cells(sure: torch.Tensor, open_cells: torch.Tensor, fraction: float) -> torch.Tensor:
    """Per row, the ceil(fraction x open) open cells of highest `sure` (at least one where any is open)."""
    count = (open_cells.sum(1) * fraction).ceil().clamp(min=1)
    score = torch.where(open_cells, sure, torch.full_like(sure, -1.0))
    rank = score.argsort(dim=1, descending=True, stable=True).argsort(dim=1)  # 0: the surest cell of the row
    return open_cells & (rank < count[:, None])


@register("infer", "fill")
class Fill(InferenceStrategy):
    """`rounds` passes; after each but the last, the surest `fraction` of every row's open cells become givens."""

    def __init__(self, rounds: int = 3, fraction: float = 0.3, trained=None):
        if rounds < 1:  # the registry has checked the types
            raise ConfigError(f"infer.rounds={rounds!r} should be a positive integer (1: a single pass)")
        if not 0 < fraction <= 1:
            raise ConfigError(
                f"infer.fraction={fraction!r} should be in (0, 1]: the share of a row's open cells committed per round"
            )
        self.rounds, self.fraction = rounds, fraction

    def run(self, model, task, inputs, puzzle_ids, compute) -> Candidates:
        blank = getattr(task, "blank_token", None)
        if blank is None:
            raise ConfigError(
                f"infer=fill: the {type(task).__name__} task has no blank token to fill (Sudoku has one); "
                "use another strategy"
            )
        current = inputs.clone()  # the puzzle plus every cell committed so far
        tokens = torch.empty_like(inputs)
        steps = torch.zeros(len(inputs), dtype=torch.int32, device=inputs.device)
        sure = torch.zeros(len(inputs), device=inputs.device)
        halting: dict[str, torch.Tensor] = {}  # each row's halting logits at its last pass
        rows = torch.arange(len(inputs), device=inputs.device)  # rows that still have open cells
        for round_ in range(self.rounds):
            ids = puzzle_ids[rows] if puzzle_ids is not None else None
            logits, used, halt_logits = run_to_halt(model, current[rows], ids)
            compute.add(used)
            steps[rows] += used.to(steps.dtype)
            sure[rows] = confidence(halt_logits, len(rows)).to(sure.device)
            for key, value in halt_logits.items():
                halting.setdefault(key, value.new_zeros((len(inputs),) + value.shape[1:]))[rows] = value
            predicted = logits.argmax(-1).to(inputs.dtype)
            committed = current[rows] != inputs[rows]
            tokens[rows] = torch.where(committed, current[rows], predicted)
            if round_ == self.rounds - 1:
                break
            open_cells = current[rows] == blank
            cell_sure = token_probabilities(logits, task.loss).amax(-1)
            commit = surest_open_cells(cell_sure, open_cells, self.fraction)
            current[rows] = torch.where(commit, predicted, current[rows])
            rows = rows[(open_cells & ~commit).any(1)]
            if len(rows) == 0:
                break
        return Candidates(tokens, sure, steps, halting)
