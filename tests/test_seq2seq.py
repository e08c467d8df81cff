"""The seq2seq task: a user's own CSV or JSONL of token pairs, trained with only a config."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys

import pytest
import torch

from conftest import cli_in_process
from latentreason import registry
from latentreason.errors import ConfigError, DatasetFormatError
from latentreason.tasks.seq2seq import IGNORE, PAD, Seq2Seq


def reversal_pairs(
    count: int, length: int = 5, alphabet: str = "abcde", seed: int = 0
) -> list[tuple[list[str], list[str]]]:
    rng, seen, pairs = random.Random(seed), set(), []
    while len(pairs) < count:
        seq = tuple(rng.choice(alphabet) for _ in range(length))
        if seq not in seen:
            seen.add(seq)
            pairs.append((list(seq), list(reversed(seq))))
    return pairs


def write_csv(path, pairs) -> None:
    path.write_text("input,output\n" + "".join(f"{' '.join(i)},{' '.join(o)}\n" for i, o in pairs))


def task(tmp_path, **kwargs) -> Seq2Seq:
    return registry.build("task", {"name": "seq2seq", "cache_dir": str(tmp_path / "cache"), **kwargs})


def test_vocabulary_padding_and_ignored_labels(tmp_path):
    data = tmp_path / "pairs.csv"
    data.write_text(
        'input,output,note\nb a,a b b,x\n"c,a",c,y\n'
    )  # extra columns are ignored; a quoted cell may hold a comma
    t = task(tmp_path, train_file=str(data), test_fraction=0.5)
    assert t.vocab == ["<pad>", "a", "b", "c", "c,a"] and t.vocab_size == 5 and t.seq_len == 3  # 0 is padding
    split = t.read_file(data)
    assert split["inputs"].tolist() == [[2, 1, PAD], [4, PAD, PAD]]
    assert split["labels"].tolist() == [[1, 2, 2], [3, IGNORE, IGNORE]]
    splits = t.splits()
    assert len(splits["train"]["inputs"]) == 1 and len(splits["test"]["inputs"]) == 1
    assert t.render(torch.tensor([2, 1, 0])) == "b a"


def test_jsonl_lists_and_chars(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"input": [1, 2, 3], "output": [3, 2, 1]}\n\n{"input": "12", "output": "21"}\n')
    t = task(tmp_path, train_file=str(data), tokens="chars", test_file=str(data))
    assert t.vocab == ["<pad>", "1", "2", "3"] and t.seq_len == 3
    assert t.parse_input("21").tolist() == [2, 1, 0]
    assert t.render(torch.tensor([3, 2, 0])) == "32"
    assert len(t.splits()["test"]["inputs"]) == 2  # test_file given: test_fraction is not used


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("cols.csv", "input,output\na b,b a\na,b,c\n", "cols.csv:3: expected 2 columns"),
        ("header.csv", "question,answer\na,b\n", "header.csv:1: the header must name the columns `input` and `output`"),
        ("empty.csv", "input,output\na b,\n", "empty.csv:2: the output is empty"),
        ("none.csv", "input,output\n", "none.csv:1: the file holds no examples"),
        (
            "bad.jsonl",
            '{"input": ["a"], "output": ["b"]}\n{"input": ["a"], "output": \n',
            "bad.jsonl:2: not valid JSON",
        ),
        (
            "keys.jsonl",
            '{"input": ["a"], "target": ["b"]}\n',
            'keys.jsonl:1: each line must be an object with the keys "input" and "output"',
        ),
        ("type.jsonl", '{"input": [["a"]], "output": ["b"]}\n', "type.jsonl:1: 'input' must be a list of tokens"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(DatasetFormatError) as error:
        task(tmp_path, train_file=str(tmp_path / name))
    assert message in str(error.value)


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="task.train_file=pairs.csv"):
        task(tmp_path)
    write_csv(tmp_path / "p.csv", reversal_pairs(4))
    with pytest.raises(ConfigError, match="task.tokens='words'"):
        task(tmp_path, train_file=str(tmp_path / "p.csv"), tokens="words")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        task(tmp_path, train_file=str(tmp_path / "missing.csv"))
    t = task(tmp_path, train_file=str(tmp_path / "p.csv"))
    (tmp_path / "other.csv").write_text("input,output\nz,a\n")
    with pytest.raises(DatasetFormatError, match="other.csv:2: input token 'z' is not in the vocabulary"):
        t.read_file(tmp_path / "other.csv")


def cli(*args, cache):
    env = {**os.environ, "LATENTREASON_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "latentreason.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_train_from_a_csv_on_the_command_line_then_eval_and_solve(tmp_path):
    pairs = reversal_pairs(700)
    write_csv(tmp_path / "reverse.csv", pairs[:600])
    with open(tmp_path / "new.jsonl", "w") as handle:
        for i, o in pairs[600:]:
            handle.write(json.dumps({"input": i, "output": o}) + "\n")
    result = cli(
        "run",
        "recipe=hrm_seq2seq",
        f"task.train_file={tmp_path / 'reverse.csv'}",
        "trainer.max_steps=300",
        "trainer.eval_every=0",
        "trainer.progress=false",
        f"output_dir={tmp_path}",
        "run_name=rev",
        cache=tmp_path / "cache",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "No GPU found: using the small CPU preset of hrm_seq2seq" in out or "(paper preset)" in out
    assert "5 tokens, length 5" in out and "540 training / 60 held-out examples" in out
    token_accuracy = float(out.split("token accuracy ")[1].split("%")[0])
    assert token_accuracy > 80.0, out  # chance is 20%; 99.3% when measured
    rows = [r for r in csv.DictReader(open(tmp_path / "rev" / "metrics.csv")) if r.get("train/lm")]
    first, last = float(rows[0]["train/lm"]), sum(float(r["train/lm"]) for r in rows[-3:]) / 3
    assert last < 0.6 * first

    final = tmp_path / "rev" / "final.ckpt"
    # eval and solve in-process: the run above was the console script's
    env = {"LATENTREASON_CACHE": tmp_path / "cache"}
    evaluated = cli_in_process("eval", f"ckpt={final}", f"data={tmp_path / 'new.jsonl'}", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "100 examples" in evaluated.stdout and "exact accuracy" in evaluated.stdout
    solved = cli_in_process("solve", f"ckpt={final}", "a b c d e", env=env)
    assert solved.returncode == 0, solved.stderr
    assert "│ a b c d e │" in solved.stdout and "after 4 segments" in solved.stdout
    bad = cli_in_process("solve", f"ckpt={final}", "a b z", env=env)
    assert bad.returncode == 2 and "'z' is not in the vocabulary" in bad.stdout
