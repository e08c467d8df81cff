"""One path from a checkpoint to predictions: load, fit the puzzle table, run segments to halt.

`latentreason eval`, `latentreason solve`, the Python API and anything that reads a trained model
go through here, so that they all predict exactly as the run's own final evaluation did.
Nothing here trains: a loaded model is a plain `ReasoningModel` in eval mode, no Lightning.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from latentreason.console import console, progress
from latentreason.cores.base import State
from latentreason.hardware import on_gpu
from latentreason.model import ReasoningModel, adapt_puzzle_table, build_model
from latentreason.tasks.base import Split, Task, build_task
from latentreason.train.checkpoints import read_checkpoint
from latentreason.train.deep_supervision import token_results
from latentreason.train.losses import IGNORE_LABEL


@torch.no_grad()
def run_to_halt(
    model: ReasoningModel,
    inputs: torch.Tensor,
    puzzle_ids: torch.Tensor | None = None,
    max_steps: int | None = None,
    early_exit: bool = True,
    stop: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor] | None = None,
    perturb: Callable[[State, torch.Tensor, int], State] | None = None,
):
    """Run segments until every row halted; each row's output is read at its halting step.

    Rows that halt leave the batch: the next segment runs only on the rows still active (their
    state and input embedding are indexed down), so an early-halting rule saves compute. Every
    row stops at `max_steps` at the latest. (A model in eval mode runs its core eager even when
    training compiled it: see `Core.set_updates`.)

    Inference strategies (`latentreason.infer`) change four things, all off by default:
    `max_steps` (the cap, default the policy's), `early_exit=False` (every row runs to the cap, with
    no halting check between segments), `stop(halt_logits, steps) -> halted rows` (instead
    of the policy's rule) and `perturb(state, rows, step) -> state` (called before every segment
    with the original row index of each active row, e.g. to add noise to the latent).

    Returns (logits, steps per row, halting logits at each row's halting step).
    """
    batch, device = inputs.shape[0], inputs.device
    max_steps = max_steps or model.policy.max_steps
    x = model.embed(inputs, puzzle_ids)
    state = model.initial_state(batch, device)
    active = torch.arange(batch, device=device)  # original row of each row still running
    steps = torch.full((batch,), max_steps, dtype=torch.int32, device=device)
    final_logits: torch.Tensor | None = None
    final_halt: dict[str, torch.Tensor] = {}
    for step in range(1, max_steps + 1):
        if perturb is not None:
            state = perturb(state, active, step)
        state = model.segment(state, x)
        logits, halt_logits = model.heads(state)
        if final_logits is None:
            final_logits = logits.new_empty((batch,) + logits.shape[1:])
            final_halt = {k: v.new_empty((batch,) + v.shape[1:]) for k, v in halt_logits.items()}
        if step == max_steps:  # whatever the policy says, nobody runs past max_steps
            final_logits[active] = logits
            for k, v in halt_logits.items():
                final_halt[k][active] = v
            break
        if not early_exit:
            continue
        row_steps = torch.full((len(active),), step, dtype=torch.int32, device=device)
        if stop is None:
            halted = model.policy.halt(halt_logits, row_steps, lambda: {})[0]
        else:
            halted = stop(halt_logits, row_steps)
        if not bool(halted.any()):  # nobody stops here: no bookkeeping, no re-indexing
            continue
        rows = active[halted]
        final_logits[rows] = logits[halted]
        for k, v in halt_logits.items():
            final_halt[k][rows] = v[halted]
        steps[rows] = step
        keep = ~halted
        if not bool(keep.any()):
            break
        active = active[keep]
        state = {k: v[keep] for k, v in state.items()}
        x = x[keep]
    return final_logits, steps, final_halt


def confidence(halt_logits: dict[str, torch.Tensor], rows: int) -> torch.Tensor:
    """sigmoid(q_halt): how sure the halting head is that the answer is right (0.5 without a halting head)."""
    q = halt_logits.get("q_halt")
    return torch.sigmoid(q.float()) if q is not None else torch.full((rows,), 0.5)


@dataclass
class Solution:
    """What a model made of one puzzle: its answer, and how it got there.

    `answer` is the predicted output as the task writes it (Sudoku: the grid as text; None for tasks shown
    only as grids, Maze and ARC); `predictions`,
    `segments` and `confidence` hold one row per variant the task ran (one, except ARC's augmented
    variants): the predicted tokens, the segments run before halting, and the halting head's
    confidence (sigmoid of q_halt; 0.5 for policies without a halting head). `panels` are the
    grids `latentreason solve` shows (`latentreason.render.show(solution.panels)`).
    """

    answer: str | None
    predictions: torch.Tensor
    segments: torch.Tensor
    confidence: torch.Tensor
    panels: list


@dataclass
class TrainedModel:
    """A model read from a checkpoint, with the task and config it was trained with."""

    model: ReasoningModel
    task: Task
    config: DictConfig
    puzzle_names: list[str] | None = field(default=None)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def use_puzzle_names(self, split: Split) -> None:
        """Fit the puzzle-embedding table to the identifiers of `split`, saying what changed."""
        puzzle = self.model.puzzle
        if puzzle is None:
            return
        names = split.get("names")
        count = len(names) if names is not None else max(puzzle.table.shape[0], int(split["puzzle_ids"].max()) + 1)
        table, message = adapt_puzzle_table(puzzle.table, self.puzzle_names, names, count)
        if message:
            puzzle.table = table
            self.puzzle_names = names
            console.print(f"[yellow]{message}[/]")

    def solve(self, puzzle: str) -> Solution:
        """Solve one puzzle given as `latentreason solve` takes it (the puzzle on one line, or a file)."""
        split = self.task.puzzle_split(puzzle)
        self.use_puzzle_names(split)
        out = self.predict(split)
        panels = self.task.present(split, out["predictions"], out["confidence"])
        try:
            answer = self.task.render(out["predictions"][0])
        except NotImplementedError:  # a task shown only as grids (maze, ARC): see `panels`
            answer = None
        return Solution(answer, out["predictions"], out["steps"], out["confidence"], panels)

    def predict(
        self, split: Split | torch.Tensor, batch_size: int | None = None, limit: int | None = None, strategy=None
    ) -> dict:
        """Run every row of `split` to its halting step: predicted tokens, confidence, steps and the usual metrics.

        `split` is a dict of `inputs` (rows of token ids), `labels` and `puzzle_ids`, as the task's
        splits are; or just the inputs (a tensor, or a dict without labels): then there is nothing
        to score, and the metrics count only the rows and their segments.
        `strategy` (a `latentreason.infer.InferenceStrategy`, default `single`: one pass) decides how
        the answers are found; `compute` says what it cost (forward passes = rows x segment calls).
        """
        from latentreason.infer.base import Compute, build_strategy
        from latentreason.train.metrics import (
            ReasoningMetrics,  # torchmetrics: imported when predicting, not with the catalogue
        )

        split = as_split(split)
        strategy = strategy if strategy is not None else build_strategy("single", self)
        strategy.prepare(self, split)
        batch_size = batch_size or int(self.config.trainer.eval_batch_size)
        count = len(split["inputs"]) if limit is None else min(limit, len(split["inputs"]))
        metrics, predictions, confidences, segments, compute, checked = ReasoningMetrics(), [], [], [], Compute(), False
        bar = (
            progress("Predicting", count) if count > batch_size else nullcontext(lambda n: None)
        )  # no bar for one batch
        with torch.no_grad(), bar as advance:
            for start in range(0, count, batch_size):
                stop = min(start + batch_size, count)
                inputs, labels, ids = (split[k][start:stop].to(self.device) for k in ("inputs", "labels", "puzzle_ids"))
                answer = strategy.run(self.model, self.task, inputs, ids, compute)
                results = token_results(answer.tokens, labels)
                results.update(steps=answer.steps, **answer.halt_logits)
                metrics.update({k: v.cpu() for k, v in results.items()})
                predictions.append(answer.tokens.cpu())
                confidences.append(answer.confidence.cpu())
                segments.append(answer.steps.cpu())
                checked = checked or answer.checked
                advance(stop - start)
        return {
            "predictions": torch.cat(predictions),
            "confidence": torch.cat(confidences),
            "steps": torch.cat(segments),
            "count": count,
            "metrics": {k: float(v) for k, v in metrics.compute().items()},
            "compute": {"forward_passes": compute.forward_passes, "segment_calls": compute.segment_calls},
            "checked": checked,
        }


def as_split(batch: Split | torch.Tensor) -> Split:
    """A dict of inputs, labels and puzzle ids from a tensor of inputs or a dict that lacks some (nothing to score)."""
    split = {"inputs": batch} if torch.is_tensor(batch) else dict(batch)
    inputs = torch.as_tensor(split["inputs"])
    if inputs.ndim == 1:
        inputs = inputs.unsqueeze(0)
    split["inputs"] = inputs
    split.setdefault("labels", torch.full_like(inputs, IGNORE_LABEL, dtype=torch.long))
    split.setdefault("puzzle_ids", torch.zeros(len(inputs), dtype=torch.long))
    return split


def load_checkpoint(path: str | Path, device: str | None = None) -> TrainedModel:
    """The trained model of a checkpoint written by `latentreason run`, in eval mode.

    The model is built with the checkpoint's own number of puzzle identifiers, so loading needs no
    data; `TrainedModel.use_puzzle_names` then fits the table to the data at hand. A run trained
    with `trainer.ema` is loaded with its averaged weights, as its own evaluation used them.
    On a machine with a GPU the model goes there unless the run asked for the CPU.
    """
    checkpoint = read_checkpoint(path)  # weights_only; a damaged file is named with a good one of the same run
    config = OmegaConf.create(checkpoint["hyper_parameters"]["config"])
    task = build_task(config)
    weights = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    table = weights.get("puzzle.table")
    groups = task.position_groups()
    model = build_model(
        config, task.vocab_size, task.seq_len, table.shape[0] if table is not None else 1, False, groups
    )
    model.load_state_dict(weights)
    if checkpoint.get("ema"):
        model.load_state_dict({**model.state_dict(), **checkpoint["ema"]})
    model.eval()
    if "infer" not in config:  # how `eval` and `solve` find answers unless told otherwise: one pass
        config.infer = {"name": "single"}
    if device is None:
        device = "cuda" if on_gpu(config.trainer) else "cpu"
    return TrainedModel(model.to(device), task, config, checkpoint.get("puzzle_names"))
