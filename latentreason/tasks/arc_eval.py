"""ARC evaluation: vote over the augmented variants of each test input, then score pass@k and write a submission.

Every test input is predicted once per augmentation (a dihedral transform and a colour
permutation). Each prediction is cropped at its end-of-grid markers and mapped back by the
inverse augmentation; identical answers vote. Answers are ranked by votes, ties broken by the mean
halting confidence sigmoid(q_halt) of their voters, as in the HRM and TRM evaluators.

Two scoring rules, both reported:
- `all_inputs` (HRM's notebook): a task counts at k only if every one of its test inputs has the
  right answer among its top k;
- `per_input` (TRM's evaluator): a task scores the fraction of its test inputs whose right answer
  is among the top k.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Grid = np.ndarray


def grid_key(grid: Grid) -> tuple:
    grid = np.asarray(grid, dtype=np.uint8)
    return (grid.shape, grid.tobytes())


@dataclass
class Candidate:
    grid: Grid
    votes: int = 0
    confidence_sum: float = 0.0
    first_seen: int = 0  # order of first appearance: the last tie-break, so ranking is deterministic

    @property
    def confidence(self) -> float:
        return self.confidence_sum / max(self.votes, 1)


def rank(grids: list[Grid], confidences: list[float]) -> list[Candidate]:
    """Distinct answers, best first: most votes, then highest mean confidence, then first seen."""
    found: dict[tuple, Candidate] = {}
    for index, (grid, confidence) in enumerate(zip(grids, confidences)):
        key = grid_key(grid)
        if key not in found:
            found[key] = Candidate(np.asarray(grid, dtype=np.uint8), first_seen=index)
        found[key].votes += 1
        found[key].confidence_sum += float(confidence)
    return sorted(found.values(), key=lambda c: (-c.votes, -c.confidence, c.first_seen))


@dataclass
class TestInput:
    """The ranked answers for one test input of one task, and its true output if known."""

    candidates: list[Candidate] = field(default_factory=list)
    truth: Grid | None = None

    def correct_within(self, k: int) -> bool:
        return self.truth is not None and any(grid_key(c.grid) == grid_key(self.truth) for c in self.candidates[:k])


def pass_at_k(tasks: dict[str, dict[int, TestInput]], ks=(1, 2)) -> dict[str, float]:
    """pass@k by both rules over the tasks whose test outputs are all known.

    Keys: `pass@k` (all test inputs right, HRM) and `pass@k_per_input` (partial credit, TRM), and
    `scored_tasks`.
    """
    scored = {t: inputs for t, inputs in tasks.items() if inputs and all(i.truth is not None for i in inputs.values())}
    out: dict[str, float] = {"scored_tasks": float(len(scored))}
    for k in ks:
        whole = [all(i.correct_within(k) for i in inputs.values()) for inputs in scored.values()]
        partial = [np.mean([i.correct_within(k) for i in inputs.values()]) for inputs in scored.values()]
        out[f"pass@{k}"] = float(np.mean(whole)) if scored else float("nan")
        out[f"pass@{k}_per_input"] = float(np.mean(partial)) if scored else float("nan")
    return out


def collect(rows: list[tuple[str, int, Grid, float, Grid | None]]) -> dict[str, dict[int, TestInput]]:
    """Group de-augmented predictions `(task_id, test_index, grid, confidence, truth)` by test input and rank them."""
    grouped: dict[str, dict[int, tuple[list, list, Grid | None]]] = defaultdict(dict)
    for task_id, test_index, grid, confidence, truth in rows:
        grids, confidences, known = grouped[task_id].setdefault(test_index, ([], [], truth))
        grids.append(grid)
        confidences.append(confidence)
        if known is None and truth is not None:
            grouped[task_id][test_index] = (grids, confidences, truth)
    return {
        task_id: {i: TestInput(rank(g, c), truth) for i, (g, c, truth) in sorted(inputs.items())}
        for task_id, inputs in sorted(grouped.items())
    }


def submission(tasks: dict[str, dict[int, TestInput]]) -> dict[str, list[dict[str, list[list[int]]]]]:
    """The ARC Prize format: for every task, one {"attempt_1", "attempt_2"} per test input, in order.

    Attempt 2 repeats attempt 1 when only one distinct answer was predicted; an input with no
    usable prediction (nothing decoded) gets [[0]], so the file always has the expected shape.
    """
    out = {}
    for task_id, inputs in tasks.items():
        entries = []
        for index in range(max(inputs) + 1):
            answers = [c.grid.tolist() for c in inputs[index].candidates if c.grid.size] if index in inputs else []
            answers = (answers or [[[0]]])[:2]
            entries.append({"attempt_1": answers[0], "attempt_2": answers[-1]})
        out[task_id] = entries
    return out


def write_json(obj, path: str | Path) -> Path:
    """Write JSON atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)
    return path
