"""What a task gives the framework: token data, vocabulary, output loss, and how to show a grid.

A task knows nothing about cores; the model only sees fixed-length token sequences.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from latentreason.atomic import write_atomically
from latentreason.datasets import cache_root
from latentreason.train.losses import IGNORE_LABEL

Split = dict[str, torch.Tensor]  # inputs, labels (long, (N, seq_len)); puzzle_ids (long, (N,))


class Task:
    vocab_size: int
    seq_len: int
    num_puzzle_ids: int = 1
    puzzle_names: list[str] | None = None  # the name of each puzzle identifier (ARC: task|augmentation), if any
    loss: str = "stablemax"
    scores_predictions: bool = False  # True: `score` wants every held-out prediction (voting, path checks)
    blank_token: int | None = None  # the input token of a cell the answer fills in, if any (`infer=fill`)

    def splits(self) -> dict[str, Split]:
        """The `train` and `test` splits, built (and cached) on first use."""
        raise NotImplementedError

    def read_file(self, path: str | Path) -> Split:
        """Examples from a user's file (for `latentreason eval data=FILE`)."""
        raise NotImplementedError

    def parse_input(self, text: str) -> torch.Tensor:
        """One puzzle from the command line (for `latentreason solve`)."""
        raise NotImplementedError

    def render(self, tokens: torch.Tensor) -> str:
        raise NotImplementedError

    def to_grid(self, tokens: torch.Tensor):
        """The grid `tokens` show, as a `latentreason.render.Grid` for the terminal and PNG renderer (None: text only)."""
        return None

    def puzzle_split(self, text: str) -> Split:
        """The rows `latentreason solve` runs for one puzzle given on the command line (one row by default)."""
        tokens = self.parse_input(text).unsqueeze(0)
        return {
            "inputs": tokens,
            "labels": torch.full_like(tokens, IGNORE_LABEL),
            "puzzle_ids": torch.zeros(1, dtype=torch.long),
        }

    def present(self, split: Split, predictions: torch.Tensor, confidence: torch.Tensor) -> list:
        """The panels `latentreason solve` shows: the puzzle and the model's answer."""
        from latentreason.render import Panel

        def panel(title: str, tokens: torch.Tensor) -> Panel:
            grid = self.to_grid(tokens)
            return Panel(title, grid) if grid is not None else Panel(title, text=self.render(tokens))

        return [
            panel("puzzle", split["inputs"][0]),
            panel(f"answer (halting confidence {float(confidence[0]):.2f})", predictions[0]),
        ]

    def score(
        self, split: Split, predictions: torch.Tensor, confidence: torch.Tensor, out_dir: Path | None = None
    ) -> dict[str, float]:
        """Task-specific metrics from every row's predicted tokens and halting confidence (e.g. ARC pass@k).

        Called when `scores_predictions` is True, after the usual token and exact accuracy; may
        write files (ARC: submission.json) into `out_dir`.
        """
        return {}

    def symmetries(self, count: int, seed: int = 0) -> list:
        """Up to `count` symmetries of the task (`latentreason.tasks.symmetry.Symmetry`), the identity first.

        Each maps a puzzle and its answer to another valid pair and has an exact inverse; the
        inference strategy `augment_vote` solves under each and votes. None by default.
        """
        return []

    def check(self, inputs: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor | None:
        """Which predicted rows are valid answers to their puzzles (bool (B,)), or None: no check for this task.

        A rule check, not the label: inference strategies may use it to reject candidates (`infer.check=true`).
        """
        return None

    def position_groups(self) -> torch.Tensor | None:
        """Optional (seq_len, G) ids of the groups each position belongs to (for `model.grid_positions`)."""
        return None

    def describe(self) -> str:
        return type(self).__name__


def build_task(config) -> Task:
    """The task a run's config names (`config.task`), ready to give its splits."""
    from omegaconf import OmegaConf

    from latentreason import registry

    return registry.build("task", OmegaConf.to_container(config.task, resolve=True))


def compact(inputs: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids as uint8 when they fit, labels as int32: 8x and 2x less memory than int64 at paper scale
    (Sudoku-Extreme-1k: 1M rows). The model casts to long where it indexes; int16 is avoided because
    the DDP backends (gloo, NCCL) cannot gather it, and the carry is gathered into checkpoints."""
    small = inputs.size == 0 or (inputs.min() >= 0 and inputs.max() < 256)
    return torch.from_numpy(inputs.astype(np.uint8 if small else np.int32)), torch.from_numpy(labels.astype(np.int32))


def to_split(arrays: dict[str, np.ndarray]) -> Split:
    inputs, labels = compact(arrays["inputs"], arrays["labels"])
    split = {"inputs": inputs, "labels": labels}
    ids = arrays.get("puzzle_ids")
    split["puzzle_ids"] = (
        torch.from_numpy(ids.astype(np.int64))
        if ids is not None
        else torch.zeros(len(split["inputs"]), dtype=torch.long)
    )
    if len(split["inputs"]) == 0:
        from latentreason.errors import ConfigError

        raise ConfigError("The dataset is empty: it holds no examples. Check the file or the task's size settings.")
    return split


def drop_seen(test: dict[str, np.ndarray], train: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """Remove held-out examples whose input also occurs in training (small grids repeat by chance)."""
    seen = {row.tobytes() for row in np.ascontiguousarray(train["inputs"])}
    keep = np.array([row.tobytes() not in seen for row in np.ascontiguousarray(test["inputs"])], dtype=bool)
    return {k: v[keep] for k, v in test.items()}, int((~keep).sum())


_KEY_FIELD = "__cache_key__"  # stored beside the arrays: a file made for other settings is not taken for this one


def cached(
    cache_dir: str | Path | None, key: dict, build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Build a dataset once and keep it as an .npz named by a hash of everything it depends on.

    A cache file that does not read back whole (truncated, damaged, written for other settings)
    is said in one line and rebuilt. Writes go to a temporary file that is flushed to disk and
    renamed, so a killed build leaves no half-written cache; the temporary files of builds that
    died are removed.
    """
    text = json.dumps(key, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = cache_root(cache_dir) / f"{key.get('task', 'data')}-{digest}.npz"
    _remove_stale_temporaries(path)
    if path.exists():
        arrays = _read_cache(path, text)
        if arrays is not None:
            return arrays
    arrays = build()
    write_atomically(path, lambda handle: np.savez(handle, **arrays, **{_KEY_FIELD: np.array(text)}))
    return arrays


def _read_cache(path: Path, key_text: str) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None (having said why) if it is damaged or was made for other settings."""
    from latentreason.console import console

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}  # reads every record: a bad CRC shows here
    except Exception as error:  # noqa: BLE001 - any failure to read back means the file is unusable
        console.print(f"[yellow]Dataset cache {path} is damaged ({type(error).__name__}: {error}); rebuilding it.[/]")
        return None
    stored = arrays.pop(_KEY_FIELD, None)
    if stored is None or str(stored) != key_text:
        console.print(
            f"[yellow]Dataset cache {path} was made for other settings or by another version; rebuilding it.[/]"
        )
        return None
    return arrays


def _remove_stale_temporaries(path: Path) -> None:
    """Delete `<cache>.<pid>.tmp` files left by builds whose process no longer runs."""
    for tmp in path.parent.glob(f"{path.name}.*.tmp") if path.parent.is_dir() else ():
        pid = tmp.name[len(path.name) + 1 : -len(".tmp")]
        if pid.isdigit() and not _process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_fingerprint(path: str | Path | None) -> list | None:
    if path is None:
        return None
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise FileNotFoundError(
            f"Dataset file {p} does not exist. Pass an existing file, e.g. task.train_file=/path/to/train.csv"
        )
    stat = p.stat()
    return [str(p), stat.st_size, stat.st_mtime_ns]
