"""The numbers behind each figure, computed from recorded traces: plain tables (lists of dicts) ready for CSV.

Every function here is a pure function of a `SegmentTrace` (or of recorded states), so each can be
checked against a direct computation and plotted for any core.
"""

from __future__ import annotations

import torch

from latentreason.analysis.trace import SegmentTrace

Table = list[dict]

# Rules of Ge, Liao & Poggio (Figure 3): halt at the first segment where the probability exceeds t.
HALT_RULES = {
    "sigmoid(q_halt)": lambda h: torch.sigmoid(h["q_halt"]),
    "sigmoid(q_halt - q_continue)": lambda h: torch.sigmoid(h["q_halt"] - h["q_continue"]),
}


def _mean(values: torch.Tensor, rows: torch.Tensor) -> float:
    return float(values[rows].double().mean()) if bool(rows.any()) else float("nan")


def accuracy_by_segments(tr: SegmentTrace) -> Table:
    """Token and exact accuracy when every row gets exactly k segments, k = 1..K (seed 000, Figure 2)."""
    rows = tr.labelled
    return [
        {
            "segments": k + 1,
            "token_accuracy": _mean(tr.token_accuracy[k], rows),
            "exact_accuracy": _mean(tr.exact[k], rows),
        }
        for k in range(tr.token_accuracy.shape[0])
    ]


def at_steps(tr: SegmentTrace, steps: torch.Tensor) -> dict:
    """Token accuracy, exact accuracy and mean segments when row i is read after `steps[i]` segments."""
    index = (steps.long() - 1).clamp(0, tr.token_accuracy.shape[0] - 1).unsqueeze(0)
    rows = tr.labelled
    return {
        "token_accuracy": _mean(tr.token_accuracy.gather(0, index)[0], rows),
        "exact_accuracy": _mean(tr.exact.gather(0, index)[0], rows),
        "mean_segments": _mean(steps.double(), rows),
    }


def first_above(probability: torch.Tensor, threshold: float, max_steps: int) -> torch.Tensor:
    """Per row, the first segment (1-based) whose probability exceeds `threshold`, else `max_steps`."""
    above = probability[:max_steps] > threshold
    above[max_steps - 1] = True  # nobody runs past max_steps
    return above.float().argmax(0).int() + 1  # argmax returns the first maximum


def halting_sweep(
    tr: SegmentTrace, max_steps: int, thresholds: list[float], policy_steps: torch.Tensor | None = None
) -> Table:
    """Accuracy and mean segments against the threshold of each halting rule the logits allow (Figure 3).

    `policy_steps` (from `policy_halting_steps`) adds the model's own rule, one row with no threshold.
    """
    table = []
    for rule, probability in HALT_RULES.items():
        try:
            p = probability(tr.halt_logits)
        except KeyError:  # e.g. halt_only has no q_continue; fixed has no head at all
            continue
        for t in thresholds:
            table.append({"rule": rule, "threshold": t, **at_steps(tr, first_above(p, t, max_steps))})
    if policy_steps is not None:
        table.append({"rule": "policy", "threshold": float("nan"), **at_steps(tr, policy_steps)})
    table.append(
        {
            "rule": "max_steps",
            "threshold": float("nan"),
            **at_steps(tr, torch.full_like(tr.labelled, max_steps, dtype=torch.int32)),
        }
    )
    return table


def choose_examples(tr: SegmentTrace, count: int, max_steps: int, seed: int = 0) -> dict[str, list[int]]:
    """The `count` best rows (most often exactly right over the first max_steps segments, then highest
    token accuracy) and `count` random rows, as in seed 000's Figure 4."""
    rows = torch.nonzero(tr.labelled).flatten()
    horizon = min(max_steps, tr.exact.shape[0])
    score = tr.exact[:horizon, rows].double().sum(0) * 2 + tr.token_accuracy[:horizon, rows].double().mean(0)
    best = rows[torch.argsort(score, descending=True, stable=True)[:count]].tolist()
    generator = torch.Generator().manual_seed(seed)
    chosen = rows[torch.randperm(len(rows), generator=generator)[:count]].tolist()
    return {"best": best, "random": chosen}


def example_trajectories(tr: SegmentTrace, groups: dict[str, list[int]]) -> Table:
    """Per chosen row and segment: token accuracy, exactness, share of cells whose prediction changed, logit change."""
    table = []
    for group, rows in groups.items():
        for row in rows:
            for k in range(tr.predictions.shape[0]):
                changed = (
                    float((tr.predictions[k, row] != tr.predictions[k - 1, row]).double().mean()) if k else float("nan")
                )
                table.append(
                    {
                        "group": group,
                        "example": row,
                        "segments": k + 1,
                        "token_accuracy": float(tr.token_accuracy[k, row]),
                        "exact": int(tr.exact[k, row]),
                        "changed_cells": changed,
                        "logit_change": float(tr.logit_change[k, row]),
                    }
                )
    return table


def principal_trajectories(readouts: torch.Tensor, rows: list[int], components: int = 2) -> tuple[Table, list[float]]:
    """Each chosen row's latent (the heads' input, flattened over positions) from segment 0 to K,
    projected on the first principal components of all those points together; with the share of
    variance each component explains."""
    points = readouts[:, rows].flatten(2)  # (K + 1, n, L * H)
    steps, n = points.shape[:2]
    flat = points.reshape(steps * n, -1).double()
    centred = flat - flat.mean(0, keepdim=True)
    _, s, v = torch.linalg.svd(centred, full_matrices=False)
    variance = s**2
    explained = (variance[:components] / variance.sum().clamp_min(1e-30)).tolist()
    projected = (centred @ v[:components].T).reshape(steps, n, components)
    table = [
        {"example": row, "segments": k, **{f"pc{c + 1}": float(projected[k, i, c]) for c in range(components)}}
        for i, row in enumerate(rows)
        for k in range(steps)
    ]
    return table, explained


def relative_change(new: torch.Tensor, old: torch.Tensor) -> float:
    """||new - old|| / ||new|| per row (norms over all positions and features), averaged over rows."""
    diff = (new.float() - old.float()).flatten(1).norm(dim=1)
    return float((diff / new.float().flatten(1).norm(dim=1).clamp_min(1e-12)).mean())


class Convergence:
    """An observer for `trace` that records, for one model, the residual ||z_t - z_{t-1}|| / ||z_t|| of
    every state field at every update of every segment (the HRM paper's forward-residual figure;
    `update` counts updates from the start of segment 1), and each field's participation ratio at
    the end of every segment."""

    def __init__(self, label: str, schedule_length: int):
        self.label, self.schedule_length = label, schedule_length
        self.residuals: Table = []
        self.ratios: Table = []

    def __call__(self, segment: int, index: int, update, before: dict, after: dict) -> None:
        for name, value in after.items():
            if value.shape[-1] <= 1:  # scalars such as a noise level are not latents
                continue
            self.residuals.append(
                {
                    "model": self.label,
                    "update": (segment - 1) * self.schedule_length + index + 1,
                    "segment": segment,
                    "index_in_segment": index + 1,
                    "update_name": update.name,
                    "field": name,
                    "written": name == update.writes,
                    "residual": relative_change(value, before[name]),
                }
            )
            if index == self.schedule_length - 1:
                self.ratios.append(
                    {
                        "model": self.label,
                        "segment": segment,
                        "field": name,
                        "participation_ratio": participation_ratio(value),
                    }
                )


def participation_ratio(states: torch.Tensor) -> float:
    """Effective dimensionality (sum of covariance eigenvalues)^2 / sum of their squares, over all
    rows and positions taken as samples of a `hidden`-dimensional vector."""
    samples = states.reshape(-1, states.shape[-1]).double()
    if samples.shape[0] < 2:
        return float("nan")
    eigen = torch.linalg.eigvalsh(torch.cov(samples.T)).clamp_min(0)
    total = float(eigen.sum())
    return total**2 / float((eigen**2).sum()) if total > 0 else float("nan")
