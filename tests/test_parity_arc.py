"""Parity of ARC scoring with TinyRecursiveModels' evaluator (../shared/reference/trm/evaluators/arc.py).

The same predictions (augmented token grids, one per variant of each test input, with halting
logits) go to TRM's `ARC` evaluator, in the files and id scheme it reads (identifiers.json,
test_puzzles.json, names `task|||t<k>|||<colours>`), and to our `Arc.score`. Its cropping,
de-augmentation, voting by (votes, mean sigmoid(q_halt)) and partial credit per test input give
our `pass@k_per_input`; its submission.json is ours. Our `pass@k` (HRM's rule: every test input
of a task right) is TRM's with partial credit rounded down to 0, checked here too.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from reference_code import load

from latentreason.inference import confidence
from latentreason.reference_import import arc_names
from latentreason.tasks import arc_data as ad
from latentreason.tasks.arc import Arc

PASS_K = (1, 2, 3)
TIED = "cccc0003"  # its only test input gets a tie for first place


def write_tasks(folder):
    """Three small tasks; the first has two test inputs."""
    rng = np.random.default_rng(0)
    tasks = {}
    for name, tests in (("aaaa0001", 2), ("bbbb0002", 1), ("cccc0003", 1)):

        def pair(shape):
            grid = rng.integers(0, 10, shape)
            return {"input": grid.tolist(), "output": np.rot90(grid).tolist()}

        tasks[name] = {"train": [pair((3, 4)), pair((2, 2))], "test": [pair((3 + i, 2 + i)) for i in range(tests)]}
        (folder / f"{name}.json").write_text(json.dumps(tasks[name]))
    return tasks


def predictions(task: Arc, split, tasks, seed: int):
    """Per row: the right answer, one of two wrong answers shared across variants, or a grid of noise."""
    rng = np.random.default_rng(seed)
    names = split["names"]
    tokens, tied_rows = [], []
    for puzzle, index in zip(split["puzzle_ids"].tolist(), split["test_index"].tolist()):
        task_id, aug_name = names[puzzle].rsplit("|", 1)
        aug = ad.Augmentation.from_name(aug_name)
        truth = np.array(tasks[task_id]["test"][index]["output"], dtype=np.uint8)
        wrong = [truth.copy(), np.flipud(truth).copy()]
        wrong[0][0, 0] = (wrong[0][0, 0] + 1) % 10
        choice = rng.choice(4, p=[0.4, 0.25, 0.2, 0.15])
        if task_id == TIED:  # wrong, right, wrong, right, ...: equal votes, to be told apart by who came first
            seen = tied_rows.append(len(tokens)) or len(tied_rows)
            choice = 1 if seen % 2 else 0
        grid = [truth, *wrong, rng.integers(0, 10, (2, 3)).astype(np.uint8)][choice]
        tokens.append(ad.encode(ad.apply(grid, aug), task.size))
    q_halt = torch.from_numpy(rng.normal(0, 2, len(tokens))).float()
    q_halt[::5] = q_halt[0]  # some equal confidences
    if len(tied_rows) % 2:  # an even count, so votes tie; the odd one out gets a third answer
        tokens[tied_rows.pop()] = ad.encode(np.zeros((1, 1), dtype=np.uint8), task.size)
    q_halt[tied_rows] = 1.0  # and equal mean confidence: the tie goes to the answer seen first (the wrong one)
    return torch.from_numpy(np.stack(tokens)).long(), q_halt


def reference_files(folder, split, tasks):
    """identifiers.json (id 0 blank, then our names in TRM's form) and test_puzzles.json."""
    identifiers = ["<blank>"]
    for name in split["names"]:
        task_id, aug_name = name.rsplit("|", 1)
        aug = ad.Augmentation.from_name(aug_name)
        identifiers.append(f"{task_id}|||t{aug.transform}|||{''.join(map(str, aug.colours))}")
    assert arc_names(identifiers) == ["<blank>", *split["names"]]  # what `latentreason import identifiers=` reads back
    (folder / "identifiers.json").write_text(json.dumps(identifiers))
    (folder / "test_puzzles.json").write_text(json.dumps(tasks))


def score_both(tmp_path, monkeypatch, predict, rows: int | None = None):
    """Our scores and submission, and TRM's, on the predictions `predict(task, split, tasks)` of the first `rows` rows."""
    evaluator = load("trm", "evaluators.arc")["evaluators.arc"]
    data, ref_dir, ours_dir, trm_out = (tmp_path / d for d in ("data", "ref", "ours", "trm_out"))
    for d in (data, ref_dir, ours_dir, trm_out):
        d.mkdir(parents=True)
    tasks = write_tasks(data)
    task = Arc(train_path=str(data), augmentations=6, pass_k=list(PASS_K), cache_dir=str(tmp_path / "cache"))
    split = task.read_file(data)
    tokens, q_halt = predict(task, split, tasks)
    tokens, q_halt = tokens[:rows], q_halt[:rows]

    ours = task.score(split, tokens, confidence({"q_halt": q_halt}, len(tokens)), ours_dir)

    reference_files(ref_dir, split, tasks)
    monkeypatch.setattr(evaluator.dist, "gather_object", lambda obj, out, dst=0, group=None: out.__setitem__(0, obj))
    arc = evaluator.ARC(str(ref_dir), SimpleNamespace(blank_identifier_id=0), pass_Ks=PASS_K)
    arc.begin_eval()
    batch = {
        "inputs": split["inputs"][: len(tokens)].long(),
        "puzzle_identifiers": split["puzzle_ids"][: len(tokens)] + 1,
    }
    arc.update_batch(batch, {"preds": tokens, "q_halt_logits": q_halt})
    theirs = arc.result(str(trm_out), rank=0, world_size=1)
    read = lambda folder: json.loads((folder / "submission.json").read_text())  # noqa: E731
    return ours, theirs, read(ours_dir), read(trm_out), split


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_arc_scores_and_submission_match_trm_evaluator(tmp_path, seed, monkeypatch):
    ours, theirs, our_submission, their_submission, _ = score_both(
        tmp_path, monkeypatch, lambda *a: predictions(*a, seed)
    )
    for k in PASS_K:
        assert ours[f"pass@{k}_per_input"] == pytest.approx(theirs[f"ARC/pass@{k}"], abs=1e-12), f"pass@{k}"
    assert our_submission == their_submission
    assert theirs["ARC/pass@1"] < theirs["ARC/pass@3"], "the case should have wrong top answers and right later ones"


def test_differences_on_purpose(tmp_path, monkeypatch, capsys):
    """Pinned (docs/reference.md): tasks not predicted are left out, not counted wrong; no empty grid is submitted."""

    def empty_first(task, split, tasks):
        tokens, q_halt = predictions(task, split, tasks, 0)
        first = [split["names"][p].startswith("aaaa0001|") for p in split["puzzle_ids"].tolist()]
        tokens[torch.tensor(first) & (split["test_index"] == 0)] = 0  # every variant of one test input: an empty grid
        return tokens, q_halt

    ours, theirs, our_submission, their_submission, split = score_both(tmp_path, monkeypatch, empty_first)
    assert their_submission["aaaa0001"][0]["attempt_1"] == []  # TRM submits the empty grid voted first
    assert our_submission["aaaa0001"][0]["attempt_1"] == [[0]]  # we submit a placeholder, the only other answer
    assert ours["pass@1_per_input"] == pytest.approx(theirs["ARC/pass@1"])  # the scores agree all the same

    last_task_rows = [n.startswith(TIED) for n in (split["names"][int(p)] for p in split["puzzle_ids"])].count(True)
    rows = len(split["puzzle_ids"]) - last_task_rows  # the last task not predicted (as with `eval limit=`)
    ours, theirs, *_ = score_both(tmp_path / "partial", monkeypatch, lambda *a: predictions(*a, 0), rows=rows)
    assert ours["scored_tasks"] == 2  # we score the two tasks predicted; TRM also counts the third, as wrong
    assert theirs["ARC/pass@3"] == pytest.approx(ours["pass@3_per_input"] * 2 / 3)
