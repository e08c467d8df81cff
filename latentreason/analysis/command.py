"""Parse `latentreason analyze ...` and run it: checkpoints and runs in, figures, CSVs and report.html out."""

from __future__ import annotations

import shlex
from pathlib import Path

from latentreason.console import console
from latentreason.errors import ConfigError

USAGE = (
    "usage: latentreason analyze ckpt=PATH [ckpt=PATH2 ...] [run=DIR ...] [data=FILE|test|train] "
    "[what=segments,halting,examples,grids,convergence] [segments=K] [limit=N] [batch_size=N] [examples=N] [out=DIR]"
)
REPEATABLE = ("ckpt", "run")
SINGLE = ("data", "what", "segments", "limit", "batch_size", "examples", "out", "device")


def parse(args: list[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """key=value arguments; `ckpt=` and `run=` may repeat, the others may not."""
    from latentreason.registry import close_matches

    lists: dict[str, list[str]] = {k: [] for k in REPEATABLE}
    options: dict[str, str] = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq:
            raise ConfigError(f"`latentreason analyze` takes key=value arguments, got {arg!r}; {USAGE}")
        if key in REPEATABLE:
            lists[key].append(value)
        elif key in SINGLE:
            if key in options:
                raise ConfigError(f"{key}= is given twice; only ckpt= and run= may repeat")
            options[key] = value
        else:
            allowed = REPEATABLE + SINGLE
            raise ConfigError(
                f"`latentreason analyze` has no option {key!r}; options: {', '.join(allowed)}."
                + close_matches(key, allowed)
            )
    if not lists["ckpt"] and not lists["run"]:
        raise ConfigError(f"nothing to analyse: give at least one ckpt= or run=; {USAGE}")
    return lists, options


def positive(options: dict[str, str], key: str, default: int | None) -> int | None:
    value = options.get(key)
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{key}={value!r} should be a positive integer")
    return int(value)


def settings_from(options: dict[str, str]):
    from latentreason.analysis.analyze import WHAT, Settings

    what = tuple(w for w in options.get("what", ",".join(WHAT)).split(",") if w)
    unknown = [w for w in what if w not in WHAT]
    if unknown or not what:
        raise ConfigError(f"what={options.get('what')!r}: choose from {','.join(WHAT)} (comma-separated)")
    defaults = Settings()
    return Settings(
        segments=positive(options, "segments", None),
        limit=positive(options, "limit", defaults.limit),
        batch_size=positive(options, "batch_size", defaults.batch_size),
        examples=positive(options, "examples", defaults.examples),
        what=what,
    )


def analyze_command(args: list[str]) -> Path:
    lists, options = parse(args)
    settings = settings_from(options)  # check every option before anything slow
    from latentreason.analysis.analyze import analyze, label_of
    from latentreason.analysis.curves import read_metrics, run_label
    from latentreason.analysis.figures import pyplot
    from latentreason.analysis.report import build_sections, write_report

    pyplot()  # a missing matplotlib is said before any work
    runs = {run_label(r): read_metrics(r) for r in lists["run"]}
    out = Path(options.get("out") or default_out(lists))
    checkpoints, sources = [], []
    if lists["ckpt"]:
        from latentreason.cli import read_data
        from latentreason.inference import load_checkpoint

        labels = set()
        for path in lists["ckpt"]:
            trained = load_checkpoint(path, options.get("device"))
            data = read_data(trained, options.get("data", "test"))
            label = label_of(trained, path)
            while label in labels:  # the same run given twice (e.g. two of its checkpoints)
                label += "'"
            labels.add(label)
            checkpoints.append((trained, data, label))
            sources.append(
                f"{label}: {path}, {min(settings.limit, len(data['inputs'])):,} examples of "
                f"{options.get('data', 'test')}, "
                f"trained with at most {trained.model.policy.max_steps} segments"
            )
    sources += [f"run {label}: {len(rows)} rows of metrics.csv" for label, rows in runs.items()]
    results = analyze(checkpoints, settings, out) if checkpoints else []
    sections = build_sections(results, runs, out)
    report = write_report(sections, out, "latentreason analyze " + " ".join(shlex.quote(a) for a in args), sources)
    console.print(f"Wrote {len(sections)} sections of figures and their CSVs to {out}; report: {report}")
    return report


def default_out(lists: dict[str, list[str]]) -> Path:
    """Beside the first checkpoint's run folder (or in the first run folder): <run>/analysis."""
    if lists["ckpt"]:
        from latentreason.train.checkpoints import run_dir_of

        return run_dir_of(Path(lists["ckpt"][0]).resolve()) / "analysis"
    return Path(lists["run"][0]).expanduser() / "analysis"
