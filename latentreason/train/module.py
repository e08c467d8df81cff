"""The LightningModule every recipe trains with: deep supervision over a persistent carry.

Optimization is manual because one training step is one segment of the carry, followed by an
AdamATan2/AdamW step on the dense weights and a SignSGD step on the per-puzzle embeddings.
The examples live on the device as tensors; the data loader only counts steps, and the batch of
step s is a pure function of (seed, s), so a resumed run sees exactly the data it would have seen.
The random draws of step s (Q-ACT exploration, diffusion noise) come from a generator seeded by
(seed, s, rank), so they too are the same in a resumed run, whatever drew from the global random
state in between (evaluation, a data loader, a plugin).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from omegaconf import OmegaConf
from timm.utils import ModelEmaV3

from latentreason.errors import ConfigError
from latentreason.hardware import compile_enabled
from latentreason.inference import confidence, run_to_halt
from latentreason.model import adapt_puzzle_table, build_model
from latentreason.optim.build import build_optimizer
from latentreason.optim.schedule import make_scheduler
from latentreason.tasks.base import Split
from latentreason.train.checkpoints import rng_state, set_rng_state, step_seed
from latentreason.train.deep_supervision import Carry, per_row_results, train_segment
from latentreason.train.ema import (
    ema_parameters,
    load_ema_parameters,
    make_ema,
    parameters_swapped,
)
from latentreason.train.losses import check_loss
from latentreason.train.metrics import ReasoningMetrics

EXAMPLE_KEYS = ("inputs", "labels", "puzzle_ids")


class ExampleStream:
    """An endless, reproducible sequence of batches: epoch-wise shuffles of the training split.

    Batch `step` holds global examples [step*B, (step+1)*B); a rank takes its contiguous slice.
    """

    def __init__(self, data: Split, global_batch: int, seed: int, rank: int = 0, world_size: int = 1):
        if global_batch % world_size:
            raise ValueError(
                f"trainer.global_batch_size {global_batch} must be divisible by the number of processes {world_size}"
            )
        self.data = {k: data[k] for k in EXAMPLE_KEYS}  # a split may hold more (e.g. ARC's names), a batch only these
        self.global_batch, self.seed = global_batch, seed
        self.rank, self.local_batch = rank, global_batch // world_size
        self.size = len(data["inputs"])
        self._epoch, self._order = -1, None

    def order(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.size, generator=generator)
        return self._order

    def indices(self, step: int) -> torch.Tensor:
        first = step * self.global_batch + self.rank * self.local_batch
        positions = torch.arange(first, first + self.local_batch)
        epochs = positions // self.size
        out = torch.empty_like(positions)
        for epoch in epochs.unique().tolist():  # a batch spans at most two epochs
            chosen = epochs == epoch
            out[chosen] = self.order(epoch)[positions[chosen] % self.size]
        return out

    def batch(self, step: int, device) -> dict[str, torch.Tensor]:
        idx = self.indices(step).to(self.data["inputs"].device)
        return {k: v.index_select(0, idx).to(device, non_blocking=True) for k, v in self.data.items()}


class StepCounter(torch.utils.data.IterableDataset):
    """Yields nothing but a count: Lightning needs a loader, our data is indexed by global step."""

    def __init__(self, steps: int):
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return iter(range(self.steps))


class LatentReasoningModule(L.LightningModule):
    def __init__(
        self,
        config: dict[str, Any],
        vocab_size: int,
        seq_len: int,
        num_puzzle_ids: int,
        loss: str,
        position_groups: list | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.config = OmegaConf.create(config)
        groups = torch.tensor(position_groups) if position_groups is not None else None
        self.model = build_model(
            self.config, vocab_size, seq_len, num_puzzle_ids, compile_enabled(self.config.trainer), groups
        )
        check_loss(loss)
        self.loss_kind = loss
        self.train_metrics, self.eval_metrics = ReasoningMetrics(), ReasoningMetrics()
        # Plain attributes, not buffers: DDP would overwrite each rank's carry with rank 0's.
        self.carry: Carry | None = None
        self.splits: dict[str, Split] | None = None
        self.puzzle_names: list[str] | None = (
            None  # the identifier of each puzzle-embedding row, when the task names them
        )
        self.collect_predictions = False  # keep the test split's predictions for the task's own scoring (ARC voting)
        self.test_predictions: dict[str, torch.Tensor] | None = None
        self._collected: list[tuple[torch.Tensor, ...]] = []
        self.stream: ExampleStream | None = None
        self._saved_rng: dict | None = None  # global random state of a checkpoint, restored at the first step
        # EMA of the weights (trainer.ema), held in a plain list on purpose: as an attribute, nn.Module
        # would register it as a submodule, and its copy of the weights would join self.parameters()
        # (Lightning's optimizer hooks, DDP's gradient buckets, parameter counts) and state_dict() (so
        # checkpoints of runs without EMA would no longer load strictly). Lightning therefore does not
        # move it between devices; `_ema_on_device` does. Evaluation copies its weights into self.model
        # for the duration of each batch (rather than running the copy) so that compiled update
        # functions, which stay bound to self.model's modules, see them.
        trainer_config = self.config.trainer
        self._ema: list[ModelEmaV3] = []
        if trainer_config.get("ema", False):
            self._ema.append(make_ema(self.model, float(trainer_config.get("ema_decay", 0.999))))

    # -- data ----------------------------------------------------------------------------------

    def attach_data(self, splits: dict[str, Split]) -> None:
        self.splits = splits

    def setup(self, stage: str) -> None:
        trainer = self.trainer
        seed = int(self.config.seed)
        self.stream = ExampleStream(
            self.splits["train"],
            int(self.config.trainer.global_batch_size),
            seed,
            trainer.global_rank,
            trainer.world_size,
        )

    def train_dataloader(self):
        return torch.utils.data.DataLoader(StepCounter(int(self.config.trainer.max_steps)), batch_size=None)

    def _eval_loader(self, limit: int | None):
        test = self.splits["test"]
        count = len(test["inputs"]) if not limit else min(limit, len(test["inputs"]))
        # With several processes each evaluates every world_size-th example (no padding, so every
        # example counts once); the metrics are summed over processes when they are computed.
        rank, world = self._rank_and_world()
        rows = torch.arange(count)
        dataset = torch.utils.data.TensorDataset(
            *(t[:count][rank::world] for t in (test["inputs"], test["labels"], test["puzzle_ids"], rows))
        )
        # A generator of its own: creating the loader's iterator must not draw from the global random state.
        return torch.utils.data.DataLoader(
            dataset, batch_size=int(self.config.trainer.eval_batch_size), generator=torch.Generator()
        )

    def val_dataloader(self):
        return self._eval_loader(int(self.config.trainer.eval_size))

    def test_dataloader(self):
        return self._eval_loader(None)

    # -- optimisation ----------------------------------------------------------------------------

    def configure_optimizers(self):
        o = self.config.optim
        try:  # optimizers check their settings with ValueError (torch's own do too): report them as config errors
            optimizer = build_optimizer(
                o.name,
                [p for p in self.model.parameters() if p.requires_grad],
                lr=o.lr,
                weight_decay=o.weight_decay,
                betas=tuple(o.betas),
            )
        except ValueError as error:
            raise ConfigError(
                f"optim (name={o.name}, lr={o.lr}, weight_decay={o.weight_decay}, betas={list(o.betas)}): {error}"
            ) from None
        scheduler = make_scheduler(
            optimizer,
            warmup_steps=o.warmup_steps,
            total_steps=int(self.config.trainer.max_steps),
            min_ratio=o.min_lr_ratio,
        )
        return [optimizer], [scheduler]

    def on_train_batch_start(self, batch, batch_idx) -> None:
        if self._saved_rng is not None:  # after the loader's iterator was made, which draws from it
            set_rng_state(self._saved_rng)
            self._saved_rng = None

    @contextmanager
    def _step_rng(self):
        """The random state of step `global_step` on this process; the global state is left as it was."""
        cuda = self.device.type == "cuda"
        with torch.random.fork_rng(devices=[self.device.index or 0] if cuda else [], device_type="cuda"):
            torch.manual_seed(step_seed(int(self.config.seed), self.global_step, self.trainer.global_rank))
            yield

    def training_step(self, _step_number, batch_idx):
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        batch = self.stream.batch(self.global_step, self.device)
        if self.carry is None:
            self.carry = Carry.start(self.model, batch)
        with self._step_rng():
            self.carry, loss, terms, results = train_segment(self.model, self.carry, batch, self.loss_kind)
        if not torch.isfinite(loss):
            bad = [k for k, v in terms.items() if not torch.isfinite(v)]
            raise FloatingPointError(
                f"The loss became {loss.item()} at step {self.global_step} (term(s): {', '.join(bad)}); training stopped. Lower optim.lr or check the data."
            )
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss / self.stream.local_batch)
        lr = scheduler.get_last_lr()[
            0
        ]  # this step's rate, for every optimizer (as HRM): read before the schedule moves on
        optimizer.step()
        scheduler.step()
        if self.model.puzzle is not None:
            o = self.config.optim
            self.model.puzzle.sign_sgd_step(o.puzzle_emb_lr * (lr / o.lr if o.lr else 1.0), o.puzzle_emb_weight_decay)
        if self.ema is not None:
            self._ema_on_device().update(self.model, step=self.global_step)

        self.train_metrics.update(results, rows=results["halted"])
        batch_size = self.stream.local_batch
        sync = self.trainer.world_size > 1  # log the mean over processes, i.e. over the global batch
        self.log_dict(
            {f"train/{k}": v.detach() / batch_size for k, v in terms.items()},
            prog_bar=False,
            batch_size=batch_size,
            sync_dist=sync,
        )
        self.log("train/loss", loss.detach() / batch_size, prog_bar=True, batch_size=batch_size, sync_dist=sync)
        self.log("lr", lr, prog_bar=False, batch_size=batch_size)
        if (self.global_step % int(self.config.trainer.log_every) == 0) or self.global_step == int(
            self.config.trainer.max_steps
        ):
            computed = self.train_metrics.compute()
            self.train_metrics.reset()
            if computed["count"] > 0:
                self.log_dict(
                    {f"train/{k}": v.float() for k, v in computed.items() if k != "count"},
                    prog_bar=False,
                    batch_size=batch_size,
                )
                self.log("train/exact", computed["exact_accuracy"].float(), prog_bar=True, batch_size=batch_size)

    # -- evaluation ------------------------------------------------------------------------------

    @property
    def ema(self) -> ModelEmaV3 | None:
        return self._ema[0] if self._ema else None

    def _ema_on_device(self) -> ModelEmaV3:
        ema = self.ema
        if next(ema.module.parameters()).device != self.device:
            ema.module.to(self.device)
        return ema

    def eval_weights(self):
        """A context in which self.model holds the weights evaluation uses: the EMA's when trainer.ema is on."""
        return (
            parameters_swapped(self.model, ema_parameters(self._ema_on_device()))
            if self.ema is not None
            else nullcontext(self.model)
        )

    def _evaluate(self, batch, prefix: str):
        inputs, labels, puzzle_ids, *rows = batch  # rows: the examples' indices in the split (from _eval_loader)
        rows = rows[0] if rows else torch.arange(len(inputs))
        with self.eval_weights():
            logits, steps, halt_logits = run_to_halt(self.model, inputs, puzzle_ids)
        results = per_row_results(logits, labels)
        results.update(steps=steps, **halt_logits)
        self.eval_metrics.update(results)
        if prefix == "test" and self.collect_predictions:
            self._collected.append((rows.cpu(), logits.argmax(-1).cpu(), confidence(halt_logits, len(rows)).cpu()))

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def _log_eval(self, prefix: str) -> None:
        computed = self.eval_metrics.compute()
        self.eval_metrics.reset()
        self.log_dict({f"{prefix}/{k}": v.float() for k, v in computed.items()}, prog_bar=False, sync_dist=False)
        self.log(f"{prefix}/exact", computed["exact_accuracy"].float(), prog_bar=prefix == "val")

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def on_test_epoch_start(self) -> None:
        self._collected, self.test_predictions = [], None

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")
        if self.collect_predictions:
            parts = self._collected
            if self._rank_and_world()[1] > 1:  # every process predicted every world_size-th row
                gathered = [None] * self._rank_and_world()[1]
                torch.distributed.all_gather_object(gathered, parts)
                parts = [part for rank_parts in gathered for part in rank_parts]
            rows, predictions, confidences = (torch.cat(column) for column in zip(*parts))
            order = rows.argsort()
            self.test_predictions = {
                "predictions": predictions[order],
                "confidence": confidences[order],
            }  # in the split's row order
            self._collected = []

    # -- checkpoints -----------------------------------------------------------------------------

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self._trainer  # None outside a Trainer (e.g. a module saved or loaded by hand)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _gather(self, tree):
        """Every process's tensors of `tree`, concatenated along dim 0 in rank order (a collective)."""
        if self._rank_and_world()[1] == 1:
            return tree
        if isinstance(tree, dict):
            return {k: self._gather(v) for k, v in tree.items()}
        flag = tree.dtype == torch.bool  # gloo gathers no bools
        gathered = self.all_gather(tree.to(torch.uint8) if flag else tree)
        gathered = gathered.flatten(0, 1) if tree.ndim else gathered
        return gathered.bool() if flag else gathered

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Called on every process (Lightning dumps the checkpoint everywhere, rank 0 writes it), so
        # the carries of all processes are gathered into the global batch's rows, in rank order.
        if self.carry is not None:
            carry = {
                k: v.cpu() if torch.is_tensor(v) else {n: t.cpu() for n, t in v.items()}
                for k, v in self._gather(self.carry.state_dict()).items()
            }
            checkpoint["carry"] = {
                "world_size": self._rank_and_world()[1],
                "global_batch": int(self.config.trainer.global_batch_size),
                **carry,
            }
        metrics = {name: getattr(self.train_metrics, name) for name in self.train_metrics._defaults}
        checkpoint["train_metrics"] = {k: v.cpu() for k, v in self._gather(metrics).items()}  # (world_size,) each
        checkpoint["puzzle_names"] = self.puzzle_names
        checkpoint["rng"] = rng_state()  # rank 0's; each step's own draws are seeded by (seed, step, rank)
        if self.ema is not None:  # the averaged parameters; `latentreason eval`/`solve` use them
            checkpoint["ema"] = ema_parameters(self.ema)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        rank, world = self._rank_and_world()
        message = fit_puzzle_table(self, checkpoint)
        if message:
            rank_zero_warn(message)
        saved = checkpoint.get("carry")
        if saved is not None:
            global_batch = int(self.config.trainer.global_batch_size)
            saved_batch = saved.get("global_batch")
            if saved_batch is None and saved.get("world_size", 1) == 1:  # older checkpoints: one process's rows
                saved_batch = saved["steps"].shape[0]
            if saved_batch == global_batch:  # the global batch's rows, in rank order: take this process's slice
                local = global_batch // world
                rows = slice(rank * local, (rank + 1) * local)
                self.carry = Carry.from_state_dict(
                    {
                        k: v[rows] if torch.is_tensor(v) else {n: t[rows] for n, t in v.items()}
                        for k, v in saved.items()
                        if k in ("state", "steps", "halted", "data")
                    },
                    "cpu",
                )
            else:
                rank_zero_warn(
                    f"The checkpoint's carry holds {saved_batch or 'one process of'} rows, this run's global batch has {global_batch}: every row starts a fresh example."
                )
            if message and self.carry is not None:  # its rows' puzzle ids index the old table: start them afresh
                self.carry.halted[:] = True
        metrics = checkpoint.get("train_metrics")
        if metrics is not None and metrics["count"].numel() == world:
            for name, value in metrics.items():
                setattr(
                    self.train_metrics, name, value.view(-1)[rank].clone().to(getattr(self.train_metrics, name).device)
                )
        if checkpoint.get("rng") is not None:
            self._saved_rng = checkpoint["rng"]
        if self.ema is not None:
            averaged = checkpoint.get("ema")
            if averaged is None:  # resuming a run without EMA with it on: start the average from its weights
                averaged = {
                    k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")
                }
            load_ema_parameters(self.ema, averaged)

    def on_train_start(self) -> None:
        # Keep the training examples on the device: a batch is then one index_select, no copy.
        self.stream.data = {k: v.to(self.device) for k, v in self.stream.data.items()}
        if self.carry is not None:
            self.carry = Carry.from_state_dict(self.carry.state_dict(), self.device)


def fit_puzzle_table(module: LatentReasoningModule, checkpoint: dict) -> str | None:
    """Make a checkpoint's puzzle-embedding table fit this module's data, in place; returns what was done.

    A checkpoint trained on data with a different set of puzzle identifiers (another augmentation
    count, more ARC tasks) then loads instead of failing with a shape error.
    """
    key = "model.puzzle.table"
    state = checkpoint["state_dict"]
    if key not in state or module.model.puzzle is None:
        return None
    count = module.model.puzzle.table.shape[0]
    table, message = adapt_puzzle_table(state[key], checkpoint.get("puzzle_names"), module.puzzle_names, count)
    state[key] = table
    return message
