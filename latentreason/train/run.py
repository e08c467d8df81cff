"""`latentreason run`: build the task and model from a config, train with Lightning, evaluate, save."""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from latentreason.console import console
from latentreason.errors import ConfigError
from latentreason.hardware import compile_enabled, precision_of
from latentreason.tasks.base import Task, build_task
from latentreason.train.checkpoint_io import AtomicCheckpointIO
from latentreason.train.checkpoints import read_checkpoint
from latentreason.train.ema import load_ema_parameters
from latentreason.train.loggers import build_loggers
from latentreason.train.module import LatentReasoningModule, fit_puzzle_table
from latentreason.train.preemption import Preemption
from latentreason.train.progress import StepProgressBar

RUN_NAME_ENV = "LATENTREASON_RUN_NAME"  # lets the processes Lightning's DDP launcher starts write to the same folder


def quiet_lightning() -> None:
    """Keep the console for what a researcher needs: Lightning's tips and known-harmless warnings go."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    # torch.compile on a CPU-only machine: "No CUDA runtime is found, using CUDA_HOME=..." (harmless)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    for message in (
        "Experiment logs directory",  # our run directory already holds config.yaml
        ".*isinstance.treespec, LeafSpec.",
        ".*IterableDataset. has .__len__. defined",  # our step counter has a length on purpose (progress bar, ETA)
        ".*does not have many workers",  # the data lives on the device; the loader only counts steps
        "Using ModelCheckpoint with manual optimization",  # we checkpoint after the step, on purpose
        ".*resuming from a checkpoint that ended before the epoch ended",  # our data is indexed by step: resumable
        ".*It is recommended to use .self.log.*sync_dist=True",  # evaluation metrics are summed over processes by torchmetrics
        "torch.distributed.nn.functional.all_gather is deprecated",  # inside Lightning's all_gather
    ):
        warnings.filterwarnings("ignore", message=message)


POSITIVE_INTS = ("global_batch_size", "max_steps", "eval_batch_size", "log_every", "keep_checkpoints", "num_nodes")
NATURAL_INTS = ("eval_every", "eval_size", "checkpoint_every")
BOOLS = ("progress", "ema", "deterministic")


def check_run_config(config: DictConfig) -> None:
    """Reject trainer settings of the wrong type or out of range before anything is built, naming each key."""
    t = config.trainer
    problems = []
    seed = config.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        problems.append(f"seed={seed!r} should be an integer")
    for key in POSITIVE_INTS + NATURAL_INTS:
        if key not in t:
            continue
        value = t[key]
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"trainer.{key}={value!r} should be an integer")
        elif value < (1 if key in POSITIVE_INTS else 0):
            problems.append(f"trainer.{key}={value} should be {'at least 1' if key in POSITIVE_INTS else '0 or more'}")
    for key in BOOLS:
        if key in t and not isinstance(t[key], bool):
            problems.append(f"trainer.{key}={t[key]!r} should be true or false")
    if "compile" in t and t.compile not in (True, False, "auto"):
        problems.append(f"trainer.compile={t.compile!r} should be true, false or auto")
    minutes = t.get("max_minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0):
        problems.append(f"trainer.max_minutes={minutes!r} should be a positive number or null")
    threads = t.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        problems.append(f"trainer.threads={threads!r} should be a positive integer or null")
    lr = (config.get("optim") or {}).get("lr")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr < 0:
        problems.append(f"optim.lr={lr!r} should be a number >= 0")
    if problems:
        raise ConfigError("; ".join(problems) + ".")


def _config_differences(saved: dict, current: dict, sections=("core", "grad", "halt", "model", "task")) -> list[str]:
    """`key (A there, B here)` for every model or data setting that differs between two configs."""

    def flat(tree, prefix=""):
        out = {}
        for k, v in (tree or {}).items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a = flat({k: saved.get(k) for k in sections})
    b = flat({k: current.get(k) for k in sections})
    return [f"{k} ({a.get(k)!r} there, {b.get(k)!r} here)" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def mismatched_weights(own: dict, saved: dict, adaptable: set[str] = frozenset()) -> list[str]:
    """Keys missing on either side, or whose shapes differ (except the `adaptable` ones)."""
    differ = [k for k in own if k not in saved or (saved[k].shape != own[k].shape and k not in adaptable)]
    return differ + [k for k in saved if k not in own]


def check_resume(path: str, config: DictConfig, module: LatentReasoningModule) -> int:
    """Check that `path` loads and fits this run's model before Lightning reads it; returns its step."""
    checkpoint = read_checkpoint(path, option="resume")
    if "optimizer_states" not in checkpoint or "loops" not in checkpoint:
        raise ConfigError(
            f"Checkpoint {path} holds weights only (no optimizer or loop state), so training cannot resume from it."
        )
    # a different number of puzzle identifiers is adapted on load (fit_puzzle_table)
    mismatched = mismatched_weights(module.state_dict(), checkpoint["state_dict"], adaptable={"model.puzzle.table"})
    if mismatched:
        diffs = _config_differences(
            checkpoint["hyper_parameters"]["config"], OmegaConf.to_container(config, resolve=True)
        )
        what = f"settings that differ: {', '.join(diffs[:6])}" if diffs else f"{mismatched[0]!r} does not match"
        raise ConfigError(
            f"Checkpoint {path} was saved by a different model ({what}); resume it with the settings it was trained with."
        )
    return int(checkpoint["global_step"])  # present: Lightning writes it with the loop state


def launched_externally() -> bool:
    """True in one of several processes started by torchrun or by srun (rather than by Lightning's launcher)."""
    return (
        "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1
    )  # set by srun


def out_of_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
    )


def make_module(config: DictConfig, task: Task, num_puzzle_ids: int | None = None) -> LatentReasoningModule:
    """The module for `task`; `num_puzzle_ids` overrides the task's count (to load a checkpoint without building its data)."""
    groups = task.position_groups()
    module = LatentReasoningModule(
        OmegaConf.to_container(config, resolve=True),
        task.vocab_size,
        task.seq_len,
        num_puzzle_ids or task.num_puzzle_ids,
        task.loss,
        groups.tolist() if groups is not None else None,
    )
    if num_puzzle_ids is None:
        module.puzzle_names = task.puzzle_names
    module.collect_predictions = task.scores_predictions
    return module


def init_weights(module: LatentReasoningModule, path: str) -> str:
    """Start from the weights of checkpoint `path` (not its optimizer, step or carry), adapting the puzzle table."""
    checkpoint = read_checkpoint(path, option="init_from")
    message = fit_puzzle_table(module, checkpoint)
    saved = checkpoint["state_dict"]
    mismatched = mismatched_weights(module.state_dict(), saved)
    if mismatched:
        raise ConfigError(
            f"init_from={path}: the checkpoint's model differs from this one ({mismatched[0]!r}); use a checkpoint of the same core, sizes and task vocabulary."
        )
    module.load_state_dict(saved)
    if module.ema is not None:  # the average starts from the loaded weights, not from the random ones
        load_ema_parameters(
            module.ema, {k.removeprefix("model."): v for k, v in saved.items() if k.startswith("model.")}
        )
    return f"Started from the weights of {path}." + (f" {message}" if message else "")


def run(config: DictConfig, recipe: str | None = None) -> dict[str, float]:
    """Train, then evaluate on the whole held-out split at max steps; returns the final metrics."""
    check_run_config(config)
    prepare_process(config)
    run_dir, run_name = make_run_dir(config, recipe)
    task, splits, module = build_module(config)
    resume = config.get("resume")
    resumed_step = check_resume(resume, config, module) if resume else None
    if config.get("init_from") and not resume:
        say(init_weights(module, config.init_from))
    say(describe_run(config, recipe, task, splits, module, run_dir, resume, resumed_step))
    checkpoints = periodic_checkpoints(config, run_dir)
    callbacks = build_callbacks(config, run_dir, checkpoints)
    trainer = make_trainer(config, callbacks, build_loggers(config, run_dir, run_name, resumed_step), run_dir)
    check_world_size(config, trainer)
    results, train_seconds = fit_and_test(config, trainer, module, resume, run_name, checkpoints, callbacks[1])
    final = run_dir / "final.ckpt"
    trainer.save_checkpoint(final, weights_only=False)
    return report(config, task, splits, module, trainer, results, train_seconds, final, run_dir)


def say(*args, **kwargs) -> None:
    """Print on the main process only: the processes Lightning's DDP launcher starts stay quiet."""
    if rank_zero_only.rank == 0:
        console.print(*args, **kwargs)


def prepare_process(config: DictConfig) -> None:
    """Quiet Lightning, seed every generator, set the CPU threads."""
    quiet_lightning()
    L.seed_everything(int(config.seed), workers=True, verbose=False)
    if config.trainer.threads:
        torch.set_num_threads(int(config.trainer.threads))


def make_run_dir(config: DictConfig, recipe: str | None) -> tuple[Path, str]:
    """The run folder (named by run_name, or by recipe, preset and time), with the config saved in it."""
    if not config.run_name and not os.environ.get(RUN_NAME_ENV) and launched_externally():
        raise ConfigError(
            "Started by torchrun or srun, every process names the run folder itself: pass run_name=NAME so that all write to the same one."
        )
    run_name = (
        config.run_name
        or os.environ.get(RUN_NAME_ENV)
        or f"{recipe or 'run'}-{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    run_dir = Path(config.output_dir) / run_name
    resume = config.get("resume")
    if resume:  # continuing in the same folder: its checkpoints are expected there
        warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
        if not Path(resume).is_file():
            read_checkpoint(resume, option="resume")  # says that it does not exist, and names the run's checkpoints
    run_dir.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:
        OmegaConf.save(config, run_dir / "config.yaml")
    return run_dir, run_name


def build_module(config: DictConfig) -> tuple[Task, dict, LatentReasoningModule]:
    """The task, its splits (built or read from the cache) and the module holding them."""
    task = build_task(config)
    splits = task.splits()
    module = make_module(config, task)
    module.attach_data(splits)
    return task, splits, module


def describe_run(config, recipe, task, splits, module, run_dir, resume, resumed_step) -> str:
    t = config.trainer
    params = sum(p.numel() for p in module.model.parameters() if p.requires_grad)
    return (
        f"[bold]{recipe or 'run'}[/] ({config.preset} preset): {config.core.name} core, {config.grad.name} gradient, "
        f"{config.halt.name} halting, {params:,} parameters; {task.describe()}; "
        f"{len(splits['train']['inputs']):,} training / {len(splits['test']['inputs']):,} held-out examples; "
        f"{t.max_steps} steps of batch {t.global_batch_size}"
        + ("; compiled (the first steps wait tens of seconds for torch.compile)" if compile_enabled(t) else "")
        + f"; writing to {run_dir}"
        + (f"; resuming from {resume} (step {resumed_step})" if resume else "")
    )


def periodic_checkpoints(config: DictConfig, run_dir: Path) -> ModelCheckpoint:
    """Every trainer.checkpoint_every steps: last.ckpt, and step-NNNNNN.ckpt of which the newest
    trainer.keep_checkpoints are kept, so that a good one is left if the newest is damaged."""
    t = config.trainer
    return ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="step-{step:06d}",
        auto_insert_metric_name=False,
        monitor="step",
        mode="max",
        save_top_k=int(t.get("keep_checkpoints", 2)),
        save_last=True,
        every_n_train_steps=int(t.checkpoint_every),
        enable_version_counter=False,
    )


def build_callbacks(config: DictConfig, run_dir: Path, checkpoints: ModelCheckpoint) -> list[Callback]:
    """Periodic checkpoints, the pre-emption handler, the progress bar, and the callbacks of `trainer.callbacks`.

    `trainer.callbacks` is a list of Hydra `_target_` nodes (any Lightning callback), e.g.
    `'trainer.callbacks=[{_target_: lightning.pytorch.callbacks.LearningRateMonitor}]'`.
    """
    callbacks: list[Callback] = [checkpoints, Preemption(run_dir / "checkpoints" / "last.ckpt")]
    if config.trainer.progress:
        callbacks.append(StepProgressBar(leave=True))
    for node in config.trainer.get("callbacks") or []:
        try:
            callback = instantiate(node)
        except Exception as error:  # noqa: BLE001 - Hydra wraps import and constructor errors alike
            raise ConfigError(
                f"trainer.callbacks: cannot build {OmegaConf.to_container(node)} ({(str(error).splitlines() or [''])[0]})."
            ) from None
        if not isinstance(callback, Callback):
            raise ConfigError(f"trainer.callbacks: {node.get('_target_')} is not a Lightning Callback.")
        callbacks.append(callback)
    return callbacks


def check_world_size(config: DictConfig, trainer: L.Trainer) -> None:
    if int(config.trainer.global_batch_size) % trainer.world_size:
        raise ConfigError(
            f"trainer.global_batch_size={config.trainer.global_batch_size} is not divisible by the {trainer.world_size} processes "
            f"(trainer.devices x trainer.num_nodes); pick a multiple of {trainer.world_size}."
        )


def fit_and_test(config, trainer, module, resume, run_name, checkpoints, preemption: Preemption) -> tuple[dict, float]:
    """Train, then test; a non-finite loss, running out of memory or a pre-emption end in one line."""
    t = config.trainer
    os.environ[RUN_NAME_ENV] = run_name  # inherited by the processes the DDP launcher starts during fit
    started = time.time()
    try:
        trainer.fit(module, ckpt_path=resume, weights_only=True)
        train_seconds = time.time() - started
        return trainer.test(module, verbose=False)[0], train_seconds
    except SIGTERMException:
        raise preemption.stopped() from None
    except FloatingPointError as error:
        last = checkpoints.last_model_path
        kept = (
            f"The last checkpoint, {last} (step {saved_step(last)}), was written before it and is kept."
            if last
            else "No checkpoint was written before it."
        )
        raise FloatingPointError(f"{error} {kept}") from None
    except RuntimeError as error:  # torch.OutOfMemoryError is a RuntimeError
        if not out_of_memory(error):
            raise
        raise ConfigError(
            f"Out of memory at step {trainer.global_step} ({(str(error).strip().splitlines() or [''])[0][:160]}). Lower trainer.global_batch_size "
            f"(now {t.global_batch_size}), core.hidden_size (now {config.core.get('hidden_size')}) or halt.max_steps (now {config.halt.get('max_steps')}), "
            f"or spread the batch over more devices (trainer.devices, trainer.num_nodes)."
        ) from None
    finally:
        os.environ.pop(RUN_NAME_ENV, None)


def saved_step(path: str) -> int:
    """The step a checkpoint was written at (memory-mapped: the weights are not read)."""
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])


def report(config, task, splits, module, trainer, results, train_seconds, final, run_dir) -> dict[str, float]:
    """Print the held-out metrics (and the task's own scores) and return them."""
    metrics = {k.removeprefix("test/"): float(v) for k, v in results.items()}
    say(
        f"Held-out ({len(splits['test']['inputs']):,} examples, {model_steps(config)} segments): "
        f"token accuracy [bold]{metrics['token_accuracy']:.1%}[/], exact accuracy [bold]{metrics['exact_accuracy']:.1%}[/], "
        + ("" if math.isnan(metrics["q_halt_accuracy"]) else f"Q-halt accuracy {metrics['q_halt_accuracy']:.1%}; ")
        + f"trained {trainer.global_step} steps in {train_seconds / 60:.1f} min. "
        f"Checkpoint: {final}"
    )
    if rank_zero_only.rank == 0 and module.test_predictions is not None:
        p = module.test_predictions
        scores = task.score(splits["test"], p["predictions"], p["confidence"], run_dir)
        if scores:
            say(f"{type(task).__name__} scores: " + format_scores(scores))
        metrics.update(scores)
    return metrics


def format_scores(scores: dict[str, float]) -> str:
    return ", ".join(
        f"{k} {v:.1%}" if 0 <= v <= 1 and not k.startswith(("scored", "count")) else f"{k} {v:g}"
        for k, v in scores.items()
    )


def make_trainer(config: DictConfig, callbacks: list[Callback], loggers: list, run_dir: Path) -> L.Trainer:
    """Lightning's Trainer for these settings; Lightning's own rejections of them end in one line."""
    t = config.trainer
    eval_every = int(t.eval_every)
    try:
        return _trainer(t, precision_of(t), eval_every, callbacks, loggers, run_dir)
    except (MisconfigurationException, ValueError) as error:  # Lightning's checks of these settings
        raise ConfigError(
            f"Lightning rejects the trainer settings (trainer.accelerator={t.accelerator}, trainer.devices={t.devices}, "
            f"trainer.num_nodes={t.get('num_nodes', 1)}, trainer.strategy={t.strategy}, trainer.precision={t.precision}): {error}"
        ) from None


def _trainer(t: DictConfig, precision, eval_every: int, callbacks, loggers, run_dir: Path) -> L.Trainer:
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=int(t.get("num_nodes", 1)),
        strategy=t.strategy,
        precision=precision,
        max_steps=int(t.max_steps),
        max_time={"minutes": float(t.max_minutes)} if t.get("max_minutes") else None,
        max_epochs=-1,
        val_check_interval=eval_every if 0 < eval_every < int(t.max_steps) else None,
        check_val_every_n_epoch=None if 0 < eval_every < int(t.max_steps) else 1,
        num_sanity_val_steps=0,
        limit_val_batches=None if eval_every else 0,
        log_every_n_steps=int(t.log_every),
        logger=loggers or False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=bool(t.progress),
        enable_model_summary=False,
        deterministic=bool(t.get("deterministic", False)),
        use_distributed_sampler=False,  # training data is indexed by step; evaluation shards itself (module._eval_loader)
        default_root_dir=run_dir,
    )


def model_steps(config: DictConfig) -> int:
    return int(config.halt.get("max_steps", 1))
