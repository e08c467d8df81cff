"""The Sudoku task: HRM's encoding, generated puzzles by default, Sudoku-Extreme CSV or text files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from latentreason import datasets
from latentreason.console import console, progress
from latentreason.errors import ConfigError
from latentreason.registry import register
from latentreason.tasks import sudoku_data as sd
from latentreason.tasks.base import (
    Split,
    Task,
    cached,
    drop_seen,
    file_fingerprint,
    to_split,
)
from latentreason.train.losses import check_loss


@register("task", "sudoku")
class Sudoku(Task):
    """Sudoku: fill the grid; 9x9 (box=3) as in the papers, 4x4 (box=2) for quick runs."""

    blank_token = int(sd.encode(0))  # an empty cell (value 0) as a token

    def __init__(
        self,
        box: int = 3,
        train_puzzles: int | None = 1000,
        augmentations: int = 1000,
        test_puzzles: int | None = 1000,
        min_givens: int = 17,
        max_givens: int = 40,
        train_file: str | None = None,
        test_file: str | None = None,
        dataset: str | None = None,
        min_difficulty: int | None = None,
        min_search_nodes: int = 0,
        seed: int = 0,
        cache_dir: str | None = None,
        loss: str = "stablemax",
    ):
        if box not in sd.SUPPORTED_BOXES:
            raise ConfigError(
                f"task.box={box!r} is not supported; use one of {', '.join(map(str, sd.SUPPORTED_BOXES))} (3: 9x9 Sudoku, 2: 4x4)"
            )
        check_loss(loss)
        self._check_dataset(dataset, box, train_file, test_file, min_difficulty)
        counts = ("train_puzzles", "test_puzzles")  # null: all of a dataset's puzzles
        for key, value in (
            ("train_puzzles", train_puzzles),
            ("test_puzzles", test_puzzles),
            ("augmentations", augmentations),
            ("min_search_nodes", min_search_nodes),
        ):
            if value is None and dataset and key in counts:
                continue
            if not isinstance(value, int) or value < 0:
                raise ConfigError(
                    f"task.{key}={value} should be 0 or more"
                    + (" (null, all puzzles, only with task.dataset)" if value is None and key in counts else "")
                )
        if min_search_nodes and (dataset or (train_file and test_file)):
            raise ConfigError(
                "task.min_search_nodes filters generated puzzles, and none are generated here; "
                "for files or a dataset use task.min_difficulty"
            )
        for key, count, file, name in (
            ("train_puzzles", train_puzzles, train_file, "train_file"),
            ("test_puzzles", test_puzzles, test_file, "test_file"),
        ):
            if count == 0 and not file:
                raise ConfigError(
                    f"task.{key}=0 leaves the {'training' if key == 'train_puzzles' else 'held-out'} split empty; set it to 1 or more, or give task.{name}"
                )
        self.box, self.n = box, sd.grid_size(box)
        if not 0 <= min_givens <= max_givens <= self.n * self.n:
            raise ConfigError(
                f"task.min_givens/max_givens must satisfy 0 <= min <= max <= {self.n * self.n}, got {min_givens}, {max_givens}"
            )
        self.vocab_size, self.seq_len = sd.vocab_size(box), self.n * self.n
        self.train_puzzles, self.augmentations, self.test_puzzles = train_puzzles, augmentations, test_puzzles
        self.min_givens, self.max_givens = min_givens, max_givens
        self.train_file, self.test_file = train_file, test_file
        self.dataset, self.min_difficulty = dataset, min_difficulty
        self.min_search_nodes = min_search_nodes
        self.seed, self.cache_dir, self.loss = seed, cache_dir, loss
        self._splits: dict[str, Split] | None = None

    @staticmethod
    def _check_dataset(dataset, box, train_file, test_file, min_difficulty) -> None:
        if dataset is None:
            if min_difficulty is not None and not (train_file or test_file):
                raise ConfigError(
                    "task.min_difficulty keeps puzzles by the rating column of Sudoku-Extreme: use it with task.dataset=sudoku-extreme or CSV files (generated puzzles have no such rating)"
                )
            return
        if train_file or test_file:
            raise ConfigError("Give task.dataset or task.train_file/test_file, not both")
        if datasets.resolve(dataset)[0].task != "sudoku":
            raise ConfigError(f"task.dataset={dataset} is not a Sudoku dataset; Sudoku reads sudoku-extreme")
        if box != 3:
            raise ConfigError(f"task.dataset={dataset} holds 9x9 puzzles: set task.box=3 (it is {box})")

    def describe(self) -> str:
        if self.dataset:
            count = "all" if self.train_puzzles is None else f"{self.train_puzzles:,}"
            hardness = f" rated {self.min_difficulty}+" if self.min_difficulty is not None else ""
            return f"9x9 Sudoku, {count} training puzzles{hardness} of {self.dataset} x {1 + self.augmentations} augmentations"
        hardness = f", {self.min_search_nodes}+ search nodes" if self.min_search_nodes else ""
        source = (
            self.train_file
            or f"{self.train_puzzles} generated puzzles ({self.min_givens}-{self.max_givens} givens{hardness})"
        )
        return f"{self.n}x{self.n} Sudoku, {source} x {1 + self.augmentations} augmentations"

    # -- data -------------------------------------------------------------------------------

    def _generate(self, count: int, augmentations: int, seed: int, what: str) -> dict[str, np.ndarray]:
        with progress(f"Generating {count} {what} puzzles", count) as advance:
            return sd.build_dataset(
                count,
                augmentations,
                seed,
                self.box,
                self.min_givens,
                self.max_givens,
                progress=advance,
                min_search_nodes=self.min_search_nodes,
            )

    def _from_file(
        self, path: str, augmentations: int, seed: int, count: int | None = None, which: int = 0
    ) -> dict[str, np.ndarray]:
        """Puzzles of a file, kept by task.min_difficulty; `count` of them drawn with the seed (None: all)."""
        puzzles, solutions, ratings = self._load_file(path)
        if self.min_difficulty is not None:
            keep = ratings >= self.min_difficulty
            if not keep.any():
                raise ConfigError(
                    f"No puzzle of {path} is rated task.min_difficulty={self.min_difficulty} or more (the highest is {int(ratings.max(initial=0))}); lower it"
                )
            puzzles, solutions, ratings = puzzles[keep], solutions[keep], ratings[keep]
        if count is not None and count < len(puzzles):  # the reference's --subsample-size, here seeded
            chosen = np.sort(np.random.default_rng([seed, which]).choice(len(puzzles), count, replace=False))
            puzzles, solutions, ratings = puzzles[chosen], solutions[chosen], ratings[chosen]
        return sd.from_puzzles(puzzles, solutions, augmentations, seed, self.box, ratings)

    def _files(self) -> tuple[str | None, str | None]:
        """The training and held-out files: task.train_file/test_file, or the fetched dataset's CSVs."""
        if not self.dataset:
            return self.train_file, self.test_file
        _, folder = datasets.locate(self.dataset, self.cache_dir)
        return str(folder / "train.csv"), str(folder / "test.csv")

    def splits(self) -> dict[str, Split]:
        if self._splits is None:
            train_file, test_file = self._files()
            key = {
                "task": "sudoku",
                "box": self.box,
                "givens": [self.min_givens, self.max_givens],
                "seed": self.seed,
                "version": 2,  # 2: each puzzle seeded on its own (faf3e48); a cache of version 1 holds other puzzles
            }
            if self.dataset or self.min_difficulty is not None:
                key.update(dataset=bool(self.dataset), min_difficulty=self.min_difficulty)
            if self.min_search_nodes:
                key.update(min_search_nodes=self.min_search_nodes)
            train_key = {
                **key,
                "split": "train",
                "n": self.train_puzzles,
                "aug": self.augmentations,
                "file": file_fingerprint(train_file),
            }
            test_key = {**key, "split": "test", "n": self.test_puzzles, "file": file_fingerprint(test_file)}
            # A fetched dataset is subsampled with the seed (the reference's build); a user's file is read whole.
            train_count, test_count = (self.train_puzzles, self.test_puzzles) if self.dataset else (None, None)
            from_train_file = lambda: self._from_file(train_file, self.augmentations, self.seed, train_count, 0)  # noqa: E731
            generated_train = lambda: self._generate(self.train_puzzles, self.augmentations, self.seed, "training")  # noqa: E731
            from_test_file = lambda: self._from_file(test_file, 0, self.seed, test_count, 1)  # noqa: E731
            # held-out puzzles from another seed, so (with overwhelming probability) unseen in training
            generated_test = lambda: self._generate(self.test_puzzles, 0, self.seed + 1_000_003, "held-out")  # noqa: E731
            train = cached(self.cache_dir, train_key, from_train_file if train_file else generated_train)
            test = cached(self.cache_dir, test_key, from_test_file if test_file else generated_test)
            test, dropped = drop_seen(test, train)
            if dropped:
                console.print(
                    f"Dropped {dropped} held-out puzzles that also occur in the training set; {len(test['inputs'])} remain."
                )
            self._splits = {"train": to_split(train), "test": to_split(test)}
        return self._splits

    def _load_file(self, path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A file's puzzles, solutions and ratings; a bar while the puzzles of a plain list are solved."""
        count = sd.count_puzzle_lines(path)
        if not count:
            return sd.load_sudoku_file(path, self.box)
        with progress(f"Solving the {count} puzzles of {Path(path).name}", count) as advance:
            return sd.load_sudoku_file(path, self.box, advance)

    def read_file(self, path: str | Path) -> Split:
        puzzles, solutions, _ = self._load_file(path)
        return to_split({"inputs": sd.encode(puzzles), "labels": sd.encode(solutions)})

    def parse_input(self, text: str) -> torch.Tensor:
        text = text.strip()
        table = sd._char_table(self.box)
        grid = sd._parse_grid(text, self.box, table, "puzzle", "the command line")
        return torch.from_numpy(sd.encode(grid).astype(np.int64))

    def symmetries(self, count: int, seed: int = 0) -> list:
        """The identity, then random HRM augmentations (digits relabelled, transposition, rows and columns moved)."""
        from latentreason.tasks.symmetry import Symmetry, identity

        rng = np.random.default_rng(seed)
        found = [identity(self.seq_len, self.vocab_size)]
        for index in range(1, count):
            digit_map, transpose, row_order, col_order = sd.draw_symmetry(rng, self.box)
            # new cell (r, c) <- old cell (row_order[r], col_order[c]) of the (transposed) grid
            rows, cols = np.meshgrid(row_order, col_order, indexing="ij")
            positions = (cols * self.n + rows) if transpose else (rows * self.n + cols)
            # PAD stays PAD, value v (token v + 1) -> digit_map[v] + 1
            tokens = np.concatenate([[0], sd.encode(digit_map)])
            positions = torch.from_numpy(positions.reshape(-1)).long()
            found.append(Symmetry(positions, torch.from_numpy(tokens.astype(np.int64)), f"sudoku-{index}"))
        return found

    def check(self, inputs: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        """A complete grid with every row, column and box holding each digit once, and every given kept."""
        puzzles = sd.decode(np.asarray(inputs.cpu(), dtype=np.int64).clip(0, 255).astype(np.uint8))
        answers = sd.decode(np.asarray(predictions.cpu(), dtype=np.int64).clip(0, 255).astype(np.uint8))
        valid = sd._valid_solution_mask(answers, self.box) & sd._consistent_mask(puzzles, answers)
        return torch.from_numpy(valid)

    def position_groups(self) -> torch.Tensor:
        """Row, column and box of every cell, as ids 0..3n-1."""
        cell = torch.arange(self.n * self.n)
        row, col = cell // self.n, cell % self.n
        box = (row // self.box) * self.box + col // self.box
        return torch.stack((row, self.n + col, 2 * self.n + box), dim=1)

    def to_grid(self, tokens: torch.Tensor):
        from latentreason.render import Grid

        values = sd.decode(np.asarray(tokens.cpu(), dtype=np.int64).clip(0, 255).astype(np.uint8))
        return Grid(np.asarray(values, dtype=np.int64).reshape(self.n, self.n), "digits", self.box)

    def render(self, tokens: torch.Tensor) -> str:
        grid = sd.decode(np.asarray(tokens.cpu(), dtype=np.int64).clip(0, 255).astype(np.uint8))
        rows = []
        for r in range(self.n):
            if r and r % self.box == 0:
                rows.append("+".join(["-" * (2 * self.box + 1)] * self.box))
            cells = [sd.DIGIT_CHARS[v - 1] if v > 0 else "." for v in grid[r * self.n : (r + 1) * self.n]]
            rows.append("|".join(" " + " ".join(cells[c : c + self.box]) + " " for c in range(0, self.n, self.box)))
        return "\n".join(rows)
