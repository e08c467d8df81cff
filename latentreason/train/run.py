"""`latentreason run`: build the task and model from a config, train with Lightning, evaluate, save."""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from latentreason import registry
from latentreason.console import console
from latentreason.tasks.base import Task
from latentreason.train.module import LatentReasoningModule


def quiet_lightning() -> None:
    """Keep the console for what a researcher needs: Lightning's tips and known-harmless warnings go."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for message in (
        "Experiment logs directory",  # our run directory already holds config.yaml
        ".*isinstance.treespec, LeafSpec.",
        ".*IterableDataset. has .__len__. defined",  # our step counter has a length on purpose (progress bar, ETA)
        ".*does not have many workers",  # the data lives on the device; the loader only counts steps
        "Using ModelCheckpoint with manual optimization",  # we checkpoint after the step, on purpose
    ):
        warnings.filterwarnings("ignore", message=message)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file, then rename: an interrupted save never leaves a broken checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)


def build_task(config: DictConfig) -> Task:
    return registry.build("task", OmegaConf.to_container(config.task, resolve=True))


def make_module(config: DictConfig, task: Task) -> LatentReasoningModule:
    groups = task.position_groups()
    return LatentReasoningModule(
        OmegaConf.to_container(config, resolve=True), task.vocab_size, task.seq_len, task.num_puzzle_ids, task.loss,
        groups.tolist() if groups is not None else None,
    )


def run(config: DictConfig, recipe: str | None = None) -> dict[str, float]:
    """Train, then evaluate on the whole held-out split at max steps; returns the final metrics."""
    t = config.trainer
    quiet_lightning()
    L.seed_everything(int(config.seed), workers=True, verbose=False)
    if t.threads:
        torch.set_num_threads(int(t.threads))
    gpu = torch.cuda.is_available() and t.accelerator in ("auto", "gpu", "cuda")
    precision = ("bf16-mixed" if gpu else "32-true") if t.precision == "auto" else t.precision
    run_name = config.run_name or f"{recipe or 'run'}-{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(config.output_dir) / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, run_dir / "config.yaml")

    task = build_task(config)
    splits = task.splits()
    module = make_module(config, task)
    module.attach_data(splits)
    params = sum(p.numel() for p in module.model.parameters() if p.requires_grad)
    console.print(
        f"[bold]{recipe or 'run'}[/] ({config.preset} preset): {config.core.name} core, {config.grad.name} gradient, "
        f"{config.halt.name} halting, {params:,} parameters; {task.describe()}; "
        f"{len(splits['train']['inputs']):,} training / {len(splits['test']['inputs']):,} held-out examples; "
        f"{t.max_steps} steps of batch {t.global_batch_size}; writing to {run_dir}"
    )

    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0, every_n_train_steps=int(t.checkpoint_every))
    callbacks = [checkpoint]
    if t.progress:
        callbacks.append(RichProgressBar(leave=True))
    eval_every = int(t.eval_every)
    trainer = L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
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
        logger=CSVLogger(run_dir, name="", version=""),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=bool(t.progress),
        enable_model_summary=False,
        deterministic=False,
        default_root_dir=run_dir,
    )
    started = time.time()
    trainer.fit(module, ckpt_path=config.get("resume"), weights_only=True)
    train_seconds = time.time() - started
    results = trainer.test(module, verbose=False)[0]
    final = run_dir / "final.ckpt"
    trainer.save_checkpoint(final, weights_only=False)
    metrics = {k.removeprefix("test/"): float(v) for k, v in results.items()}
    console.print(
        f"Held-out ({len(splits['test']['inputs']):,} examples, {model_steps(config)} segments): "
        f"token accuracy [bold]{metrics['token_accuracy']:.1%}[/], exact accuracy [bold]{metrics['exact_accuracy']:.1%}[/], "
        f"Q-halt accuracy {metrics['q_halt_accuracy']:.1%}; trained {trainer.global_step} steps in {train_seconds / 60:.1f} min. "
        f"Checkpoint: {final}"
    )
    return metrics


def model_steps(config: DictConfig) -> int:
    return int(config.halt.get("max_steps", 1))
