"""The framework's own errors: each ends a command in one line that says what to fix.

A leaf module: it imports nothing of the package, so any module may raise these without a cycle.
"""


class ConfigError(ValueError):
    """A config, a command-line option or a checkpoint does not fit; the message says how to fix it."""


class DatasetFormatError(ValueError):
    """A dataset file is malformed; the message names `path:line`, what is wrong and the fix."""


class DownloadError(OSError):
    """A download failed (offline, broken off, damaged); the message says what to do, including by hand."""


class Preempted(Exception):
    """The run was stopped by a signal after saving `checkpoint` at `step`."""

    def __init__(self, signal_name: str, step: int, checkpoint):
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        saved = f"saved {checkpoint} at step {step}" if step >= 0 else "stopped outside a training step"
        super().__init__(f"{signal_name} received: {saved}; continue with resume={checkpoint}")
