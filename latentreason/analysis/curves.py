"""Training curves from a run folder's metrics.csv (`latentreason analyze run=DIR`)."""

from __future__ import annotations

import csv
from pathlib import Path

from latentreason.errors import ConfigError, DatasetFormatError


def metrics_file(run: str | Path) -> Path:
    """The metrics.csv of a run folder (or the file itself), or a one-line error naming what is missing."""
    path = Path(run).expanduser()
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise ConfigError(
            f"run={run}: no metrics.csv there; give a run folder written by `latentreason run` (it holds metrics.csv)"
        )
    return path


def read_metrics(run: str | Path) -> list[dict]:
    """The rows of a run's metrics.csv with numbers as floats (empty cells left out), sorted by step.

    Lightning writes training and evaluation metrics on separate rows of the same file, so each
    row holds only some columns.
    """
    path = metrics_file(run)
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        if not reader.fieldnames or "step" not in reader.fieldnames:
            raise DatasetFormatError(f"{path}: not a metrics.csv of latentreason (no 'step' column)")
        rows = []
        for line, row in enumerate(reader, start=2):
            values = {}
            for key, text in row.items():
                if text in ("", None):
                    continue
                try:
                    values[key] = float(text)
                except ValueError:
                    raise DatasetFormatError(
                        f"{path}, line {line}: column {key!r} holds {text!r}, not a number"
                    ) from None
            rows.append(values)
    return sorted(rows, key=lambda r: r.get("step", 0.0))


def run_label(run: str | Path) -> str:
    path = Path(run).expanduser().resolve()
    return path.parent.name if path.is_file() else path.name
