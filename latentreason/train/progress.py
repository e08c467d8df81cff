"""The training progress bar: Lightning's rich bar, counting steps (a run is one long epoch of max_steps)."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """RichProgressBar whose training task reads `Steps k/max_steps`, not `Epoch 0/-2`.

    Training is bounded by steps (max_epochs=-1), so Lightning's epoch counter says nothing useful;
    the bar's own `k/N` column already counts the steps of the single epoch.
    """

    DESCRIPTION = "Steps"
    _labelled = None  # the bar task already given our label: Lightning makes a new one after each evaluation

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        task = self.train_progress_bar_id
        if self.progress is not None and task is not None and task != self._labelled:
            self.progress.update(task, description=self.DESCRIPTION)
            self._labelled = task
