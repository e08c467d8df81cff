"""The Maze task: mark the shortest path from S to G. Maze-Hard (30x30, paths of 110+ moves) as in HRM.

Without files, mazes are generated offline (unique shortest paths, so exact accuracy is
well defined). `task.train_file`/`test_file` read the reference CSV (`source,q,a,rating`).
Besides token and exact accuracy, every held-out prediction is checked for being *a* valid
shortest path (`valid_path`), which also credits an equally short path other than the label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from latentreason import datasets
from latentreason.console import progress
from latentreason.errors import ConfigError, DatasetFormatError
from latentreason.registry import register
from latentreason.tasks import maze_data as md
from latentreason.tasks.base import (
    Split,
    Task,
    cached,
    drop_seen,
    file_fingerprint,
    to_split,
)
from latentreason.tasks.grids import dihedral
from latentreason.train.losses import check_loss


@register("task", "maze")
class Maze(Task):
    """Maze: find the shortest path; 30x30 Maze-Hard as in the papers, smaller mazes for quick runs."""

    scores_predictions = True

    def __init__(
        self,
        size: int = 30,
        train_mazes: int | None = 1000,
        test_mazes: int | None = 1000,
        min_path_length: int | None = None,
        loop_fraction: float = md.DEFAULT_LOOP_FRACTION,
        augment: bool = False,
        train_file: str | None = None,
        test_file: str | None = None,
        dataset: str | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        loss: str = "stablemax",
    ):
        if not isinstance(size, int) or size < 5:
            raise ConfigError(f"task.size={size!r} should be an integer of at least 5 (30 for Maze-Hard)")
        for key, value in (("train_mazes", train_mazes), ("test_mazes", test_mazes)):
            if value is None and dataset:
                continue  # all of the dataset's mazes
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"task.{key}={value!r} should be 1 or more")
        if dataset:
            if train_file or test_file:
                raise ConfigError("Give task.dataset or task.train_file/test_file, not both")
            if datasets.resolve(dataset)[0].task != "maze":
                raise ConfigError(f"task.dataset={dataset} is not a Maze dataset; Maze reads maze-30x30-hard")
            if size != 30:
                raise ConfigError(f"task.dataset={dataset} holds 30x30 mazes: set task.size=30 (it is {size})")
        if min_path_length is not None and not 1 <= min_path_length < size * size:
            raise ConfigError(
                f"task.min_path_length={min_path_length!r} should be between 1 and {size * size - 1} (null: {md.default_min_path(size)} for size {size})"
            )
        if not 0.0 <= loop_fraction <= 1.0:
            raise ConfigError(f"task.loop_fraction={loop_fraction!r} should be between 0 and 1")
        check_loss(loss)
        self.size, self.train_mazes, self.test_mazes = size, train_mazes, test_mazes
        self.min_path_length = md.default_min_path(size) if min_path_length is None else min_path_length
        self.loop_fraction, self.augment = loop_fraction, augment
        self.train_file, self.test_file, self.dataset = train_file, test_file, dataset
        self.seed, self.cache_dir, self.loss = seed, cache_dir, loss
        self.vocab_size, self.seq_len = md.VOCAB_SIZE, size * size
        self._splits: dict[str, Split] | None = None

    def describe(self) -> str:
        source = (
            self.dataset
            or self.train_file
            or f"{self.train_mazes} generated mazes (shortest path >= {self.min_path_length} moves)"
        )
        return f"{self.size}x{self.size} Maze, {source}" + (" x 8 dihedral augmentations" if self.augment else "")

    # -- data -------------------------------------------------------------------------------

    def _generate(self, count: int, seed: int, augment: bool, what: str) -> dict[str, np.ndarray]:
        with progress(f"Generating {count} {what} mazes", count) as advance:
            data = md.build_dataset(
                count, self.size, self.min_path_length, seed, augment, self.loop_fraction, progress=advance
            )
        return {"inputs": data["inputs"], "labels": data["labels"]}

    def _from_file(self, path: str, augment: bool, count: int | None = None, which: int = 0) -> dict[str, np.ndarray]:
        """The mazes of a file (`count` of them drawn with the seed; None: all), with the 8 dihedral transforms if `augment`."""
        questions, answers, _ = md.load_maze_csv(path, self.size)
        if count is not None and count < len(questions):  # the reference's --subsample-size, here seeded
            chosen = np.sort(np.random.default_rng([self.seed, which]).choice(len(questions), count, replace=False))
            questions, answers = questions[chosen], answers[chosen]
        if augment:
            square = lambda rows: rows.reshape(-1, self.size, self.size)  # noqa: E731
            questions = np.stack([dihedral(q, k).ravel() for q in square(questions) for k in range(8)])
            answers = np.stack([dihedral(a, k).ravel() for a in square(answers) for k in range(8)])
        return {"inputs": questions, "labels": answers}

    def splits(self) -> dict[str, Split]:
        if self._splits is None:
            train_file, test_file, count = self.train_file, self.test_file, {}
            if self.dataset:  # Maze-Hard: the fetched CSVs, `train_mazes`/`test_mazes` of each drawn with the seed
                folder = datasets.locate(self.dataset, self.cache_dir)[1]
                train_file, test_file = str(folder / "train.csv"), str(folder / "test.csv")
                count = {"train": self.train_mazes, "test": self.test_mazes}
            key = {
                "task": "maze",
                "size": self.size,
                "min_path": self.min_path_length,
                "loops": self.loop_fraction,
                "seed": self.seed,
                "version": 1,
            }
            if self.dataset:
                key["dataset"] = True
            train_key = {
                **key,
                "split": "train",
                "n": self.train_mazes,
                "augment": self.augment,
                "file": file_fingerprint(train_file),
            }
            test_key = {**key, "split": "test", "n": self.test_mazes, "file": file_fingerprint(test_file)}
            if train_file:
                train = cached(
                    self.cache_dir, train_key, lambda: self._from_file(train_file, self.augment, count.get("train"), 0)
                )
            else:
                train = cached(
                    self.cache_dir,
                    train_key,
                    lambda: self._generate(self.train_mazes, self.seed, self.augment, "training"),
                )
            if test_file:
                test = cached(self.cache_dir, test_key, lambda: self._from_file(test_file, False, count.get("test"), 1))
            else:
                test = cached(
                    self.cache_dir,
                    test_key,
                    lambda: self._generate(self.test_mazes, self.seed + 1_000_003, False, "held-out"),
                )
            test, _ = drop_seen(test, train)
            self._splits = {"train": to_split(train), "test": to_split(test)}
        return self._splits

    def read_file(self, path: str | Path) -> Split:
        questions, answers, _ = md.load_maze_csv(path, self.size)
        return to_split({"inputs": questions, "labels": answers})

    def parse_input(self, text: str) -> torch.Tensor:
        """A maze as one line of size*size characters of `# SGo`, or a file of its rows."""
        path = Path(text).expanduser()
        if len(text) < 4096 and path.is_file():
            text = path.read_text()
        flat = "".join(line for line in text.splitlines() if line.strip("\n")) if "\n" in text else text
        if len(flat) != self.size * self.size:
            raise DatasetFormatError(
                f"the maze has {len(flat)} characters; a {self.size}x{self.size} maze needs {self.size * self.size} of {md.CHARS!r} (one line, or {self.size} rows in a file)"
            )
        try:
            ids = md.encode_rows([flat])[0]
        except ValueError as error:
            raise DatasetFormatError(f"the maze: {error}") from None
        if (ids == md.START).sum() != 1 or (ids == md.GOAL).sum() != 1:
            raise DatasetFormatError("the maze needs exactly one start 'S' and one goal 'G'")
        return torch.from_numpy(ids.astype(np.int64))

    def symmetries(self, count: int, seed: int = 0) -> list:
        """The identity, then up to 7 other rotations and reflections of the square maze (in a random order)."""
        from latentreason.tasks.symmetry import Symmetry

        order = [0, *(1 + np.random.default_rng(seed).permutation(7))][: max(1, min(count, 8))]
        cells = np.arange(self.size * self.size).reshape(self.size, self.size)
        vocab = torch.arange(self.vocab_size)
        positions = [torch.from_numpy(dihedral(cells, int(k)).reshape(-1)).long() for k in order]
        return [Symmetry(p, vocab, f"dihedral-{int(k)}") for p, k in zip(positions, order)]

    def check(self, inputs: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        """A shortest path from S to G, the labelled one or another (`maze_data.is_shortest_path`)."""
        questions, answers = inputs.cpu().numpy(), predictions.cpu().numpy()
        return torch.tensor([md.is_shortest_path(q, a) for q, a in zip(questions, answers)], dtype=torch.bool)

    def position_groups(self) -> torch.Tensor:
        """Row and column of every cell, as ids 0..2*size-1."""
        cell = torch.arange(self.size * self.size)
        return torch.stack((cell // self.size, self.size + cell % self.size), dim=1)

    # -- showing and scoring -----------------------------------------------------------------

    def to_grid(self, tokens: torch.Tensor):
        from latentreason.render import Grid

        return Grid(np.asarray(tokens.cpu(), dtype=np.int64).reshape(self.size, self.size), "maze")

    def score(
        self, split: Split, predictions: torch.Tensor, confidence: torch.Tensor, out_dir: Path | None = None
    ) -> dict[str, float]:
        """valid_path: the share of predictions that are a shortest S-G path, the labelled one or another."""
        valid = self.check(split["inputs"][: len(predictions)], predictions)
        return {"valid_path": float(valid.float().mean()) if len(valid) else float("nan")}
