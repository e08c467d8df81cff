"""Where a run's metrics go: Lightning's loggers, chosen by `trainer.logger`.

`csv` (the default) writes `metrics.csv` in the run folder; `tensorboard`, `wandb` (offline unless
told otherwise) and `mlflow` (a local file store unless told otherwise) are Lightning's own loggers,
built with the options of `trainer.logger_options.<name>` passed through. Several at once:
`trainer.logger=[csv,tensorboard]`. Every logger receives the full config as hyperparameters
(the module's `save_hyperparameters`).
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf

from latentreason.errors import ConfigError

# name -> (the package it needs, the extra that installs it)
TRACKERS = {
    "csv": (None, None),
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}


def kept_rows(path: Path, keep_before: int) -> tuple[list[str], list[dict]]:
    """The header and the rows of a metrics.csv whose step is before `keep_before`."""
    if not path.is_file():
        return [], []
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if (r.get("step") or "").isdigit() and int(r["step"]) < keep_before]
    return fields, rows


class MetricsLogger(CSVLogger):
    """`metrics.csv` in the run folder; a run resumed in its own folder keeps the rows before the resumed step.

    Lightning's CSV writer starts a fresh file when it is made, so the rows to keep are read first
    and written back, with their header, as soon as the writer exists (before any new row).
    """

    def __init__(self, run_dir: Path, keep_before: int | None = None):
        super().__init__(run_dir, name="", version="")
        self._kept = (
            kept_rows(Path(run_dir) / "metrics.csv", keep_before)
            if keep_before is not None and rank_zero_only.rank == 0
            else None
        )

    @property
    def experiment(self):
        writer = super().experiment
        if self._kept is not None:
            fields, rows = self._kept
            self._kept = None
            if fields:
                with open(writer.metrics_file_path, "w", newline="") as file:
                    out = csv.DictWriter(file, fieldnames=fields)
                    out.writeheader()
                    out.writerows(rows)
                writer.metrics_keys = fields
        return writer


def logger_names(config: DictConfig) -> list[str]:
    """`trainer.logger` as a list of names, checked."""
    value = config.trainer.get("logger", "csv")
    if value is None or value is False:
        return []
    names = list(value) if isinstance(value, (list, tuple, ListConfig)) else [str(value)]
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ConfigError(
            f"trainer.logger={unknown[0]!r} is not a logger; choose from {', '.join(TRACKERS)}, or a list: trainer.logger=[csv,tensorboard]."
        )
    for name in names:
        package, extra = TRACKERS[name]
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"trainer.logger={name} needs the {package} package: pip install 'latentreason[{extra}]'."
            )
    return names


def build_loggers(config: DictConfig, run_dir: Path, run_name: str, resumed_step: int | None) -> list[Logger]:
    """The loggers `trainer.logger` names, each with its `trainer.logger_options.<name>` passed through."""
    options = OmegaConf.to_container(config.trainer.get("logger_options") or {}, resolve=True)
    loggers: list[Logger] = []
    for name in logger_names(config):
        extra = dict(options.get(name) or {})
        if name == "csv":
            loggers.append(MetricsLogger(run_dir, keep_before=resumed_step))
        elif name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(
                TensorBoardLogger(
                    **{
                        "save_dir": str(run_dir),
                        "name": "tensorboard",
                        "version": "",
                        "default_hp_metric": False,
                        **extra,
                    }
                )
            )
        elif name == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            os.environ.setdefault("WANDB_SILENT", "true")
            loggers.append(
                WandbLogger(
                    **{"save_dir": str(run_dir), "name": run_name, "project": "latentreason", "offline": True, **extra}
                )
            )
        elif name == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            uri = (
                Path(config.output_dir).resolve() / "mlruns"
            ).as_uri()  # one local store for all the runs of output_dir
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for a database unless told this
            loggers.append(
                MLFlowLogger(**{"experiment_name": "latentreason", "run_name": run_name, "tracking_uri": uri, **extra})
            )
    return loggers
