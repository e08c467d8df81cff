"""`latentreason run -m ...`: a grid of runs through Hydra's multirun, and one table of their results.

The route. latentreason composes configs with Hydra's compose API (config.py: recipes, presets),
not with `@hydra.main`; a multirun, though, is `@hydra.main`'s job: it expands the grid (Hydra's
BasicSweeper), makes the sweep folder, and hands the jobs to a launcher plugin (basic: one after
the other; `hydra/launcher=joblib`: parallel local processes; `hydra/launcher=submitit_slurm`: SLURM
jobs). So the sweep is a small `@hydra.main` app over the same primary config: each job takes its
own overrides from Hydra (`HydraConfig`), composes them the usual way (`load_config`, preset
included) and trains through the same `train.run.run` as `latentreason run`, in its job folder
`<sweep dir>/<job number>`. Each job leaves `result.json` (its overrides, status and final
metrics); the summary reads those files, so it works for every launcher, local or remote.

Before anything is launched, every job of the grid is composed once: a bad value is one line, not
a Hydra traceback from inside a job.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from latentreason.console import console
from latentreason.errors import ConfigError

MULTIRUN_FLAGS = ("-m", "--multirun")
RESULT = "result.json"
SUMMARY = "summary.csv"
SHOWN = ("token_accuracy", "exact_accuracy", "q_halt_accuracy", "steps")  # the table's metric columns (the CSV has all)


def expand_grid(overrides: list[str]) -> list[list[str]]:
    """Every job's overrides, as Hydra's BasicSweeper orders them (the cartesian product, in the given order)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for override in parsed:
        key = override.get_key_element()
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        choices.append([f"{key}={value}" for value in values])
    return [list(job) for job in itertools.product(*choices)]


def _own(overrides: list[str], key: str) -> str | None:
    return next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key), None)


def sweep(args: list[str]) -> list[dict]:
    """Run the grid `args` describes (the -m flag removed) and return each job's result; prints the table."""
    import hydra

    from latentreason.catalogue import cards_dir
    from latentreason.config import _store_recipes, load_config

    hydra_args = [a for a in args if a.startswith("hydra") or a.startswith("--")]
    grid_args = [a for a in args if a not in hydra_args]
    jobs = expand_grid(grid_args)
    for job in jobs:  # compose each job once: bad values fail here, in one line
        load_config(job)
    sweep_dir = _own(hydra_args, "hydra.sweep.dir")
    if sweep_dir is None:
        sweep_dir = str(Path(_own(grid_args, "output_dir") or "runs") / "sweeps" / time.strftime("%Y%m%d-%H%M%S"))
        hydra_args.append(f"hydra.sweep.dir={sweep_dir}")
    console.print(f"Sweep of {len(jobs)} runs into {sweep_dir}")
    _store_recipes()  # the recipes and plugin cards, in Hydra's ConfigStore, as for every composition
    app = hydra.main(config_path=str(cards_dir()), config_name="config", version_base=None)(run_job)
    argv = sys.argv
    sys.argv = ["latentreason run", "--multirun", *grid_args, "hydra/job_logging=none", *hydra_args]
    try:
        app()
    except SystemExit as error:  # Hydra reports a failure of its own (a launcher's) and exits
        if error.code:
            raise ConfigError(
                f"Hydra could not launch the sweep (exit code {error.code}); see its message above."
            ) from None
    finally:
        sys.argv = argv
    results = read_results(Path(sweep_dir))
    show_summary(results, Path(sweep_dir))
    return results


def run_job(_config) -> dict:
    """One job of a sweep (module level: launchers pickle it). Never raises, so one bad job does not stop the others."""
    from hydra.core.hydra_config import HydraConfig

    from latentreason.config import load_config
    from latentreason.errors import DatasetFormatError
    from latentreason.train.run import run

    hydra_config = HydraConfig.get()
    overrides = [o for o in hydra_config.overrides.task if o.split("=", 1)[0] not in ("output_dir", "run_name")]
    job_dir = Path(hydra_config.runtime.output_dir)
    result: dict = {"job": int(hydra_config.job.num), "overrides": overrides, "status": "done", "metrics": {}}
    argv = sys.argv
    sys.argv = ["latentreason", "run", *overrides]  # what Lightning's DDP launcher would re-run: this job alone
    try:
        with outside_the_app():
            config = load_config([*overrides, f"output_dir='{job_dir.parent}'", f"run_name='{job_dir.name}'"])
        result["metrics"] = run(config, _own(overrides, "recipe"))
    except (ConfigError, DatasetFormatError, FileNotFoundError, FloatingPointError) as error:
        result["status"] = f"failed: {error}"
        console.print(f"[red]job {result['job']} failed:[/] {error}", markup=True)
    finally:
        sys.argv = argv
    (job_dir / RESULT).write_text(json.dumps(result, indent=1))
    return result["metrics"]


@contextmanager
def outside_the_app():
    """Compose with latentreason's own compose path inside a Hydra job: the app's Hydra steps aside meanwhile."""
    from hydra.core.global_hydra import GlobalHydra

    app = GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        if app is not None:
            GlobalHydra.instance().initialize(app)


def read_results(sweep_dir: Path) -> list[dict]:
    """Every job's result.json under `sweep_dir`, in job order."""
    results = [json.loads(p.read_text()) for p in sweep_dir.glob(f"*/{RESULT}")]
    return sorted(results, key=lambda r: r["job"])


def swept_keys(results: list[dict]) -> list[str]:
    """The override keys whose values differ between jobs (the grid's axes), in command-line order."""
    values: dict[str, set] = {}
    for r in results:
        for override in r["overrides"]:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    return [k for k, v in values.items() if len(v) > 1 or len(results) == 1]


def show_summary(results: list[dict], sweep_dir: Path) -> Path:
    """One rich table of every job's final metrics by its swept settings, and `summary.csv` (all overrides, all metrics)."""
    from rich.table import Table

    metrics = sorted({k for r in results for k in r["metrics"]})
    axes = swept_keys(results)
    settings = [dict(o.partition("=")[::2] for o in r["overrides"]) for r in results]
    path = sweep_dir / SUMMARY
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["job", *axes, "status", *metrics, "overrides"])
        for r, s in zip(results, settings):
            writer.writerow(
                [
                    r["job"],
                    *(s.get(k, "") for k in axes),
                    r["status"],
                    *(r["metrics"].get(k, "") for k in metrics),
                    " ".join(r["overrides"]),
                ]
            )
    table = Table(title=f"Sweep {sweep_dir} ({len(results)} runs)")
    shown = [k for k in SHOWN if k in metrics]
    for column in ("job", *axes, *shown, "status"):
        table.add_column(column, justify="right" if column in shown else "left")
    for r, s in zip(results, settings):
        values = [r["metrics"].get(k) for k in shown]
        cells = [
            "" if v is None or math.isnan(v) else (f"{v:.1%}" if k.endswith("accuracy") else f"{v:.2f}")
            for k, v in zip(shown, values)
        ]
        table.add_row(str(r["job"]), *(s.get(k, "") for k in axes), *cells, r["status"].split(":")[0])
    console.print(table)
    console.print(f"Every metric and override of every run: {path}")
    return path
