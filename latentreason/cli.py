"""The `latentreason` command: run, list, data, eval, solve, import, bench, analyze.

Arguments are Hydra-style `key=value` overrides. A bare `latentreason key=value ...` means `run`,
so that Lightning's multi-process launcher, which re-runs the command line, works unchanged.

Each command is one `cmd_*` function in COMMANDS; its docstring is its help: the first line is its
summary in `latentreason --help`, the whole text is `latentreason <command> --help` (a usage line,
its options, an example). A new command is a function with such a docstring and an entry in COMMANDS.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from latentreason.console import console

HELP_FLAGS = ("-h", "--help")


def _key_values(args: list[str], allowed: set[str], command: str) -> tuple[dict[str, str], list[str]]:
    from latentreason.errors import ConfigError
    from latentreason.registry import close_matches

    options, rest = {}, []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key in allowed:
            options[key] = value
        elif eq:
            raise ConfigError(
                f"`latentreason {command}` has no option {key!r}; options: {', '.join(sorted(allowed))}.{close_matches(key, allowed)}"
            )
        else:
            rest.append(arg)
    return options, rest


def cmd_run(args: list[str]) -> None:
    """Train a model from a recipe, evaluate it on the held-out split, save a checkpoint.

    usage: latentreason run recipe=NAME [preset=auto|cpu|paper] [key=value ...] [--dry-run]

    options:
      recipe=NAME         a recipe (latentreason list recipe); its parts: core=, grad=, halt=, task=, optim=
      preset=auto         cpu: the recipe's small CPU preset; paper: its paper configuration; auto: cpu without a GPU
      key=value           any config setting, e.g. core.H_cycles=3 trainer.max_steps=2000 seed=1
      trainer.logger=csv  where metrics go: csv, tensorboard, wandb, mlflow, or [csv,tensorboard]
      resume=PATH         continue a stopped run from its checkpoints/last.ckpt
      --dry-run           print the composed config and the parameter count, train nothing
      -m, --multirun      a sweep: every combination of comma-separated values, one run folder each, a summary
                          table (docs/sweeps.md); hydra/launcher=joblib runs them in parallel

    examples:
      latentreason run recipe=hrm_sudoku preset=cpu trainer.max_steps=200
      latentreason run -m recipe=hrm_sudoku,lonly_sudoku seed=0,1,2
    """
    from latentreason.config import load_config
    from latentreason.errors import ConfigError
    from latentreason.sweep import MULTIRUN_FLAGS, sweep
    from latentreason.train.run import run

    if any(a in MULTIRUN_FLAGS for a in args):
        if "--dry-run" in args:
            raise ConfigError("--dry-run checks one run; drop -m to check a sweep's settings one combination at a time")
        sweep([a for a in args if a not in MULTIRUN_FLAGS])
        return
    dry_run = "--dry-run" in args
    args = [a for a in args if a != "--dry-run"]
    config = load_config(args)
    recipe = next((a.split("=", 1)[1] for a in args if a.startswith("recipe=")), None)
    if config.preset == "cpu" and not any(a.startswith("preset=") for a in args):
        console.print(
            f"[yellow]No GPU found: using the small CPU preset of {recipe or 'this recipe'} (preset=paper for the paper configuration).[/]"
        )
    if dry_run:
        from omegaconf import OmegaConf

        from latentreason.tasks.base import build_task
        from latentreason.train.run import check_run_config, make_module

        check_run_config(config)
        model = make_module(
            config, build_task(config), num_puzzle_ids=1
        ).model  # the puzzle table is a buffer, not counted: no need to build the data
        console.print(OmegaConf.to_yaml(config))
        console.print(
            f"{recipe or 'run'} ({config.preset} preset): {sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable parameters"
        )
        return
    run(config, recipe)


def cmd_data(args: list[str]) -> None:
    """Build the dataset of a recipe and cache it, or download a paper's dataset (`data fetch`).

    usage: latentreason data recipe=NAME [preset=auto|cpu|paper] [key=value ...]
           latentreason data fetch NAME [dir=PATH]     (latentreason data fetch --help: the datasets)

    options:
      recipe=NAME         the recipe whose task to build (latentreason list recipe)
      task.KEY=VALUE      any task setting, e.g. task.train_puzzles=1000
      fetch NAME          download sudoku-extreme, maze-30x30-hard, arc-agi-1, arc-agi-2 or concept-arc

    example:
      latentreason data recipe=hrm_sudoku preset=cpu
      latentreason data fetch sudoku-extreme
    """
    if args and args[0] == "fetch":
        from latentreason.fetch import command

        return command(args[1:])
    if not args:  # no recipe: say how to use it rather than build the default 9x9 paper-size data
        console.print(command_help("data"), markup=False, highlight=False)
        return None
    from latentreason.config import load_config
    from latentreason.datasets import cache_root
    from latentreason.tasks.base import build_task

    task = build_task(load_config(args))
    splits = task.splits()
    console.print(
        f"{task.describe()}: {len(splits['train']['inputs']):,} training and {len(splits['test']['inputs']):,} held-out examples, cached in {cache_root(task.cache_dir)}"
    )


def cmd_list(args: list[str]) -> None:
    """List the registered components (built-in and plugins) and the recipes.

    usage: latentreason list [KIND]

    options:
      KIND                only this kind: a component kind (core, grad, halt, task, ...) or recipe

    example:
      latentreason list halt
    """
    from rich.table import Table

    from latentreason import catalogue, registry
    from latentreason.errors import ConfigError

    kinds = list(registry.KINDS) + ["recipe"]
    if len(args) > 1:
        raise ConfigError(
            f"`latentreason list` takes at most one kind, got {' '.join(args)}; kinds: {', '.join(kinds)}."
        )
    kind = args[0] if args else None
    if kind and kind not in kinds:
        raise ConfigError(f"Unknown kind {kind!r}; kinds: {', '.join(kinds)}.{registry.close_matches(kind, kinds)}")
    table = Table(title="latentreason components and recipes")
    for column in ("kind", "name", "origin", "what it is"):
        table.add_column(column)
    cards = {k: set(catalogue.config_options(k)) for k in registry.KINDS}  # each folder globbed once
    for entry in registry.entries(None if kind in (None, "recipe") else kind):
        if kind != "recipe":
            has_card = entry.name in cards[entry.kind]
            table.add_row(entry.kind, entry.name, entry.origin + ("" if has_card else " (no card)"), entry.summary)
    if kind in (None, "recipe"):
        for name, (path, origin) in catalogue.config_options("recipe").items():
            text = path.read_text()
            first = text.splitlines()[0].lstrip("# ").strip() if text else ""
            table.add_row("recipe", name, origin, first)
    console.print(table)


def cmd_eval(args: list[str]) -> None:
    """Score a checkpoint: token and exact accuracy (ARC: pass@k and a submission.json).

    usage: latentreason eval ckpt=PATH [data=test|train|FILE] [solutions=FILE] [limit=N] [batch_size=N] [out=DIR]
                             [infer=NAME[,NAME ...]] [infer.KEY=VALUE ...]

    options:
      ckpt=PATH           a checkpoint of `latentreason run` (runs/<run>/final.ckpt)
      data=test           the held-out split (default), the training split, or a data file of the task
      solutions=FILE      ARC: the solutions of a combined challenges file given as data=
      limit=N             only the first N examples
      batch_size=N        examples per forward pass (default: the run's trainer.eval_batch_size)
      out=DIR             where task scores are written (default: <run>/eval-<data>)
      infer=NAME,...      inference strategies (single, more_steps, noise_select, augment_vote, ensemble, fill:
                          latentreason list infer), compared in one table with their compute
      infer.KEY=VALUE     a strategy's setting, e.g. infer.samples=16 infer.sigma=0.2

    example:
      latentreason eval ckpt=runs/hrm_sudoku-cpu-20250101-120000/final.ckpt limit=500
      latentreason eval ckpt=runs/hrm_sudoku-cpu-20250101-120000/final.ckpt infer=single,augment_vote
    """
    from latentreason.errors import ConfigError
    from latentreason.infer import compare, evaluate
    from latentreason.infer.options import parse
    from latentreason.inference import load_checkpoint
    from latentreason.train.run import format_scores

    asked = any(a.partition("=")[0] == "infer" or a.startswith("infer.") for a in args)
    allowed = {"ckpt", "data", "solutions", "limit", "batch_size", "out"}
    options, rest = _key_values(_without_infer(args), allowed, "eval")
    if "ckpt" not in options or rest:
        raise ConfigError(
            "usage: latentreason eval ckpt=PATH [data=FILE|test|train] [solutions=FILE] [limit=N] [out=DIR] "
            "[infer=NAME[,NAME]] [infer.KEY=VALUE]"
        )
    trained = load_checkpoint(options["ckpt"])
    strategies, _ = parse(args, trained.config.infer)
    task, config = trained.task, trained.config
    source = options.get("data", "test")
    data = read_data(trained, source, options.get("solutions"))
    limit, batch_size = (
        _positive(options, "limit", len(data["inputs"])),
        _positive(options, "batch_size", int(config.trainer.eval_batch_size)),
    )
    results = []
    for strategy in strategies:
        out = evaluate(trained, data, strategy, batch_size, limit)
        results.append(out)
        m = out["metrics"]
        name = f" [{out['strategy']}]" if asked else ""
        line = f"token accuracy {m['token_accuracy']:.2%}, exact accuracy {m['exact_accuracy']:.2%}"
        line += f", mean steps {m['steps']:.2f}"
        console.print(f"{source}{name}: {int(m['count']):,} examples, {line}", markup=False)
        if task.scores_predictions:
            # the rows predicted (limit=)
            predicted = {k: v if k == "names" else v[: out["count"]] for k, v in data.items()}
            from latentreason.train.checkpoints import run_dir_of

            run_dir = run_dir_of(Path(options["ckpt"]).resolve())
            out_dir = Path(options.get("out") or run_dir / f"eval-{Path(source).stem}")
            if len(strategies) > 1:
                out_dir = out_dir / out["strategy"].replace(" ", "").replace("/", "_")
            scores = task.score(predicted, out["predictions"], out["confidence"], out_dir)
            if scores:
                console.print(f"{type(task).__name__} scores{name}: {format_scores(scores)}", markup=False)
    if asked:
        device = "GPU" if trained.device.type == "cuda" else "CPU"
        compare(results, f"{source}: {results[0]['count']:,} examples, {device}, batch size {batch_size}")


def _without_infer(args: list[str]) -> list[str]:
    return [a for a in args if not (a.partition("=")[0] == "infer" or a.startswith("infer."))]


def read_data(trained, source: str, solutions: str | None = None):
    """The examples `data=` names for a checkpoint (its task's test or train split, rebuilt if not cached,
    or a file), with the checkpoint's puzzle table fitted to them."""
    from latentreason.errors import ConfigError

    task = trained.task
    if source in ("test", "train"):
        data = task.splits()[source]
    elif solutions is not None:
        if not hasattr(task, "eval_solutions"):
            raise ConfigError(
                f"solutions= is for ARC checkpoints (a combined challenges file and its solutions); this checkpoint's task is {trained.config.task.name}"
            )
        data = task.read_file(source, solutions=solutions)
    else:
        data = task.read_file(source)
    trained.use_puzzle_names(data)
    return data


def _positive(options: dict[str, str], key: str, default: int) -> int:
    from latentreason.errors import ConfigError

    value = options.get(key, str(default))
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{key}={value!r} should be a positive integer")
    return int(value)


def cmd_solve(args: list[str]) -> None:
    """Solve one puzzle with a checkpoint and show the grids (and save them as a PNG).

    usage: latentreason solve ckpt=PATH PUZZLE [png=FILE] [infer=NAME] [infer.KEY=VALUE ...]

    options:
      ckpt=PATH           a checkpoint of `latentreason run`
      PUZZLE              the puzzle on one line (Sudoku: 81 digits, 0 or . for blanks), or a file holding it;
                          ARC: a task .json
      png=FILE            also save the grids as a PNG
      infer=NAME          an inference strategy (default single; latentreason list infer)

    example:
      latentreason solve ckpt=runs/hrm_sudoku-cpu-20250101-120000/final.ckpt 530070000600195000098000060800060003400803001700020006060000280000419005000080079
    """
    from latentreason.errors import ConfigError
    from latentreason.infer import evaluate
    from latentreason.infer.options import parse
    from latentreason.inference import load_checkpoint
    from latentreason.render import save_png, show

    options, rest = _key_values(_without_infer(args), {"ckpt", "png"}, "solve")
    if "ckpt" not in options or len(rest) != 1:
        raise ConfigError(
            "usage: latentreason solve ckpt=PATH PUZZLE [png=FILE] [infer=NAME] [infer.KEY=VALUE] "
            "(PUZZLE: the puzzle on one line, or a file holding it; ARC: a task .json)"
        )
    trained = load_checkpoint(options["ckpt"])
    strategies, _ = parse(args, trained.config.infer)
    if len(strategies) != 1:
        raise ConfigError("solve takes one inference strategy (infer=NAME); to compare several, use eval")
    task = trained.task
    split = task.puzzle_split(rest[0])
    trained.use_puzzle_names(split)
    out = evaluate(trained, split, strategies[0])
    panels = task.present(split, out["predictions"], out["confidence"])
    show(panels)
    steps = out["steps"].float()
    how = ""
    if strategies[0]["name"] != "single":
        how = f" ({out['strategy']}, {out['per_example']['forward_passes']:.0f} forward passes per puzzle)"
    if len(steps) == 1:
        console.print(f"after {int(steps[0])} segments{how}", markup=False)
    else:
        console.print(f"{len(steps)} variants, after {steps.mean():.1f} segments on average{how}", markup=False)
    if "png" in options:
        console.print(f"Saved {save_png(panels, options['png'])}")


def cmd_import(args: list[str]) -> None:
    """Convert a checkpoint of the HRM/TRM reference code (sapientinc/HRM's or TinyRecursiveModels' pretrain.py) into ours.

    usage: latentreason import ckpt=FILE recipe=NAME [out=PATH] [identifiers=FILE] [key=value ...]

    options:
      ckpt=FILE           a state dict saved by the reference's pretrain.py (compiled or not)
      recipe=NAME         the recipe whose model it is (with key=value settings for its sizes)
      out=PATH            where to write our checkpoint
      identifiers=FILE    the reference's identifiers.json: name the puzzle-table rows (docs/reference.md)

    example:
      latentreason import ckpt=HRM-checkpoint-sudoku-extreme/checkpoint recipe=hrm_sudoku out=runs/hrm-sudoku/final.ckpt
    """
    from latentreason.errors import ConfigError
    from latentreason.reference_import import import_checkpoint

    options = {
        a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if a.split("=", 1)[0] in ("ckpt", "out", "identifiers")
    }
    overrides = [a for a in args if a.split("=", 1)[0] not in ("ckpt", "out", "identifiers")]
    if "ckpt" not in options or not any(a.startswith("recipe=") for a in overrides):
        raise ConfigError(
            "usage: latentreason import ckpt=FILE recipe=NAME [out=PATH] [identifiers=FILE] [key=value ...] (FILE: a checkpoint of the reference's pretrain.py; see docs/reference.md)"
        )
    out, report = import_checkpoint(options["ckpt"], overrides, options.get("out"), options.get("identifiers"))
    console.print(f"{options['ckpt']}: {report}")
    console.print(f"Wrote {out}: use it with `latentreason eval ckpt={out}` or `latentreason solve ckpt={out} PUZZLE`.")


def cmd_bench(args: list[str]) -> None:
    """Time training steps and inference: step time, FLOP/s, % of a matmul peak measured in the same run, peers.

    usage: latentreason bench recipe=NAME [steps=N] [warmup=N] [json=FILE] [peers=false] [key=value ...]
           latentreason bench ckpt=PATH [limit=N] [steps=N] [threshold=T,...] [json=FILE]   (inference only)

    options:
      recipe=NAME         the recipe to time (its preset and overrides apply as in `run`)
      steps=N, warmup=N   measured and warm-up steps
      json=FILE           also write the results, with machine, date, torch version and the command
      peers=false         leave out the peers (hrm-pytorch, tiny-recursive-model, the reference code)
      limit=N             with ckpt=: the held-out rows to predict
      threshold=T,...     with ckpt=: one early-exit row per threshold (default: the checkpoint's own)

    example:
      latentreason bench recipe=hrm_sudoku preset=cpu task.box=3
    """
    from latentreason.bench import cmd_bench as bench

    bench(args)


def cmd_analyze(args: list[str]) -> None:
    """Look inside trained models: figures, the CSV behind each, and one self-contained HTML report.

    usage: latentreason analyze ckpt=PATH [ckpt=PATH2 ...] [run=DIR ...] [data=FILE|test|train] [what=...]
                                [segments=K] [limit=N] [examples=N] [batch_size=N] [device=cpu|cuda] [out=DIR]

    options:
      ckpt=PATH           a checkpoint; several share every figure (e.g. HRM vs L-only vs TRM)
      run=DIR             a run folder: training curves from its metrics.csv
      data=FILE|test|train  the examples to look at (default: the held-out split, rebuilt if not cached)
      what=LIST           segments,halting,examples,grids,convergence (default: all)
      segments=K          segments to run (default: twice the training maximum)
      out=DIR             where the PNGs, CSVs and report.html go (default: <run>/analysis/)

    example:
      latentreason analyze ckpt=runs/a/final.ckpt ckpt=runs/b/final.ckpt limit=256
    """
    from latentreason.analysis.command import analyze_command

    analyze_command(args)


COMMANDS = {
    "run": cmd_run,
    "list": cmd_list,
    "data": cmd_data,
    "eval": cmd_eval,
    "solve": cmd_solve,
    "import": cmd_import,
    "bench": cmd_bench,
    "analyze": cmd_analyze,
}
FLAGS = {"run": ("--dry-run", "-m", "--multirun")}  # the --flags a command takes besides --help


def command_help(name: str) -> str:
    """The help of one command: its function's docstring."""
    return inspect.getdoc(COMMANDS[name]) or name


def usage() -> str:
    """`latentreason --help`: one line per command, from the first line of its help."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name:<{width}}  {command_help(name).splitlines()[0]}" for name in COMMANDS]
    return "\n".join(
        [
            "usage: latentreason COMMAND [key=value ...]    (latentreason COMMAND --help: its options and an example)",
            "",
            "commands:",
            *lines,
            "",
            "A bare `latentreason key=value ...` means `latentreason run key=value ...`.",
        ]
    )


def check_flags(command: str, args: list[str]) -> None:
    """A --flag the command does not take is one clear line (Hydra would otherwise fail to parse it)."""
    from latentreason.errors import ConfigError

    known = FLAGS.get(command, ())
    for arg in args:
        if arg.startswith("-") and "=" not in arg and arg not in known:
            takes = f"; it takes {', '.join(known)} and key=value options" if known else "; it takes key=value options"
            raise ConfigError(
                f"`latentreason {command}` has no option {arg!r}{takes}. See: latentreason {command} --help"
            )


def main(argv: list[str] | None = None) -> int:
    from latentreason.errors import ConfigError, DatasetFormatError, DownloadError, Preempted

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in (*HELP_FLAGS, "help"):
        console.print(usage(), markup=False, highlight=False)  # the brackets are syntax, not rich markup
        return 0
    command = args.pop(0) if args[0] in COMMANDS else ("run" if "=" in args[0] or args[0].startswith("-") else args[0])
    if command not in COMMANDS:
        from latentreason.registry import close_matches

        console.print(f"[red]Unknown command {command!r}.{close_matches(command, COMMANDS)}[/]")
        console.print(usage(), markup=False, highlight=False)
        return 2
    own_parser = command == "data" and args[:1] == ["fetch"]  # `data fetch` reads its own options and --help
    if any(a in HELP_FLAGS for a in args) and not own_parser:
        console.print(command_help(command), markup=False, highlight=False)
        return 0
    from hydra.errors import OverrideParseException

    try:
        if not own_parser:
            check_flags(command, args)
        COMMANDS[command](args)
    except OverrideParseException as error:  # a key=value Hydra cannot parse
        console.print(
            f"[red]error:[/] cannot read the overrides: {(str(error).strip().splitlines() or [''])[0]}", markup=True
        )
        return 2
    except Preempted as error:  # SIGTERM/SIGUSR1: the checkpoint is saved; 128 + SIGTERM says "stopped, not finished"
        console.print(f"[yellow]Pre-empted:[/] {error}", markup=True)
        return 143
    except (ConfigError, DatasetFormatError, DownloadError, FileNotFoundError, FloatingPointError) as error:
        # The framework's own checks (ConfigError: config, checkpoints, out of memory), bad data files,
        # missing files and a non-finite loss end in one line; anything else is a bug and keeps its traceback.
        from rich.markup import escape

        console.print(f"[red]error:[/] {escape(str(error))}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
