"""The numbers reported for every run: token accuracy, exact accuracy, Q-halt accuracy, mean steps."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class ReasoningMetrics(Metric):
    """Means over the rows given to `update` (in training: the rows that halted at that step)."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        for name in ("count", "token_accuracy", "exact_accuracy", "q_halt_accuracy", "q_halt_count", "steps"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, results: dict[str, torch.Tensor], rows: torch.Tensor | None = None) -> None:
        # Masked sums rather than boolean indexing: no device-to-host wait in the training step.
        rows = results["counts"] > 0 if rows is None else rows & (results["counts"] > 0)
        weight = rows.double()
        self.count += weight.sum()
        self.token_accuracy += (results["token_accuracy"].double() * weight).sum()
        self.exact_accuracy += (results["exact"].double() * weight).sum()
        self.steps += (results["steps"].double() * weight).sum()
        if "q_halt" in results:  # the halt head is right when it predicts "exactly correct" correctly
            self.q_halt_accuracy += (((results["q_halt"] >= 0) == results["exact"]).double() * weight).sum()
            self.q_halt_count += weight.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.count.clamp_min(1)
        return {
            "token_accuracy": self.token_accuracy / n,
            "exact_accuracy": self.exact_accuracy / n,
            # NaN when the halting policy has no q_halt head (e.g. `fixed`): there is nothing to be right about
            "q_halt_accuracy": self.q_halt_accuracy / self.q_halt_count
            if self.q_halt_count > 0
            else torch.tensor(float("nan"), dtype=torch.float64),
            "steps": self.steps / n,
            "count": self.count,
        }
