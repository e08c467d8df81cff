"""The framework's own errors: each ends a command in one line that says what to fix.

A leaf module: it imports nothing of the package, so any module may raise these without a cycle.
"""


class ConfigError(ValueError):
    """A config, a command-line option or a checkpoint does not fit; the message says how to fix it."""


class DatasetFormatError(ValueError):
    """A dataset file is malformed; the message names `path:line`, what is wrong and the fix."""


class DownloadError(OSError):
    """A download failed (offline, broken off, damaged); the message says what to do, including by hand."""
