"""Your own sequence-to-sequence task: pairs of token sequences from a CSV or JSONL file.

`latentreason run recipe=hrm_seq2seq task.train_file=pairs.csv` trains on them with nothing else
to write. The file holds one example per row:

- CSV with a header naming the columns `input` and `output` (other columns are ignored). Each
  cell is a sequence of tokens separated by spaces (`tokens: spaces`, the default: `3 1 2`,
  `the cat sat`), or one token per character (`tokens: chars`: `312`, `abc`).
- JSONL: one object per line, `{"input": [...], "output": [...]}`; a list is taken token by token
  (its items may be strings or numbers), a string is split as in a CSV cell.

The vocabulary is built from the training and test files: id 0 is padding, ids 1.. are the
tokens in sorted order. Every sequence is padded with 0 to the longest input or output of the
files (the model's `seq_len`); labels past the end of an output are -100, so they count neither in
the loss nor in the accuracy. Output token i is predicted at position i: the model reads the whole
input at once (non-causal), so outputs of the input's length (copy, reversal, sorting, per-cell
puzzles) fit best.

Without `test_file`, a `test_fraction` of the training rows (drawn with `seed`) is held out.
`latentreason eval` and `solve` rebuild the vocabulary from the files named in the run's config,
so keep them where they were.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from latentreason.errors import ConfigError, DatasetFormatError
from latentreason.registry import register
from latentreason.tasks.base import Split, Task, cached, file_fingerprint, to_split
from latentreason.train.losses import check_loss

PAD = 0
IGNORE = -100
TOKENIZERS = ("spaces", "chars")

Pairs = list[tuple[list[str], list[str], int]]  # (input tokens, output tokens, line number)


def split_tokens(text: str, tokens: str) -> list[str]:
    return list(text) if tokens == "chars" else text.split()


def read_pairs(path: str | Path, tokens: str = "spaces") -> Pairs:
    """(input, output, line) for every example of a CSV or JSONL file; errors name `file:line`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Dataset file {path} does not exist. Pass an existing file, e.g. task.train_file=/path/to/pairs.csv"
        )
    jsonl = path.suffix.lower() in (".jsonl", ".json", ".ndjson")
    pairs = _read_jsonl(path, tokens) if jsonl else _read_csv(path, tokens)
    if not pairs:
        example = (
            '{"input": ["1", "2"], "output": ["2", "1"]}'
            if jsonl
            else "a header line `input,output`, then lines like `1 2 3,3 2 1`"
        )
        raise DatasetFormatError(f"{path}:1: the file holds no examples; add {example}")
    return pairs


def _tokens_of(value, tokens: str, where: str, column: str) -> list[str]:
    if isinstance(value, str):
        found = split_tokens(value, tokens)
    elif isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        found = [str(v) for v in value]
    else:
        raise DatasetFormatError(
            f"{where}: {column!r} must be a list of tokens (strings or numbers) or a string, got {json.dumps(value)[:60]}"
        )
    if not found:
        raise DatasetFormatError(f"{where}: the {column} is empty; every example needs at least one {column} token")
    return found


def _read_csv(path: Path, tokens: str) -> Pairs:
    pairs: Pairs = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return pairs
        names = [h.strip().lower() for h in header]
        if "input" not in names or "output" not in names:
            raise DatasetFormatError(
                f"{path}:1: the header must name the columns `input` and `output` (found {', '.join(header) or 'nothing'}); e.g. `input,output` then `1 2 3,3 2 1`"
            )
        col_in, col_out = names.index("input"), names.index("output")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DatasetFormatError(
                    f"{where}: expected {len(header)} columns ({','.join(header)}), found {len(row)}; quote a cell that holds a comma"
                )
            pairs.append(
                (
                    _tokens_of(row[col_in], tokens, where, "input"),
                    _tokens_of(row[col_out], tokens, where, "output"),
                    reader.line_num,
                )
            )
    return pairs


def _read_jsonl(path: Path, tokens: str) -> Pairs:
    pairs: Pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetFormatError(
                    f'{where}: not valid JSON ({error.msg} at column {error.colno}); each line must be one object like {{"input": [...], "output": [...]}}'
                ) from None
            if not isinstance(record, dict) or "input" not in record or "output" not in record:
                raise DatasetFormatError(f'{where}: each line must be an object with the keys "input" and "output"')
            pairs.append(
                (
                    _tokens_of(record["input"], tokens, where, "input"),
                    _tokens_of(record["output"], tokens, where, "output"),
                    number,
                )
            )
    return pairs


@register("task", "seq2seq")
class Seq2Seq(Task):
    """Sequence to sequence: your own input/output token pairs from a CSV or JSONL file."""

    def __init__(
        self,
        train_file: str | None = None,
        test_file: str | None = None,
        test_fraction: float = 0.1,
        tokens: str = "spaces",
        seed: int = 0,
        cache_dir: str | None = None,
        loss: str = "stablemax",
    ):
        if not train_file:
            raise ConfigError(
                "The seq2seq task needs a file of examples: task.train_file=pairs.csv (CSV with columns input,output) or pairs.jsonl"
            )
        if tokens not in TOKENIZERS:
            raise ConfigError(
                f"task.tokens={tokens!r}: choose 'spaces' (tokens separated by spaces) or 'chars' (one token per character)"
            )
        check_loss(loss)
        if not test_file and not 0.0 < test_fraction < 1.0:
            raise ConfigError(f"task.test_fraction={test_fraction!r} must be between 0 and 1 (or give task.test_file)")
        self.train_file, self.test_file, self.test_fraction = train_file, test_file, test_fraction
        self.tokens, self.seed, self.cache_dir, self.loss = tokens, seed, cache_dir, loss
        self._train_pairs = read_pairs(train_file, tokens)
        self._test_pairs = read_pairs(test_file, tokens) if test_file else None
        every = self._train_pairs + (self._test_pairs or [])
        self.vocab = ["<pad>"] + sorted({t for i, o, _ in every for t in (*i, *o)})
        self.ids = {t: n for n, t in enumerate(self.vocab) if n}
        self.vocab_size = len(self.vocab)
        self.seq_len = max(max(len(i), len(o)) for i, o, _ in every)
        if len(self._train_pairs) < 2 and not test_file:
            raise DatasetFormatError(
                f"{train_file}: holds {len(self._train_pairs)} example; hold-out needs at least 2 (or give task.test_file)"
            )
        self._splits: dict[str, Split] | None = None

    def describe(self) -> str:
        held_out = f"held out: {self.test_file}" if self.test_file else f"{self.test_fraction:.0%} held out"
        return f"seq2seq pairs from {self.train_file} ({held_out}; {self.vocab_size - 1} tokens, length {self.seq_len})"

    # -- data ---------------------------------------------------------------------------------

    def _encode(self, pairs: Pairs, path) -> dict[str, np.ndarray]:
        inputs = np.full((len(pairs), self.seq_len), PAD, dtype=np.int32)
        labels = np.full((len(pairs), self.seq_len), IGNORE, dtype=np.int32)
        for row, (i, o, line) in enumerate(pairs):
            if max(len(i), len(o)) > self.seq_len:
                raise DatasetFormatError(
                    f"{path}:{line}: a sequence of {max(len(i), len(o))} tokens is longer than the model's {self.seq_len} (the longest in task.train_file/test_file)"
                )
            for column, seq, out in (("input", i, inputs), ("output", o, labels)):
                unknown = [t for t in seq if t not in self.ids]
                if unknown:
                    raise DatasetFormatError(
                        f"{path}:{line}: {column} token {unknown[0]!r} is not in the vocabulary built from {self.train_file}"
                    )
                out[row, : len(seq)] = [self.ids[t] for t in seq]
        return {"inputs": inputs, "labels": labels}

    def splits(self) -> dict[str, Split]:
        if self._splits is None:
            key = {
                "task": "seq2seq",
                "train": file_fingerprint(self.train_file),
                "test": file_fingerprint(self.test_file),
                "tokens": self.tokens,
                "fraction": self.test_fraction,
                "seed": self.seed,
                "version": 1,
            }

            def build() -> dict[str, np.ndarray]:
                if self._test_pairs is not None:
                    train, test = (
                        self._encode(self._train_pairs, self.train_file),
                        self._encode(self._test_pairs, self.test_file),
                    )
                else:
                    every = self._encode(self._train_pairs, self.train_file)
                    order = np.random.default_rng(self.seed).permutation(len(self._train_pairs))
                    held = min(len(order) - 1, max(1, round(self.test_fraction * len(order))))
                    test, train = (
                        {k: v[order[:held]] for k, v in every.items()},
                        {k: v[order[held:]] for k, v in every.items()},
                    )
                return {**{f"train_{k}": v for k, v in train.items()}, **{f"test_{k}": v for k, v in test.items()}}

            arrays = cached(self.cache_dir, key, build)
            self._splits = {
                s: to_split({k: arrays[f"{s}_{k}"] for k in ("inputs", "labels")}) for s in ("train", "test")
            }
        return self._splits

    def read_file(self, path: str | Path) -> Split:
        return to_split(self._encode(read_pairs(path, self.tokens), path))

    def parse_input(self, text: str) -> torch.Tensor:
        seq = split_tokens(text.strip(), self.tokens)
        if not seq or len(seq) > self.seq_len:
            raise DatasetFormatError(
                f"the input has {len(seq)} tokens; it needs 1 to {self.seq_len} ({'one per character' if self.tokens == 'chars' else 'separated by spaces'})"
            )
        unknown = [t for t in seq if t not in self.ids]
        if unknown:
            raise DatasetFormatError(
                f"the input token {unknown[0]!r} is not in the vocabulary built from {self.train_file}"
            )
        out = torch.full((self.seq_len,), PAD, dtype=torch.long)
        out[: len(seq)] = torch.tensor([self.ids[t] for t in seq])
        return out

    def render(self, tokens: torch.Tensor) -> str:
        words = [self.vocab[t] for t in tokens.tolist() if 0 < t < self.vocab_size]
        return ("" if self.tokens == "chars" else " ").join(words)
