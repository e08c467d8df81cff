"""The ARC-AGI task: HRM's data protocol and the HRM/TRM evaluation (voting over augmentations, pass@k).

Training data: every pair of the training tasks, and the demonstration pairs of the evaluation
tasks; each task appears under `augmentations` de-duplicated variants (a dihedral transform and a
colour permutation keeping black), and each (task, variant) has its own puzzle identifier, whose
embedding the model learns. Held-out data: the test inputs of the evaluation tasks under the same
variants, so each is predicted with the embedding learned from its demonstrations. Predictions
are mapped back, vote, and are scored by `arc_eval` (pass@k by both rules, submission.json).

Grids are encoded on a `size` x `size` canvas (30 in the papers) with end-of-grid markers; a
smaller canvas with `skip_larger: true` keeps only small tasks, for quick CPU runs.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

from latentreason import datasets
from latentreason.console import console, progress
from latentreason.errors import ConfigError, DatasetFormatError
from latentreason.registry import register
from latentreason.tasks import arc_data as ad
from latentreason.tasks import arc_eval
from latentreason.tasks.base import Split, Task, cached, compact, file_fingerprint
from latentreason.train.losses import IGNORE_LABEL as IGNORE
from latentreason.train.losses import check_loss


def _fingerprint(path: str | None) -> list | None:
    """Size and time of a file, or of every .json file of a folder, so edited data rebuilds the cache."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        return [str(p.resolve())] + [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(p.glob("*.json"))]
    return file_fingerprint(p)


@register("task", "arc")
class Arc(Task):
    """ARC-AGI-1/2 from the official JSON files: augmented tasks, puzzle embeddings, voting, pass@k."""

    scores_predictions = True

    def __init__(
        self,
        train_path: str | None = None,
        train_solutions: str | None = None,
        eval_path: str | None = None,
        eval_solutions: str | None = None,
        eval_fraction: float = 0.1,
        size: int = ad.MAX_SIZE,
        skip_larger: bool = False,
        tasks: list[str] | None = None,
        max_tasks: int | None = None,
        augmentations: int = 1000,
        translate: bool = True,
        pass_k: list[int] = (1, 2, 10, 100, 1000),
        dataset: str | list[str] | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        loss: str = "stablemax",
    ):
        if not train_path and not dataset:
            raise ConfigError(
                "The arc task needs its data: task.train_path=/path/to/ARC-AGI/data/training (a folder of task .json files, or a combined challenges .json), "
                "or task.dataset=arc-agi-1 (or [arc-agi-1,concept-arc], or arc-agi-2) after `latentreason data fetch arc-agi-1`"
            )
        if train_path and dataset:
            raise ConfigError("Give task.dataset or task.train_path/eval_path, not both")
        self.dataset = [dataset] if isinstance(dataset, str) else (list(dataset) if dataset else None)
        for name in self.dataset or ():
            if datasets.resolve(name)[0].task != "arc":
                raise ConfigError(
                    f"task.dataset={name} is not an ARC dataset; ARC reads {', '.join(n for n, d in datasets.CATALOGUE.items() if d.task == 'arc')}"
                )
        if not isinstance(size, int) or not 1 <= size <= ad.MAX_SIZE:
            raise ConfigError(
                f"task.size={size!r} should be an integer in 1..{ad.MAX_SIZE} (the canvas grids are drawn on; 30 in the papers)"
            )
        if not isinstance(augmentations, int) or augmentations < 0:
            raise ConfigError(f"task.augmentations={augmentations!r} should be 0 or more (HRM: 1000)")
        if not eval_path and not 0.0 < eval_fraction < 1.0:
            raise ConfigError(f"task.eval_fraction={eval_fraction!r} should be between 0 and 1, or give task.eval_path")
        if max_tasks is not None and (not isinstance(max_tasks, int) or max_tasks < 1):
            raise ConfigError(f"task.max_tasks={max_tasks!r} should be a positive integer or null")
        check_loss(loss)
        self.train_path, self.train_solutions, self.eval_path, self.eval_solutions = (
            train_path,
            train_solutions,
            eval_path,
            eval_solutions,
        )
        self.eval_fraction, self.size, self.skip_larger = eval_fraction, size, skip_larger
        self.tasks, self.max_tasks, self.augmentations, self.translate = (
            (list(tasks) if tasks else None),
            max_tasks,
            augmentations,
            translate,
        )
        self.pass_k = sorted({int(k) for k in pass_k})
        self.seed, self.cache_dir, self.loss = seed, cache_dir, loss
        self.vocab_size, self.seq_len = ad.VOCAB_SIZE, size * size
        self._splits: dict[str, Split] | None = None

    def describe(self) -> str:
        held_out = self.eval_path or f"{self.eval_fraction:.0%} of the tasks held out"
        if self.dataset:
            held_out = "the evaluation tasks" if any(datasets.resolve(n)[0].eval for n in self.dataset) else held_out
        return f"ARC from {self.train_path or ' + '.join(self.dataset)} (evaluation: {held_out}), {self.size}x{self.size} canvas, up to {1 + self.augmentations} variants per task"

    @property
    def num_puzzle_ids(self) -> int:
        return len(self.splits()["train"]["names"])

    @property
    def puzzle_names(self) -> list[str]:
        return self.splits()["train"]["names"]

    # -- choosing tasks ------------------------------------------------------------------------

    def _select(self, tasks: list[ad.ArcTask]) -> list[ad.ArcTask]:
        """The tasks kept by task.tasks, task.skip_larger and task.max_tasks."""
        if self.tasks is not None:
            tasks = [t for t in tasks if t.id in set(self.tasks)]
        large = [t for t in tasks if not ad.fits(t, self.size)]
        if large and not self.skip_larger:
            raise ConfigError(
                f"ARC task {large[0].id} has a grid larger than task.size={self.size} ({len(large)} such tasks); raise task.size (max 30) or set task.skip_larger=true"
            )
        tasks = [t for t in tasks if ad.fits(t, self.size)]
        return tasks[: self.max_tasks] if self.max_tasks else tasks

    def _dataset_folders(self) -> tuple[list[Path], list[Path]]:
        """The folders of training and evaluation tasks of the fetched datasets task.dataset names.

        As the reference builds ARC: every task of a training folder (ConceptARC: each concept's
        folder) is trained on; evaluation tasks give their demonstrations to training and their
        test inputs to the held-out split."""
        train, evaluation = [], []
        for name in self.dataset or ():
            dataset, folder = datasets.locate(name, self.cache_dir)
            train += [p for pattern in dataset.train for p in sorted(folder.glob(pattern)) if p.is_dir()]
            evaluation += [p for pattern in dataset.eval for p in sorted(folder.glob(pattern)) if p.is_dir()]
        return train, evaluation

    @staticmethod
    def _load_folders(folders: list[Path]) -> list[ad.ArcTask]:
        """The tasks of several folders; an id met twice is named after its folder too (`Center/Center1`)."""
        from dataclasses import replace

        tasks: dict[str, ad.ArcTask] = {}
        for folder in folders:
            for task in ad.load_tasks(folder):
                if task.id in tasks:
                    task = replace(task, id=f"{folder.name}/{task.id}")
                tasks[task.id] = task
        return [tasks[k] for k in sorted(tasks)]

    def _task_sets(self) -> tuple[list[ad.ArcTask], list[ad.ArcTask]]:
        """(training tasks, evaluation tasks). Without eval_path a seeded share of the training tasks is held out."""
        if self.dataset:
            train_folders, eval_folders = self._dataset_folders()
            train, evaluation = self._load_folders(train_folders), self._load_folders(eval_folders)
            source = " + ".join(self.dataset)
        else:
            train = ad.load_tasks(self.train_path, self.train_solutions)
            evaluation = ad.load_tasks(self.eval_path, self.eval_solutions) if self.eval_path else []
            source = f"{self.train_path}" + (f" or {self.eval_path}" if self.eval_path else "")
        missing = sorted(set(self.tasks or ()) - {t.id for t in train + evaluation})
        if missing:
            raise ConfigError(f"task.tasks names {missing[0]!r}, which is not in {source}")
        if evaluation or self.eval_path:
            train, evaluation = self._select(train), self._select(evaluation)
        else:
            chosen = self._select(train)
            order = np.random.default_rng(self.seed).permutation(len(chosen))
            held = max(1, round(self.eval_fraction * len(chosen))) if len(chosen) > 1 else 0
            evaluation = [chosen[i] for i in sorted(order[:held])]
            train = [chosen[i] for i in sorted(order[held:])]
        if not train and not evaluation:
            raise ConfigError(
                f"No ARC task is left after task.tasks / task.max_tasks / task.skip_larger (size {self.size}); loosen them"
            )
        return train, evaluation

    # -- data ------------------------------------------------------------------------------------

    def _variants(self, task: ad.ArcTask) -> list[ad.Augmentation]:
        """The task's augmentations, from a generator of its own: the same for a task wherever it is read."""
        rng = np.random.default_rng([self.seed, zlib.crc32(task.id.encode())])
        return ad.augmentations(task, self.augmentations, rng)

    def _rows(self, tasks: list[ad.ArcTask], names: dict[str, int], which: str, out: dict[str, list]) -> None:
        """Append the encoded rows of `tasks`: `all` pairs, `demos` (train pairs) or `test` inputs."""
        with progress(f"Encoding {len(tasks)} ARC tasks ({which})", len(tasks)) as advance:
            for task in tasks:
                translate = (
                    np.random.default_rng([self.seed, zlib.crc32(task.id.encode()), 1])
                    if self.translate and which != "test"
                    else None
                )
                pairs = {
                    "all": task.train + [p for p in task.test if p[1] is not None],
                    "demos": task.train,
                    "test": task.test,
                }[which]
                for aug in self._variants(task):
                    name = f"{task.id}|{aug.name}"
                    puzzle = names.setdefault(name, len(names))
                    for index, (inp, output) in enumerate(pairs):
                        if which == "test":
                            x = ad.encode(ad.apply(inp, aug), self.size)
                            y = (
                                ad.encode(ad.apply(output, aug), self.size).astype(np.int16)
                                if output is not None
                                else np.zeros_like(x, dtype=np.int16)
                            )
                        else:
                            x, y = ad.encode_pair(ad.apply(inp, aug), ad.apply(output, aug), self.size, translate)
                            y = y.astype(np.int16)
                        y[y == ad.PAD] = IGNORE  # padding is not predicted (HRM: ignore_label_id 0)
                        out["inputs"].append(x)
                        out["labels"].append(y)
                        out["puzzle_ids"].append(puzzle)
                        out["test_index"].append(index if which == "test" else -1)
                advance(1)

    @staticmethod
    def _arrays(rows: dict[str, list], size: int) -> dict[str, np.ndarray]:
        return {
            "inputs": np.array(rows["inputs"], dtype=np.uint8).reshape(-1, size * size),
            "labels": np.array(rows["labels"], dtype=np.int16).reshape(-1, size * size),
            "puzzle_ids": np.array(rows["puzzle_ids"], dtype=np.int64),
            "test_index": np.array(rows["test_index"], dtype=np.int64),
        }

    def _build(self) -> dict[str, np.ndarray]:
        train_tasks, eval_tasks = self._task_sets()
        trained = {t.id for t in train_tasks}
        names: dict[str, int] = {}
        train, test = ({k: [] for k in ("inputs", "labels", "puzzle_ids", "test_index")} for _ in range(2))
        self._rows(train_tasks, names, "all", train)
        self._rows([t for t in eval_tasks if t.id not in trained], names, "demos", train)
        self._rows(eval_tasks, names, "test", test)
        if not test["inputs"]:
            raise ConfigError(
                "The ARC evaluation set is empty: give task.eval_path, or more tasks with task.eval_fraction"
            )
        arrays = {f"train_{k}": v for k, v in self._arrays(train, self.size).items()}
        arrays.update({f"test_{k}": v for k, v in self._arrays(test, self.size).items()})
        arrays["names"] = np.array(list(names), dtype=str)
        return arrays

    def splits(self) -> dict[str, Split]:
        if self._splits is None:
            key = {
                "task": "arc",
                "train": _fingerprint(self.train_path),
                "dataset": [_fingerprint(str(p)) for p in sum(self._dataset_folders(), [])],
                "train_solutions": _fingerprint(self.train_solutions),
                "eval": _fingerprint(self.eval_path),
                "eval_solutions": _fingerprint(self.eval_solutions),
                "fraction": self.eval_fraction,
                "size": self.size,
                "skip_larger": self.skip_larger,
                "tasks": self.tasks,
                "max_tasks": self.max_tasks,
                "aug": self.augmentations,
                "translate": self.translate,
                "seed": self.seed,
                "version": 1,
            }
            arrays = cached(self.cache_dir, key, self._build)
            names = arrays["names"].tolist()
            self._splits = {
                s: self._split({k.removeprefix(f"{s}_"): v for k, v in arrays.items() if k.startswith(f"{s}_")}, names)
                for s in ("train", "test")
            }
            console.print(f"ARC: {len(names):,} puzzle identifiers (task x variant).")
        return self._splits

    @staticmethod
    def _split(arrays: dict[str, np.ndarray], names: list[str]) -> Split:
        # Compact dtypes: at paper scale (about a million rows of 900 tokens) int64 would need tens of GB.
        split = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        split["inputs"], split["labels"] = compact(arrays["inputs"], arrays["labels"])
        split["names"] = names
        return split

    def read_file(self, path: str | Path, solutions: str | Path | None = None) -> Split:
        """The test inputs of the tasks in `path` (folder or challenges file), under this task's variants."""
        tasks = ad.load_tasks(path, solutions)
        large = [t.id for t in tasks if not ad.fits(t, self.size)]
        if large:
            raise DatasetFormatError(
                f"{path}: task {large[0]} has a grid larger than the model's {self.size}x{self.size} canvas ({len(large)} such tasks); remove them or use a model trained with a larger task.size"
            )
        names: dict[str, int] = {}
        rows = {k: [] for k in ("inputs", "labels", "puzzle_ids", "test_index")}
        self._rows(tasks, names, "test", rows)
        return self._split(self._arrays(rows, self.size), list(names))

    # -- scoring ---------------------------------------------------------------------------------

    def _answers(
        self, split: Split, predictions: torch.Tensor, confidence: torch.Tensor
    ) -> dict[str, dict[int, arc_eval.TestInput]]:
        """Ranked answers per task and test input, from the first len(predictions) rows of `split`.

        A task only partly predicted (`eval limit=`) is left out, so it neither scores as complete
        nor reaches the submission with test inputs missing.
        """
        names, rows = split["names"], []
        task_of = [names[p].rsplit("|", 1)[0] for p in split["puzzle_ids"].tolist()]
        partial = set(task_of[len(predictions) :])
        if partial:
            console.print(
                f"[yellow]{len(partial)} ARC task(s) only partly predicted (limit=) are left out of the scores and the submission.[/]"
            )
        labels = split["labels"][: len(predictions)].numpy()
        for row, (puzzle, index, tokens, conf) in enumerate(
            zip(
                split["puzzle_ids"].tolist(),
                split["test_index"].tolist(),
                predictions.cpu().numpy(),
                confidence.tolist(),
            )
        ):
            task_id, aug_name = names[puzzle].rsplit("|", 1)
            if task_id in partial:
                continue
            aug = ad.Augmentation.from_name(aug_name)
            grid = ad.invert(ad.decode(tokens, self.size), aug)
            known = labels[row] != IGNORE
            truth = ad.invert(ad.decode(np.where(known, labels[row], ad.PAD), self.size), aug) if known.any() else None
            rows.append((task_id, index, grid, conf, truth))
        return arc_eval.collect(rows)

    def score(
        self, split: Split, predictions: torch.Tensor, confidence: torch.Tensor, out_dir: Path | None = None
    ) -> dict[str, float]:
        """pass@k by both rules; writes `submission.json` (two attempts per test input) into `out_dir`."""
        if not bool((split["test_index"] >= 0).any()):  # e.g. `eval data=train`: demonstration pairs, no test inputs
            console.print(
                "[yellow]This split holds no ARC test inputs (training pairs only): pass@k and the submission are for data=test or an ARC file.[/]"
            )
            return {}
        answers = self._answers(split, predictions, confidence)
        scores = arc_eval.pass_at_k(answers, self.pass_k)
        if out_dir is not None:
            path = arc_eval.write_json(arc_eval.submission(answers), Path(out_dir) / "submission.json")
            console.print(f"ARC submission ({len(answers)} tasks, 2 attempts per test input): {path}")
        return scores

    # -- solving one task --------------------------------------------------------------------------

    def puzzle_split(self, text: str) -> Split:
        """`latentreason solve` takes one ARC task file (its test inputs are predicted)."""
        if not Path(text).expanduser().is_file():
            raise DatasetFormatError(
                f'{text}: give the path of one ARC task .json file ({{"train": [...], "test": [...]}})'
            )
        return self.read_file(text)

    def present(self, split: Split, predictions: torch.Tensor, confidence: torch.Tensor) -> list:
        from latentreason.render import Grid, Panel

        panels = []
        identity = {
            i: row
            for row, (i, p) in enumerate(zip(split["test_index"].tolist(), split["puzzle_ids"].tolist()))
            if split["names"][p].endswith(ad.IDENTITY.name)
        }
        for task_id, inputs in self._answers(split, predictions, confidence).items():
            for index, answer in inputs.items():
                votes = sum(c.votes for c in answer.candidates)
                if index in identity:
                    panels.append(
                        Panel(
                            f"{task_id} test {index}: input",
                            Grid(ad.decode(split["inputs"][identity[index]].numpy(), self.size), "arc"),
                        )
                    )
                for attempt, candidate in enumerate(answer.candidates[:2], start=1):
                    mark = (
                        ""
                        if answer.truth is None
                        else (
                            " right"
                            if arc_eval.grid_key(candidate.grid) == arc_eval.grid_key(answer.truth)
                            else " wrong"
                        )
                    )
                    panels.append(
                        Panel(f"attempt {attempt}: {candidate.votes}/{votes} votes{mark}", Grid(candidate.grid, "arc"))
                    )
                if answer.truth is not None:
                    panels.append(Panel("expected", Grid(answer.truth, "arc")))
        return panels

    def symmetries(self, count: int, seed: int = 0) -> list:
        """The identity, then random ARC augmentations of the canvas: a dihedral transform, new colours (black kept).

        The rows keep their puzzle identifier: with puzzle embeddings, which name one augmented
        variant of a task, the task's own vote over its held-out variants (`score`) is the ARC
        papers' procedure; these symmetries are for models without them.
        """
        from latentreason.tasks.grids import dihedral
        from latentreason.tasks.symmetry import Symmetry, identity

        rng = np.random.default_rng(seed)
        cells = np.arange(self.seq_len).reshape(self.size, self.size)
        found = [identity(self.seq_len, self.vocab_size)]
        for _ in range(1, count):
            colours = (0, *rng.permutation(np.arange(1, ad.NUM_COLOURS)).tolist())
            aug = ad.Augmentation(int(rng.integers(ad.NUM_TRANSFORMS)), colours)
            tokens = np.arange(self.vocab_size)
            tokens[ad.COLOUR_OFFSET :] = np.asarray(aug.colours) + ad.COLOUR_OFFSET
            positions = dihedral(cells, aug.transform).reshape(-1)
            found.append(Symmetry(torch.from_numpy(positions.copy()).long(), torch.from_numpy(tokens).long(), aug.name))
        return found

    def to_grid(self, tokens: torch.Tensor):
        from latentreason.render import Grid

        return Grid(ad.decode(np.asarray(tokens.cpu()), self.size), "arc")
