"""The numbers reported for every run: token accuracy, exact accuracy, Q-halt accuracy, mean steps."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class ReasoningMetrics(Metric):
    """Means over the rows given to `update` (in training: the rows that halted at that step)."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        for name in ("count", "token_accuracy", "exact_accuracy", "q_halt_accuracy", "steps"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, results: dict[str, torch.Tensor], rows: torch.Tensor | None = None) -> None:
        rows = results["counts"] > 0 if rows is None else rows & (results["counts"] > 0)
        self.count += rows.sum()
        self.token_accuracy += results["token_accuracy"][rows].double().sum()
        self.exact_accuracy += results["exact"][rows].sum()
        self.steps += results["steps"][rows].double().sum()
        if "q_halt" in results:  # the halt head is right when it predicts "exactly correct" correctly
            self.q_halt_accuracy += ((results["q_halt"][rows] >= 0) == results["exact"][rows]).sum()

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.count.clamp_min(1)
        return {
            "token_accuracy": self.token_accuracy / n,
            "exact_accuracy": self.exact_accuracy / n,
            "q_halt_accuracy": self.q_halt_accuracy / n,
            "steps": self.steps / n,
            "count": self.count,
        }
