"""What a task gives the framework: token data, vocabulary, output loss, and how to show a grid.

A task knows nothing about cores; the model only sees fixed-length token sequences.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from latentreason.train.losses import IGNORE_LABEL

Split = dict[str, torch.Tensor]  # inputs, labels (long, (N, seq_len)); puzzle_ids (long, (N,))


class Task:
    vocab_size: int
    seq_len: int
    num_puzzle_ids: int = 1
    puzzle_names: list[str] | None = None  # the name of each puzzle identifier (ARC: task|augmentation), if any
    loss: str = "stablemax"
    scores_predictions: bool = False  # True: `score` wants every held-out prediction (voting, path checks)

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
        return {"inputs": tokens, "labels": torch.full_like(tokens, IGNORE_LABEL), "puzzle_ids": torch.zeros(1, dtype=torch.long)}

    def present(self, split: Split, predictions: torch.Tensor, confidence: torch.Tensor) -> list:
        """The panels `latentreason solve` shows: the puzzle and the model's answer."""
        from latentreason.render import Panel

        def panel(title: str, tokens: torch.Tensor) -> Panel:
            grid = self.to_grid(tokens)
            return Panel(title, grid) if grid is not None else Panel(title, text=self.render(tokens))

        return [panel("puzzle", split["inputs"][0]), panel(f"answer (halting confidence {float(confidence[0]):.2f})", predictions[0])]

    def score(self, split: Split, predictions: torch.Tensor, confidence: torch.Tensor, out_dir: Path | None = None) -> dict[str, float]:
        """Task-specific metrics from every row's predicted tokens and halting confidence (e.g. ARC pass@k).

        Called when `scores_predictions` is True, after the usual token and exact accuracy; may
        write files (ARC: submission.json) into `out_dir`.
        """
        return {}

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
    split["puzzle_ids"] = torch.from_numpy(ids.astype(np.int64)) if ids is not None else torch.zeros(len(split["inputs"]), dtype=torch.long)
    if len(split["inputs"]) == 0:
        from latentreason.errors import ConfigError

        raise ConfigError("The dataset is empty: it holds no examples. Check the file or the task's size settings.")
    return split


def drop_seen(test: dict[str, np.ndarray], train: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """Remove held-out examples whose input also occurs in training (small grids repeat by chance)."""
    seen = {row.tobytes() for row in np.ascontiguousarray(train["inputs"])}
    keep = np.array([row.tobytes() not in seen for row in np.ascontiguousarray(test["inputs"])], dtype=bool)
    return {k: v[keep] for k, v in test.items()}, int((~keep).sum())


def cached(cache_dir: str | Path, key: dict, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Build a dataset once and keep it as an .npz named by a hash of everything it depends on."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = Path(cache_dir).expanduser() / f"{key.get('task', 'data')}-{digest}.npz"
    if path.exists():
        with np.load(path) as data:
            return dict(data)
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # one per process: ranks started by torchrun build it side by side
    np.savez(tmp, **arrays)
    tmp.replace(path)  # atomic: an interrupted build never leaves a half-written cache
    return arrays


def file_fingerprint(path: str | Path | None) -> list | None:
    if path is None:
        return None
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise FileNotFoundError(f"Dataset file {p} does not exist. Pass an existing file, e.g. task.train_file=/path/to/train.csv")
    stat = p.stat()
    return [str(p), stat.st_size, stat.st_mtime_ns]
