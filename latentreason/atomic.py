"""Writing a file so that it is whole or absent: checkpoints and dataset caches both write this way.

A leaf module: the standard library only, cheap to import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def temporary_path(path: Path) -> Path:
    """Where `path` is written before its rename: one per process, so ranks writing side by side never share it."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a temporary file beside `path`, flush it to disk, then rename it over `path`.

    os.replace is atomic on POSIX and Windows, so `path` is at any moment either the previous
    complete file or the new complete one; a failed write removes its temporary file; the folder
    is synced so that the rename itself survives a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if hasattr(os, "O_DIRECTORY"):
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
