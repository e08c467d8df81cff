"""The ARC task end to end: the training/held-out protocol, scoring through augmentations, a tiny
model that fits a few real tasks, `latentreason eval` writing submission.json, and a checkpoint
loading into data with more puzzle identifiers."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from test_cli import latentreason

from conftest import cli_in_process, shared_file
from latentreason.model import adapt_puzzle_table
from latentreason.tasks import arc_data as ad
from latentreason.tasks.arc import IGNORE, Arc

SMALL = ["3c9b0459", "0d3d703e", "6150a2bd", "25ff71a9"]  # all grids 3x3: rotations, a colour map, a shift


def task_folder(root, ids):
    folder = root / "_".join(ids)
    folder.mkdir(parents=True, exist_ok=True)
    for task_id in ids:
        shutil.copy(shared_file("arc", "arc1-training", f"{task_id}.json"), folder / f"{task_id}.json")
    return folder


def arc(tmp_path, **options) -> Arc:
    return Arc(**{"size": 4, "augmentations": 3, "cache_dir": str(tmp_path / "cache"), **options})


def test_splits_follow_the_protocol(tmp_path):
    folder = task_folder(tmp_path, SMALL)
    task = arc(tmp_path, train_path=str(folder), eval_fraction=0.5)
    splits = task.splits()
    raw = {t: json.loads((folder / f"{t}.json").read_text()) for t in SMALL}
    names = splits["train"]["names"]
    variants = {t: sum(n.startswith(f"{t}|") for n in names) for t in SMALL}
    assert all(v == 4 for v in variants.values()) and len(names) == len(set(names)) == 16
    held = {names[i].split("|")[0] for i in splits["test"]["puzzle_ids"].tolist()}
    assert len(held) == 2  # eval_fraction 0.5 of 4 tasks
    # training rows: every pair of a training task, the demonstrations of a held-out one; x variants
    expected_train = sum(4 * (len(raw[t]["train"]) + (0 if t in held else len(raw[t]["test"]))) for t in SMALL)
    assert len(splits["train"]["inputs"]) == expected_train
    assert len(splits["test"]["inputs"]) == sum(4 * len(raw[t]["test"]) for t in held)
    # a held-out test input is predicted with the identifier its demonstrations were trained with
    train_ids = set(splits["train"]["puzzle_ids"].tolist())
    assert set(splits["test"]["puzzle_ids"].tolist()) <= train_ids
    # labels: padding ignored, grid and end-of-grid markers predicted
    labels = splits["train"]["labels"]
    assert (labels == IGNORE).any() and not (labels == ad.PAD).any() and (labels == ad.EOS).any()


def _truth_tokens(split) -> torch.Tensor:
    return torch.where(split["labels"] == IGNORE, ad.PAD, split["labels"]).long()


def test_scoring_inverts_every_augmentation_and_votes(tmp_path):
    folder = task_folder(tmp_path, SMALL)
    task = arc(tmp_path, train_path=str(folder), eval_path=str(folder))
    test = task.splits()["test"]
    perfect, confidence = _truth_tokens(test), torch.full((len(test["inputs"]),), 0.9)
    scores = task.score(test, perfect, confidence, tmp_path / "out")
    assert scores["scored_tasks"] == 4 and scores["pass@1"] == 1.0 and scores["pass@1_per_input"] == 1.0
    submission = json.loads((tmp_path / "out" / "submission.json").read_text())
    for task_id in SMALL:  # the first attempt is the real test output of the original task
        outputs = [pair["output"] for pair in json.loads((folder / f"{task_id}.json").read_text())["test"]]
        assert [entry["attempt_1"] for entry in submission[task_id]] == outputs

    # Wrong answers on the un-augmented rows only: outvoted 3 to 1 by the inverted variants
    names = test["names"]
    identity = torch.tensor([names[p].endswith(ad.IDENTITY.name) for p in test["puzzle_ids"].tolist()])
    wrong = perfect.clone()
    wrong[identity] = torch.where(wrong[identity] >= ad.COLOUR_OFFSET, ad.COLOUR_OFFSET + 5, wrong[identity])
    assert task.score(test, wrong, confidence)["pass@1"] == 1.0

    # Two variants agree on the same wrong grid (in the original frame) with high confidence, two are
    # right with low confidence: a 2-2 tie in votes that confidence breaks, so the wrong one ranks first.
    tied, confident, seen = perfect.clone(), torch.full_like(confidence, 0.1), {}
    for row, (puzzle, index) in enumerate(zip(test["puzzle_ids"].tolist(), test["test_index"].tolist())):
        task_id, aug_name = names[puzzle].rsplit("|", 1)
        rows = seen.setdefault((task_id, index), [])
        if len(rows) < 2:
            aug = ad.Augmentation.from_name(aug_name)
            truth = ad.invert(ad.decode(perfect[row].numpy(), 4), aug)
            wrong_grid = np.full_like(truth, 5 if not (truth == 5).all() else 6)
            tied[row] = torch.from_numpy(ad.encode(ad.apply(wrong_grid, aug), 4).astype(np.int64))
            confident[row] = 0.9
        rows.append(row)
    assert all(len(rows) == 4 for rows in seen.values())  # identity + 3 variants of each test input
    tie = task.score(test, tied, confident)
    assert tie["pass@1"] == 0.0 and tie["pass@1_per_input"] == 0.0 and tie["pass@2"] == 1.0


def check_submission(path, folder, ids) -> dict:
    """The ARC Prize schema: every task, one entry per test input, two attempts, each a rectangular grid of 0..9."""
    submission = json.loads(path.read_text())
    assert set(submission) == set(ids)
    for task_id in ids:
        tests = json.loads((folder / f"{task_id}.json").read_text())["test"]
        assert isinstance(submission[task_id], list) and len(submission[task_id]) == len(tests)
        for entry in submission[task_id]:
            assert set(entry) == {"attempt_1", "attempt_2"}
            for grid in entry.values():
                assert (
                    isinstance(grid, list)
                    and grid
                    and all(isinstance(row, list) and len(row) == len(grid[0]) for row in grid)
                )
                assert all(isinstance(v, int) and 0 <= v <= 9 for row in grid for v in row)
    return submission


FIT = [
    "recipe=hrm_arc1",
    "preset=cpu",
    "task.size=4",
    "task.augmentations=4",
    "task.translate=false",
    "halt.max_steps=2",
    "optim.lr=3e-3",
    "trainer.max_steps=300",
    "trainer.checkpoint_every=300",
    "trainer.progress=false",
]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny HRM trained on every pair of two ARC tasks (10 puzzle identifiers: 2 tasks x 5 variants)."""
    root = tmp_path_factory.mktemp("arc")
    folder = task_folder(root, SMALL[:2])
    result = latentreason(
        *FIT,
        f"task.train_path={folder}",
        f"task.eval_path={folder}",
        f"output_dir={root}",
        "run_name=fit",
        env_extra={"LATENTREASON_CACHE": str(root / "cache")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root, folder, result


def test_a_tiny_model_fits_a_few_tasks_and_eval_writes_a_submission(fitted):
    root, folder, result = fitted
    assert "pass@1 100.0%" in " ".join(result.stdout.split()), result.stdout[-800:]
    out = cli_in_process(
        "eval",
        f"ckpt={root / 'fit' / 'final.ckpt'}",
        f"data={folder}",
        env={"LATENTREASON_CACHE": str(root / "cache")},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert re.search(r"pass@1 (\d+\.\d)%", text) and float(re.search(r"pass@1 (\d+\.\d)%", text)[1]) == 100.0, text[
        -600:
    ]
    submission = check_submission(root / "fit" / f"eval-{folder.name}" / "submission.json", folder, SMALL[:2])
    for task_id in SMALL[:2]:
        outputs = [pair["output"] for pair in json.loads((folder / f"{task_id}.json").read_text())["test"]]
        assert [entry["attempt_1"] for entry in submission[task_id]] == outputs
    solved = cli_in_process(
        "solve",
        f"ckpt={root / 'fit' / 'final.ckpt'}",
        str(folder / f"{SMALL[0]}.json"),
        f"png={root / 'arc.png'}",
        env={"LATENTREASON_CACHE": str(root / "cache")},
    )
    assert solved.returncode == 0, solved.stdout + solved.stderr
    assert re.search(r"attempt 1: \d/5 votes right", solved.stdout) and "expected" in solved.stdout, solved.stdout[
        -800:
    ]
    assert (root / "arc.png").stat().st_size > 0


def test_a_checkpoint_with_10_puzzle_ids_loads_into_data_with_15(fitted, tmp_path):
    root, _, _ = fitted
    bigger = task_folder(tmp_path, SMALL[:3])  # the two trained tasks and a new one: 3 x 5 identifiers
    env = {"LATENTREASON_CACHE": str(root / "cache")}
    out = cli_in_process("eval", f"ckpt={root / 'fit' / 'final.ckpt'}", f"data={bigger}", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert (
        "cover 10 identifiers, the data has 15: 10 rows kept (matched by name), 5 new rows initialised to the mean"
        in text
    ), text[-800:]
    check_submission(root / "fit" / f"eval-{bigger.name}" / "submission.json", bigger, SMALL[:3])
    # fine-tuning on the larger data starts from the checkpoint's weights, with the same account
    run = cli_in_process(
        *FIT,
        f"task.train_path={bigger}",
        f"task.eval_path={bigger}",
        "trainer.max_steps=1",
        f"init_from={root / 'fit' / 'final.ckpt'}",
        f"output_dir={tmp_path}",
        "run_name=more",
        env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "10 rows kept (matched by name), 5 new rows initialised to the mean" in " ".join(run.stdout.split())


def test_adapt_puzzle_table_by_name_and_by_position():
    table = torch.arange(12.0).view(4, 3)  # rows 0..3, mean row [4.5, 5.5, 6.5]
    mean = table.mean(0)
    out, message = adapt_puzzle_table(table, ["a", "b", "c", "d"], ["c", "x", "a"], 3)
    assert torch.equal(out[0], table[2]) and torch.equal(out[1], mean) and torch.equal(out[2], table[0])
    assert (
        "2 rows kept (matched by name), 1 new rows initialised to the mean" in message
        and "2 rows of identifiers absent" in message
    )
    out, message = adapt_puzzle_table(table, None, None, 6)
    assert (
        torch.equal(out[:4], table)
        and torch.equal(out[4], mean)
        and torch.equal(out[5], mean)
        and "by position" in message
    )
    same, message = adapt_puzzle_table(table, ["a", "b", "c", "d"], ["a", "b", "c", "d"], 4)
    assert same is table and message is None
    np.testing.assert_array_equal(adapt_puzzle_table(table, None, None, 2)[0].numpy(), table[:2].numpy())


def test_puzzle_embeddings_step_with_the_dense_weights_learning_rate(tmp_path):
    """The first SignSGD step moves a zero row by exactly puzzle_emb_lr x the schedule's first multiplier (1/50)."""
    folder = task_folder(tmp_path, SMALL[:2])
    run = cli_in_process(
        *FIT,
        f"task.train_path={folder}",
        f"task.eval_path={folder}",
        "trainer.max_steps=1",
        "optim.warmup_steps=50",
        "optim.puzzle_emb_lr=1e-2",
        "optim.puzzle_emb_weight_decay=0.1",
        f"output_dir={tmp_path}",
        "run_name=one",
        env={"LATENTREASON_CACHE": str(tmp_path / "cache")},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    table = torch.load(tmp_path / "one" / "final.ckpt", weights_only=True)["state_dict"]["model.puzzle.table"]
    moved = table[table != 0].abs()
    assert len(moved) and torch.allclose(moved, torch.full_like(moved, 1e-2 / 50))


def test_scores_leave_out_partly_predicted_tasks_and_training_splits(tmp_path):
    folder = task_folder(tmp_path, SMALL)
    task = arc(tmp_path, train_path=str(folder), eval_path=str(folder))
    test = task.splits()["test"]
    perfect, confidence = _truth_tokens(test), torch.full((len(test["inputs"]),), 0.9)
    names = [test["names"][p].split("|")[0] for p in test["puzzle_ids"].tolist()]
    first_task_rows = names.count(names[0])
    assert names[:first_task_rows] == [names[0]] * first_task_rows  # rows come task by task
    cut = first_task_rows + 1  # the second task only partly predicted (as with `eval limit=`)
    scores = task.score(test, perfect[:cut], confidence[:cut], tmp_path / "cut")
    assert scores["scored_tasks"] == 1 and scores["pass@1"] == 1.0
    assert list(json.loads((tmp_path / "cut" / "submission.json").read_text())) == [names[0]]
    train = task.splits()["train"]  # demonstration pairs only: no test inputs to score
    assert task.score(train, _truth_tokens(train), torch.full((len(train["inputs"]),), 0.9), tmp_path / "train") == {}
    assert not (tmp_path / "train" / "submission.json").exists()
