"""What every inference strategy shares: candidates, the compute they cost, choosing and voting.

An inference strategy (`infer=NAME`) turns a batch of puzzles into one answer per puzzle, spending
as much test-time compute as it likes: more segments, noisy candidates, symmetric copies, other
checkpoints. Every strategy runs the model through `latentreason.inference.run_to_halt` (via
`run_model`, which also counts the compute), so all of them predict as `single` does, plus what
they change. Candidates of one batch are stacked along the batch dimension and run as one forward.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from latentreason.errors import ConfigError
from latentreason.inference import confidence, run_to_halt
from latentreason.model import ReasoningModel
from latentreason.tasks.base import Split, Task


@dataclass
class Candidates:
    """One answer per row: tokens (R, L), halting confidence (R,), segments run (R,), halting logits (R,) each."""

    tokens: torch.Tensor
    confidence: torch.Tensor
    steps: torch.Tensor
    halt_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    checked: bool = False  # a validity check chose among candidates (the papers' numbers use none)

    def __len__(self) -> int:
        return len(self.tokens)

    def view(self, groups: int) -> Candidates:
        """Rows ordered group-major (group g, row b at g * B + b) as (groups, B, ...)."""

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(groups, -1, *t.shape[1:])

        return Candidates(
            split(self.tokens),
            split(self.confidence),
            split(self.steps),
            {k: split(v) for k, v in self.halt_logits.items()},
            self.checked,
        )

    def choose(self, index: torch.Tensor) -> Candidates:
        """From (K, B, ...) candidates, candidate index[b] of every row b: back to (B, ...)."""
        rows = torch.arange(self.tokens.shape[1], device=index.device)
        return Candidates(
            self.tokens[index, rows],
            self.confidence[index, rows],
            self.steps[index, rows],
            {k: v[index, rows] for k, v in self.halt_logits.items()},
            self.checked,
        )


@dataclass
class Compute:
    """What a strategy spent: model segment calls and forward passes (rows x segment calls)."""

    forward_passes: int = 0
    segment_calls: int = 0

    def add(self, steps: torch.Tensor) -> None:
        # Rows leave the batch when they halt, so the rows run at each call sum to the rows' steps.
        self.forward_passes += int(steps.sum())
        self.segment_calls += int(steps.max()) if len(steps) else 0


def run_model(
    model: ReasoningModel, inputs: torch.Tensor, puzzle_ids: torch.Tensor | None, compute: Compute, **changes: Any
) -> Candidates:
    """`run_to_halt` (with a strategy's `changes`: max_steps, early_exit, stop, perturb), counted, as candidates."""
    logits, steps, halt_logits = run_to_halt(model, inputs, puzzle_ids, **changes)
    compute.add(steps)
    sure = confidence(halt_logits, len(inputs)).to(inputs.device)
    return Candidates(logits.argmax(-1), sure, steps, halt_logits)


def q_halt_stop(halt_logits: dict[str, torch.Tensor], steps: torch.Tensor) -> torch.Tensor:
    """Stop a row when its halting head says its answer is right (sigmoid(q_halt) > 0.5)."""
    return halt_logits["q_halt"] > 0


def needs_q_halt(model: ReasoningModel, what: str) -> None:
    if "q_halt" not in model.policy.logits(
        torch.zeros(1, 1, model.core.hidden_size, device=next(model.parameters()).device)
    ):
        raise ConfigError(
            f"{what} needs a halting head (q_halt); this checkpoint's policy {type(model.policy).__name__} has "
            "none (use halt=q_act or halt_only)"
        )


class InferenceStrategy:
    """Base class: `run` gives one `Candidates` row per input row; `prepare` sees the data first."""

    def prepare(self, trained, split: Split) -> None:
        """Called once before the batches of `split` (e.g. to fit other checkpoints' puzzle tables)."""

    def run(
        self, model: ReasoningModel, task: Task, inputs: torch.Tensor, puzzle_ids: torch.Tensor | None, compute: Compute
    ) -> Candidates:
        raise NotImplementedError


def valid_rows(task: Task, inputs: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """The task's validity check on (K, B, L) candidates for (B, L) inputs: bool (K, B)."""
    groups = candidates.shape[0]
    valid = task.check(inputs.repeat(groups, 1), candidates.reshape(-1, candidates.shape[-1]))
    if valid is None:
        raise ConfigError(
            f"infer.check=true: the {type(task).__name__} task has no validity check (Sudoku and Maze have "
            "one); drop infer.check"
        )
    return valid.to(candidates.device).reshape(groups, -1)


def most_confident(confidence: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per row b, the candidate k with the highest confidence[k, b], among valid ones where any is valid."""
    score = confidence.float().clone()
    if valid is not None:
        usable = valid | ~valid.any(0, keepdim=True)  # a row without a valid candidate keeps them all
        score[~usable] = -1.0
    return score.argmax(0)


def vote(tokens: torch.Tensor, confidence: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per row b, the candidate k whose answer tokens[k, b] most candidates share; ties go to the most confident.

    tokens (K, B, L), confidence (K, B) in [0, 1], valid (K, B) or None. Invalid candidates neither
    win nor count, unless no candidate of the row is valid.
    """
    same = (tokens[:, None] == tokens[None, :]).all(-1)  # (K, K, B): candidate j gives the answer of k
    usable = torch.ones_like(confidence, dtype=torch.bool) if valid is None else valid | ~valid.any(0, keepdim=True)
    votes = (same & usable[None]).sum(1).float()  # (K, B)
    score = torch.where(
        usable, 2 * votes + confidence.float(), torch.full_like(votes, -1.0)
    )  # confidence < 1 < 2: votes first
    return score.argmax(0)


def build_strategy(config: Mapping[str, Any] | str | None, trained=None) -> InferenceStrategy:
    """The strategy a config names (`{name: noise_select, samples: 8}` or just a name), over its card's defaults."""
    from latentreason import registry
    from latentreason.infer.options import with_card

    params = with_card(config if config is not None else "single")
    return registry.build("infer", params, trained=trained)
