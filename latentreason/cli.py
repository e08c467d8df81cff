"""The `latentreason` command: run, list, data, eval, solve.

Arguments are Hydra-style `key=value` overrides. A bare `latentreason key=value ...` means `run`,
so that Lightning's multi-process launcher, which re-runs the command line, works unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

from latentreason.console import console

USAGE = """usage:
  latentreason run recipe=NAME [preset=cpu|paper] [key=value ...]   train, evaluate, save a checkpoint
  latentreason list [core|grad|halt|task|infer|recipe]               registered components and recipes
  latentreason data recipe=NAME [key=value ...]                      build and cache the recipe's dataset
  latentreason data fetch NAME [dir=PATH]                            download a paper's dataset (data fetch --help: the list)
  latentreason eval ckpt=PATH [data=FILE|test|train] [limit=N]       token and exact accuracy (ARC: pass@k, submission.json)
                    [solutions=FILE] [batch_size=N] [out=DIR]
                    [infer=NAME[,NAME...]] [infer.KEY=VALUE ...]     inference strategies, compared in one table
  latentreason solve ckpt=PATH PUZZLE [png=FILE] [infer=NAME]        solve one puzzle, show the grids (and save a PNG)
                    [infer.KEY=VALUE ...]
  latentreason import ckpt=FILE recipe=NAME [out=PATH] [identifiers=FILE] [key=value ...]
                                                                     convert a checkpoint of the HRM/TRM reference code
  latentreason bench recipe=NAME [steps=N] [json=FILE] [key=value ...] step time, FLOP/s, % of matmul peak, peers, inference
  infer: single | more_steps | noise_select | augment_vote | ensemble (latentreason list infer; docs: inference.md)"""


def _key_values(args: list[str], allowed: set[str], command: str) -> tuple[dict[str, str], list[str]]:
    from latentreason.errors import ConfigError
    from latentreason.registry import close_matches

    options, rest = {}, []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key in allowed:
            options[key] = value
        elif eq:
            raise ConfigError(f"`latentreason {command}` has no option {key!r}; options: {', '.join(sorted(allowed))}.{close_matches(key, allowed)}")
        else:
            rest.append(arg)
    return options, rest


def cmd_run(args: list[str]) -> None:
    from latentreason.config import load_config
    from latentreason.train.run import run

    dry_run = "--dry-run" in args
    args = [a for a in args if a != "--dry-run"]
    config = load_config(args)
    recipe = next((a.split("=", 1)[1] for a in args if a.startswith("recipe=")), None)
    if config.preset == "cpu" and not any(a.startswith("preset=") for a in args):
        console.print(f"[yellow]No GPU found: using the small CPU preset of {recipe or 'this recipe'} (preset=paper for the paper configuration).[/]")
    if dry_run:
        from omegaconf import OmegaConf

        from latentreason.tasks.base import build_task
        from latentreason.train.run import check_run_config, make_module

        check_run_config(config)
        model = make_module(config, build_task(config), num_puzzle_ids=1).model  # the puzzle table is a buffer, not counted: no need to build the data
        console.print(OmegaConf.to_yaml(config))
        console.print(f"{recipe or 'run'} ({config.preset} preset): {sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable parameters")
        return
    run(config, recipe)


DATA_USAGE = """usage:
  latentreason data recipe=NAME [key=value ...]   build and cache the dataset a run of the recipe would use
  latentreason data fetch NAME [dir=PATH]         download a benchmark dataset (sudoku-extreme, maze-30x30-hard,
                                                  arc-agi-1, arc-agi-2, concept-arc); data fetch --help lists them"""


def cmd_data(args: list[str]) -> None:
    if args and args[0] == "fetch":
        from latentreason.fetch import command

        return command(args[1:])
    if not args or args[0] in ("-h", "--help", "help"):
        console.print(DATA_USAGE, markup=False)
        return None
    from latentreason.config import load_config
    from latentreason.tasks.base import build_task, cache_root

    task = build_task(load_config(args))
    splits = task.splits()
    console.print(f"{task.describe()}: {len(splits['train']['inputs']):,} training and {len(splits['test']['inputs']):,} held-out examples, cached in {cache_root(task.cache_dir)}")


def cmd_list(args: list[str]) -> None:
    from rich.table import Table

    from latentreason import catalogue, registry
    from latentreason.errors import ConfigError

    kind = args[0] if args else None
    kinds = list(registry.KINDS) + ["recipe"]
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
    if source in ("test", "train"):
        data = task.splits()[source]
    elif "solutions" in options:
        if not hasattr(task, "eval_solutions"):
            raise ConfigError(f"solutions= is for ARC checkpoints (a combined challenges file and its solutions); this checkpoint's task is {config.task.name}")
        data = task.read_file(source, solutions=options["solutions"])
    else:
        data = task.read_file(source)
    trained.use_puzzle_names(data)
    limit, batch_size = _positive(options, "limit", len(data["inputs"])), _positive(options, "batch_size", int(config.trainer.eval_batch_size))
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


def _positive(options: dict[str, str], key: str, default: int) -> int:
    from latentreason.errors import ConfigError

    value = options.get(key, str(default))
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{key}={value!r} should be a positive integer")
    return int(value)


def cmd_solve(args: list[str]) -> None:
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
    """Convert a state dict saved by sapientinc/HRM's or TinyRecursiveModels' pretrain.py into our checkpoint."""
    from latentreason.errors import ConfigError
    from latentreason.reference_import import import_checkpoint

    options = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if a.split("=", 1)[0] in ("ckpt", "out", "identifiers")}
    overrides = [a for a in args if a.split("=", 1)[0] not in ("ckpt", "out", "identifiers")]
    if "ckpt" not in options or not any(a.startswith("recipe=") for a in overrides):
        raise ConfigError("usage: latentreason import ckpt=FILE recipe=NAME [out=PATH] [identifiers=FILE] [key=value ...] (FILE: a checkpoint of the reference's pretrain.py; see docs/reference.md)")
    out, report = import_checkpoint(options["ckpt"], overrides, options.get("out"), options.get("identifiers"))
    console.print(f"{options['ckpt']}: {report}")
    console.print(f"Wrote {out}: use it with `latentreason eval ckpt={out}` or `latentreason solve ckpt={out} PUZZLE`.")


def cmd_bench(args: list[str]) -> None:
    from latentreason.bench import cmd_bench as bench

    bench(args)


COMMANDS = {
    "run": cmd_run, "list": cmd_list, "data": cmd_data, "eval": cmd_eval, "solve": cmd_solve, "import": cmd_import, "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    from latentreason.errors import ConfigError
    from latentreason.errors import DatasetFormatError
    from latentreason.errors import DownloadError

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        console.print(USAGE, markup=False)  # the brackets are syntax, not rich markup
        return 0
    command = args.pop(0) if args[0] in COMMANDS else ("run" if "=" in args[0] or args[0] == "--dry-run" else args[0])
    if command not in COMMANDS:
        from latentreason.registry import close_matches

        console.print(f"[red]Unknown command {command!r}.{close_matches(command, COMMANDS)}[/]")
        console.print(USAGE, markup=False)
        return 2
    try:
        COMMANDS[command](args)
    except (ConfigError, DatasetFormatError, DownloadError, FileNotFoundError, FloatingPointError) as error:
        # The framework's own checks (ConfigError: config, checkpoints, out of memory), bad data files,
        # missing files and a non-finite loss end in one line; anything else is a bug and keeps its traceback.
        from rich.markup import escape

        console.print(f"[red]error:[/] {escape(str(error))}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
