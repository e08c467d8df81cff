"""Pre-emption as clusters do it: SIGTERM (or SLURM's warning signal, SIGUSR1) saves a checkpoint and exits.

A scheduler that takes the machine back sends SIGTERM (SLURM: `--signal=USR1@90` sends SIGUSR1
first). Lightning's signal connector turns SIGTERM into `trainer.received_sigterm`; this callback
also listens for SIGUSR1. Either way the current step finishes, `checkpoints/last.ckpt` is written
at that step (the place in the loop where the periodic checkpoints are written, so a resume is
exact), the step's metrics are logged, and Lightning stops the loop (`SIGTERMException`), which the
run turns into `Preempted`: nothing is lost, not even the steps since the last periodic checkpoint.
Resume with `resume=<run>/checkpoints/last.ckpt`.

Under SLURM, Lightning's own SIGUSR1 handler (auto-requeue) would save a checkpoint inside the
signal handler, in the middle of a step; ours is installed first, so Lightning leaves SIGUSR1 to
it, and the job is requeued (`scontrol requeue`) after the step-boundary checkpoint is written.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback

from latentreason.errors import Preempted


class Preemption(Callback):
    """Checkpoint at the end of the step during which SIGTERM or SIGUSR1 arrived, then stop."""

    def __init__(self, checkpoint_path: Path):
        self.checkpoint_path = Path(checkpoint_path)
        self.warning_signal: str | None = None  # set by SIGUSR1
        self.saved_step: int | None = None  # the step of the checkpoint written on the signal
        self._previous = None

    def _on_sigusr1(self, signum, frame) -> None:
        # Handled as SIGTERM, so that Lightning's connector passes it on to the other processes.
        self.warning_signal = "SIGUSR1"
        os.kill(os.getpid(), signal.SIGTERM)

    def on_fit_start(self, trainer, pl_module) -> None:
        # Before Lightning's connector registers its handlers (at the start of the fit loop), so
        # that it keeps ours for SIGUSR1 rather than saving mid-step.
        if hasattr(signal, "SIGUSR1"):
            try:
                self._previous = signal.signal(signal.SIGUSR1, self._on_sigusr1)
            except ValueError:  # not the main thread: signals are the main thread's
                self._previous = None

    def on_fit_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGUSR1, self._previous)
            self._previous = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.received_sigterm or self.saved_step is not None:
            return
        trainer.save_checkpoint(self.checkpoint_path)  # Lightning raises SIGTERMException after logging this step
        self.saved_step = trainer.global_step
        if trainer.is_global_zero and self.warning_signal == "SIGUSR1":
            requeue_slurm_job()

    def stopped(self) -> Preempted:
        """What to raise once Lightning has stopped the loop on the signal."""
        if self.saved_step is None:  # the signal came outside a training step (evaluation): nothing new to save
            return Preempted(self.warning_signal or "SIGTERM", -1, self.checkpoint_path)
        return Preempted(self.warning_signal or "SIGTERM", self.saved_step, self.checkpoint_path)


def requeue_slurm_job() -> bool:
    """Ask SLURM to requeue this job (what Lightning's auto-requeue does); False outside SLURM or on failure."""
    if not SLURMEnvironment.detect():
        return False
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ.get("SLURM_JOB_ID")
    if not job:
        return False
    try:
        return subprocess.call(["scontrol", "requeue", job]) == 0
    except FileNotFoundError:
        return False
