"""Evaluate strategies on the same data and compare them: accuracy against the compute each one spent."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from latentreason.infer.base import build_strategy
from latentreason.infer.options import label
from latentreason.tasks.base import Split


def evaluate(
    trained,
    split: Split,
    config: Mapping[str, Any] | str = "single",
    batch_size: int | None = None,
    limit: int | None = None,
) -> dict:
    """`TrainedModel.predict` with the strategy `config` names, timed: predictions, metrics, compute, wall time."""
    strategy = build_strategy(config, trained)
    start = time.perf_counter()
    out = trained.predict(split, batch_size, limit, strategy)
    out["wall_s"] = time.perf_counter() - start
    out["strategy"] = label(config if not isinstance(config, str) else {"name": config})
    count = max(out["count"], 1)
    out["per_example"] = {
        "segments": out["metrics"]["steps"],
        "forward_passes": out["compute"]["forward_passes"] / count,
    }
    return out


def compare(results: list[dict], title: str) -> None:
    """One rich table: exact and token accuracy, segments and forward passes per example, compute, wall time."""
    from rich.table import Table

    from latentreason.console import console

    base = next((r for r in results if r["strategy"] == "single"), None)
    table = Table(title=title)
    for column in (
        "strategy",
        "exact",
        "token",
        "segments / ex",
        "forward passes / ex",
        "compute x single",
        "wall s",
        "validity check",
    ):
        table.add_column(column, justify="left" if column in ("strategy", "validity check") else "right")
    for r in results:
        passes = r["per_example"]["forward_passes"]
        ratio = (
            f"{passes / base['per_example']['forward_passes']:.1f}"
            if base and base["per_example"]["forward_passes"]
            else "-"
        )
        table.add_row(
            r["strategy"],
            f"{r['metrics']['exact_accuracy']:.2%}",
            f"{r['metrics']['token_accuracy']:.2%}",
            f"{r['per_example']['segments']:.2f}",
            f"{passes:.1f}",
            ratio,
            f"{r['wall_s']:.1f}",
            "used" if r["checked"] else "no",
        )
    console.print(table)
