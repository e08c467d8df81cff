"""`latentreason analyze`: look inside trained models and write figures, their numbers and one report.

For each checkpoint: one long trace of every example (more segments than it was trained with,
no halting) gives accuracy against segments, the halting sweeps and the per-example trajectories;
a short trace of the chosen examples keeps their latents (principal components) and intermediate
predictions (grids); a trace of a few examples watched update by update, for the trained model and
an untrained one of the same shape, gives the residuals and participation ratios.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from latentreason.analysis import measures
from latentreason.analysis.trace import SegmentTrace, concat, policy_halting_steps, trace
from latentreason.console import console, progress
from latentreason.inference import TrainedModel
from latentreason.model import build_model
from latentreason.tasks.base import Split

WHAT = ("segments", "halting", "examples", "grids", "convergence")
THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 20)]


@dataclass
class Settings:
    segments: int | None = None  # None: twice the training maximum
    limit: int = 512  # examples traced
    batch_size: int = 128
    examples: int = 10  # best and random examples for the trajectories
    grids: int = 3  # examples drawn segment by segment
    convergence_rows: int = 16  # examples watched update by update
    what: tuple[str, ...] = WHAT
    seed: int = 0


@dataclass
class CheckpointAnalysis:
    """The tables (name -> rows) and pictures (name -> PNG path, written by figures.py) of one checkpoint."""

    label: str
    max_steps: int
    tables: dict[str, list[dict]] = field(default_factory=dict)
    explained: list[float] = field(default_factory=list)
    grid_pngs: list[tuple[str, Path]] = field(default_factory=list)


def label_of(trained: TrainedModel, path: str | Path) -> str:
    """A short name for a checkpoint on shared figures: its run folder and core."""
    from latentreason.train.checkpoints import run_dir_of

    return f"{run_dir_of(Path(path).resolve()).name} ({trained.config.core.name})"


def untrained_twin(trained: TrainedModel, seed: int = 0):
    """A freshly initialised model of the same shape (same config, puzzle table size and device)."""
    table = trained.model.puzzle.table.shape[0] if trained.model.puzzle is not None else 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        twin = build_model(
            trained.config, trained.task.vocab_size, trained.task.seq_len, table, False, trained.task.position_groups()
        )
    return twin.to(trained.device).eval()


def rows_of(split: Split, index: slice | list[int], device) -> tuple[torch.Tensor, ...]:
    return tuple(split[k][index].to(device) for k in ("inputs", "labels", "puzzle_ids"))


def analyze_checkpoint(
    trained: TrainedModel, split: Split, label: str, settings: Settings, out: Path, advance
) -> CheckpointAnalysis:
    model, device = trained.model, trained.device
    max_steps = model.policy.max_steps
    segments = settings.segments or 2 * max_steps
    count = min(settings.limit, len(split["inputs"]))
    result = CheckpointAnalysis(label, max_steps)
    what = set(settings.what)

    traces: list[SegmentTrace] = []
    for start in range(0, count, settings.batch_size):
        stop = min(start + settings.batch_size, count)
        inputs, labels, ids = rows_of(split, slice(start, stop), device)
        traces.append(trace(model, inputs, labels, ids, segments, seed=settings.seed + start))
        advance(stop - start)
    full = concat(traces)
    if "segments" in what:
        result.tables["segments"] = [{"model": label, **r} for r in measures.accuracy_by_segments(full)]
    if "halting" in what:
        steps = policy_halting_steps(model, {k: v[:max_steps] for k, v in full.halt_logits.items()}, count)
        sweep = measures.halting_sweep(full, max_steps, THRESHOLDS, steps)
        result.tables["halting"] = [{"model": label, **r} for r in sweep]
    groups = measures.choose_examples(full, settings.examples, max_steps, settings.seed)
    if "examples" in what:
        result.tables["examples"] = [{"model": label, **r} for r in measures.example_trajectories(full, groups)]
    if "examples" in what or "grids" in what:
        chosen = list(dict.fromkeys(groups["best"] + groups["random"]))
        inputs, labels, ids = rows_of(split, chosen, device)
        # the same seed as the full trace's batch would differ for a latent-diffusion start: these rows are traced anew
        detail = trace(model, inputs, labels, ids, segments, keep_readouts="examples" in what, seed=settings.seed)
        if "examples" in what:
            table, explained = measures.principal_trajectories(detail.readouts, list(range(len(chosen))))
            position = {i: row for i, row in enumerate(chosen)}
            group = {row: ("best" if row in groups["best"] else "random") for row in chosen}
            result.tables["latent_pca"] = [
                {"model": label, "group": group[position[r["example"]]], **r, "example": position[r["example"]]}
                for r in table
            ]
            result.explained = explained
        if "grids" in what:
            result.grid_pngs = draw_grids(trained, split, chosen[: settings.grids], detail, out, label)
    if "convergence" in what:
        rows = min(settings.convergence_rows, count)
        inputs, labels, ids = rows_of(split, slice(0, rows), device)
        conv_segments = min(segments, max_steps)
        for name, subject in (("trained", model), ("untrained", untrained_twin(trained, settings.seed))):
            recorder = measures.Convergence(f"{label} {name}", len(subject.core.schedule()))
            trace(subject, inputs, labels, ids, conv_segments, observe=recorder, seed=settings.seed)
            result.tables.setdefault("residuals", []).extend(
                {**r, "model": label, "weights": name} for r in recorder.residuals
            )
            result.tables.setdefault("participation", []).extend(
                {**r, "model": label, "weights": name} for r in recorder.ratios
            )
    return result


def pick_segments(segments: int, max_steps: int, panels: int = 8) -> list[int]:
    """Which segments to draw: the first few, then spread up to the training maximum and the last traced."""
    chosen = {1, 2, 3, min(max_steps, segments), segments}
    spread = [round(1 + i * (segments - 1) / (panels - 1)) for i in range(panels)]
    for s in spread:
        if len(chosen) >= panels:
            break
        chosen.add(s)
    return sorted(s for s in chosen if 1 <= s <= segments)


def draw_grids(
    trained: TrainedModel, split: Split, rows: list[int], detail: SegmentTrace, out: Path, label: str
) -> list[tuple[str, Path]]:
    """Intermediate predictions of each row, segment by segment, as one PNG per row (seed 000, Figure 5)."""
    from latentreason.render import Panel, save_png

    task = trained.task
    if task.to_grid(split["inputs"][0]) is None:
        return []  # not a grid task (seq2seq): nothing to draw
    pictures = []
    chosen = pick_segments(detail.predictions.shape[0], trained.model.policy.max_steps)
    for i, row in enumerate(rows):
        panels = [Panel("puzzle", task.to_grid(split["inputs"][row]))]
        for k in chosen:
            mark = " ok" if bool(detail.exact[k - 1, i]) else f" {float(detail.token_accuracy[k - 1, i]):.0%}"
            panels.append(Panel(f"seg {k}{mark}", task.to_grid(detail.predictions[k - 1, i].long())))
        labels = split["labels"][row].clone()
        if bool((labels >= 0).all()):
            panels.append(Panel("answer", task.to_grid(labels)))
        path = save_png(panels, out / f"grids-{slug(label)}-example{row}.png", cell=14)
        pictures.append((f"example {row}", path))
    return pictures


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


def write_csv(rows: list[dict], path: Path) -> Path:
    """One table as CSV: the union of the rows' keys as columns, in first-seen order."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
    return path


def analyze(
    checkpoints: list[tuple[TrainedModel, Split, str]], settings: Settings, out: Path
) -> list[CheckpointAnalysis]:
    """Analyse each (model, data, label) with one progress bar over all of them."""
    out.mkdir(parents=True, exist_ok=True)
    total = sum(min(settings.limit, len(split["inputs"])) for _, split, _ in checkpoints)
    results = []
    with progress("Analysing", total) as advance:
        for trained, split, label in checkpoints:
            results.append(analyze_checkpoint(trained, split, label, settings, out, advance))
    console.print(f"Traced {total:,} examples over {len(checkpoints)} checkpoint(s)")
    return results
