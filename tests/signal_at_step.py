"""A test-only Lightning callback: the run sends itself a signal at the start of a given step.

The subprocess tests install it from the command line through `trainer.callbacks` (with this
folder on PYTHONPATH), so no production code kills its own process:
`'trainer.callbacks=[{_target_: signal_at_step.SignalAtStep, step: 5, signal: SIGKILL}]'`.
"""

from __future__ import annotations

import os
import signal as signals

from lightning.pytorch.callbacks import Callback


class SignalAtStep(Callback):
    """Send `signal` to this process at the start of step `step`, unless the run started there (a resume)."""

    def __init__(self, step: int, signal: str = "SIGKILL"):
        self.step, self.signal = int(step), getattr(signals, signal)
        self.first_step: int | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step is None:
            self.first_step = trainer.global_step
        if trainer.global_step == self.step and trainer.global_step != self.first_step:
            os.kill(os.getpid(), self.signal)


def override(step: int, signal: str) -> str:
    """The command-line override that installs the callback."""
    return f"trainer.callbacks=[{{_target_: signal_at_step.SignalAtStep, step: {step}, signal: {signal}}}]"
