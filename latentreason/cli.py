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
  latentreason list [core|grad|halt|task|recipe]                     registered components and recipes
  latentreason data recipe=NAME [key=value ...]                      build and cache the recipe's dataset
  latentreason eval ckpt=PATH [data=FILE|test|train] [limit=N]       token and exact accuracy
  latentreason solve ckpt=PATH PUZZLE                                solve one puzzle and print the grid"""


def _key_values(args: list[str], allowed: set[str], command: str) -> tuple[dict[str, str], list[str]]:
    from latentreason.registry import ConfigError, close_matches

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

        from latentreason.train.run import build_task, check_run_config, make_module

        check_run_config(config)
        model = make_module(config, build_task(config)).model
        console.print(OmegaConf.to_yaml(config))
        console.print(f"{recipe or 'run'} ({config.preset} preset): {sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable parameters")
        return
    run(config, recipe)


def cmd_data(args: list[str]) -> None:
    from latentreason.config import load_config
    from latentreason.train.run import build_task

    task = build_task(load_config(args))
    splits = task.splits()
    console.print(f"{task.describe()}: {len(splits['train']['inputs']):,} training and {len(splits['test']['inputs']):,} held-out examples, cached in {Path(task.cache_dir).expanduser()}")


def cmd_list(args: list[str]) -> None:
    from rich.table import Table

    from latentreason import plugins, registry

    kind = args[0] if args else None
    kinds = list(registry.KINDS) + ["recipe"]
    if kind and kind not in kinds:
        raise registry.ConfigError(f"Unknown kind {kind!r}; kinds: {', '.join(kinds)}.{registry.close_matches(kind, kinds)}")
    table = Table(title="latentreason components and recipes")
    for column in ("kind", "name", "origin", "what it is"):
        table.add_column(column)
    for entry in registry.entries(None if kind in (None, "recipe") else kind):
        if kind != "recipe":
            has_card = entry.name in plugins.config_options(entry.kind)
            table.add_row(entry.kind, entry.name, entry.origin + ("" if has_card else " (no card)"), entry.summary)
    if kind in (None, "recipe"):
        for name, (path, origin) in plugins.config_options("recipe").items():
            text = path.read_text()
            first = text.splitlines()[0].lstrip("# ").strip() if text else ""
            table.add_row("recipe", name, origin, first)
    console.print(table)


def load_checkpoint(path: str):
    """The trained module and its task from a checkpoint written by `latentreason run`."""
    from omegaconf import OmegaConf

    from latentreason.train.checkpoints import read_checkpoint
    from latentreason.train.run import build_task, make_module

    checkpoint = read_checkpoint(path)  # weights_only; a damaged file is named with a good one of the same run
    config = OmegaConf.create(checkpoint["hyper_parameters"]["config"])
    task = build_task(config)
    module = make_module(config, task)
    module.load_state_dict(checkpoint["state_dict"])
    if checkpoint.get("ema"):  # trained with trainer.ema: predict with the averaged weights, as the run evaluated
        module.model.load_state_dict({**module.model.state_dict(), **checkpoint["ema"]})
    module.eval()
    return module, task, config


def cmd_eval(args: list[str]) -> None:
    import torch

    from latentreason.registry import ConfigError
    from latentreason.train.deep_supervision import per_row_results, run_to_halt
    from latentreason.train.metrics import ReasoningMetrics

    options, rest = _key_values(args, {"ckpt", "data", "limit", "batch_size"}, "eval")
    if "ckpt" not in options or rest:
        raise ConfigError("usage: latentreason eval ckpt=PATH [data=FILE|test|train] [limit=N]")
    module, task, config = load_checkpoint(options["ckpt"])
    source = options.get("data", "test")
    data = task.splits()[source] if source in ("test", "train") else task.read_file(source)
    limit, batch_size = _positive(options, "limit", len(data["inputs"])), _positive(options, "batch_size", int(config.trainer.eval_batch_size))
    metrics = ReasoningMetrics()
    with torch.no_grad():
        for start in range(0, min(limit, len(data["inputs"])), batch_size):
            stop = min(start + batch_size, limit)
            logits, steps, halt_logits = run_to_halt(module.model, data["inputs"][start:stop], data["puzzle_ids"][start:stop])
            results = per_row_results(logits, data["labels"][start:stop])
            results.update(steps=steps, **halt_logits)
            metrics.update(results)
    m = {k: float(v) for k, v in metrics.compute().items()}
    console.print(f"{source}: {int(m['count']):,} examples, token accuracy {m['token_accuracy']:.2%}, exact accuracy {m['exact_accuracy']:.2%}, mean steps {m['steps']:.2f}")


def _positive(options: dict[str, str], key: str, default: int) -> int:
    from latentreason.registry import ConfigError

    value = options.get(key, str(default))
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{key}={value!r} should be a positive integer")
    return int(value)


def cmd_solve(args: list[str]) -> None:
    import torch

    from latentreason.registry import ConfigError
    from latentreason.train.deep_supervision import run_to_halt

    options, rest = _key_values(args, {"ckpt"}, "solve")
    if "ckpt" not in options or len(rest) != 1:
        raise ConfigError("usage: latentreason solve ckpt=PATH PUZZLE (one line, '.' for blanks)")
    module, task, _ = load_checkpoint(options["ckpt"])
    puzzle = task.parse_input(rest[0]).unsqueeze(0)
    with torch.no_grad():
        logits, steps, _ = run_to_halt(module.model, puzzle)
    console.print(task.render(puzzle[0]))
    console.print(f"\nafter {int(steps[0])} segments:")
    console.print(task.render(logits.argmax(-1)[0]))


COMMANDS = {"run": cmd_run, "list": cmd_list, "data": cmd_data, "eval": cmd_eval, "solve": cmd_solve}


def main(argv: list[str] | None = None) -> int:
    from latentreason.registry import ConfigError
    from latentreason.tasks.sudoku_data import DatasetFormatError

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        console.print(USAGE)
        return 0
    command = args.pop(0) if args[0] in COMMANDS else ("run" if "=" in args[0] or args[0] == "--dry-run" else args[0])
    if command not in COMMANDS:
        from latentreason.registry import close_matches

        console.print(f"[red]Unknown command {command!r}.{close_matches(command, COMMANDS)}[/]\n{USAGE}")
        return 2
    try:
        COMMANDS[command](args)
    except (ConfigError, DatasetFormatError, FileNotFoundError, FloatingPointError) as error:
        # The framework's own checks (ConfigError: config, checkpoints, out of memory), bad data files,
        # missing files and a non-finite loss end in one line; anything else is a bug and keeps its traceback.
        from rich.markup import escape

        console.print(f"[red]error:[/] {escape(str(error))}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
