"""Inference strategies (`infer=`): each against a direct computation on a tiny or a scripted model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from conftest import tiny_config, tiny_model
from latentreason import registry
from latentreason.errors import ConfigError
from latentreason.infer import Candidates, Compute, InferenceStrategy, build_strategy, evaluate, run_model
from latentreason.infer.base import most_confident, vote
from latentreason.infer.options import parse
from latentreason.inference import TrainedModel, run_to_halt
from latentreason.tasks import arc_data as ad
from latentreason.tasks import maze_data as md
from latentreason.tasks import sudoku_data as sd
from latentreason.tasks.arc import Arc
from latentreason.tasks.grids import dihedral
from latentreason.tasks.maze import Maze
from latentreason.tasks.sudoku import Sudoku
from latentreason.tasks.symmetry import apply_all, invert_all
from latentreason.train.deep_supervision import per_row_results

# -- symmetries ------------------------------------------------------------------------------------


def _tasks():
    return [Sudoku(box=2, min_givens=4, max_givens=8), Sudoku(box=3), Maze(size=6), Arc(train_path="unused", size=5)]


@pytest.mark.parametrize("task", _tasks(), ids=lambda t: f"{type(t).__name__}{t.seq_len}")
def test_every_symmetry_has_an_exact_inverse(task):
    symmetries = task.symmetries(8, seed=3)
    assert len(symmetries) == 8 and torch.equal(symmetries[0].positions, torch.arange(task.seq_len))
    tokens = torch.randint(0, task.vocab_size, (5, task.seq_len))
    for symmetry in symmetries:
        assert torch.equal(symmetry.inverse(symmetry.forward(tokens)), tokens)
        assert torch.equal(symmetry.forward(symmetry.inverse(tokens)), tokens)
    moved = apply_all(symmetries, tokens)  # the batched form, one gather, row a under symmetry a
    assert torch.equal(moved, torch.stack([s.forward(tokens) for s in symmetries]))
    assert torch.equal(invert_all(symmetries, moved), tokens.expand(len(symmetries), -1, -1))
    assert len({tuple(s.forward(tokens)[0].tolist()) for s in symmetries}) > 1  # not all the identity


def test_sudoku_symmetries_are_hrm_augmentations():
    """Symmetry k of seed s equals sd.augment's k-th draw from the same generator: the numpy path, independently."""
    task = Sudoku(box=3)
    puzzle, solution = _a_puzzle()
    symmetries = task.symmetries(4, seed=11)
    rng = np.random.default_rng(11)
    for symmetry in symmetries[1:]:
        new_puzzle, new_solution = sd.augment(puzzle, solution, rng, 3)
        assert torch.equal(
            symmetry.forward(torch.from_numpy(sd.encode(puzzle)).long()), torch.from_numpy(sd.encode(new_puzzle)).long()
        )
        assert torch.equal(
            symmetry.forward(torch.from_numpy(sd.encode(solution)).long()),
            torch.from_numpy(sd.encode(new_solution)).long(),
        )
        assert sd.is_valid_solution(new_solution, 3)


def _a_puzzle():
    data = sd.build_dataset(1, 0, 5, 3, 40, 45)
    return sd.decode(data["inputs"][0]), sd.decode(data["labels"][0])


def test_maze_and_arc_symmetries_are_their_grid_transforms():
    maze = Maze(size=5)
    grid = np.random.default_rng(0).integers(1, 6, (5, 5))
    for symmetry in maze.symmetries(8):
        k = int(symmetry.name.split("-")[1])
        assert torch.equal(
            symmetry.forward(torch.from_numpy(grid.reshape(-1))), torch.from_numpy(dihedral(grid, k).reshape(-1))
        )
    arc = Arc(train_path="unused", size=4)
    colours = np.random.default_rng(1).integers(0, 10, (4, 4))
    for symmetry in arc.symmetries(6, seed=2)[1:]:
        aug = ad.Augmentation.from_name(symmetry.name)
        expected = ad.encode(ad.apply(colours, aug), size=4)
        assert torch.equal(
            symmetry.forward(torch.from_numpy(ad.encode(colours, size=4)).long()), torch.from_numpy(expected).long()
        )


def test_validity_checks():
    puzzle, solution = _a_puzzle()
    task = Sudoku(box=3)
    inputs = torch.from_numpy(sd.encode(np.stack([puzzle] * 3))).long()
    wrong_given = solution.copy()
    cell = int(np.flatnonzero(puzzle)[0])
    wrong_given[cell] = solution[cell] % 9 + 1
    swapped = solution.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # a repeated digit in two columns
    answers = torch.from_numpy(sd.encode(np.stack([solution, wrong_given, swapped]))).long()
    assert task.check(inputs, answers).tolist() == [True, False, False]
    maze = Maze(size=8)
    data = md.build_dataset(2, 8, md.default_min_path(8), 0, False)
    questions, answers = torch.from_numpy(data["inputs"]).long(), torch.from_numpy(data["labels"]).long()
    assert maze.check(questions, answers).tolist() == [True, True]
    assert maze.check(questions, questions).tolist() == [False, False]


# -- choosing and voting ---------------------------------------------------------------------------


def test_vote_and_most_confident_by_hand():
    a, b, c = [0, 0], [1, 1], [2, 2]
    tokens = torch.tensor([[a, a], [b, b], [a, c], [c, c]])  # (K=4, B=2, L=2)
    confidence = torch.tensor([[0.1, 0.9], [0.8, 0.1], [0.2, 0.3], [0.9, 0.4]])
    chosen = vote(tokens, confidence)
    # row 0: a has two votes (k=0, 2), the most confident of them is k=2; row 1: c has two (k=2, 3), k=3 more confident
    assert chosen.tolist() == [2, 3]
    # row 1 without c's candidates valid: a, b tie at one vote each, a (0.9) is more confident than b (0.1)
    valid = torch.tensor([[True, True], [True, True], [True, False], [True, False]])
    assert vote(tokens, confidence, valid).tolist() == [2, 0]
    assert most_confident(confidence).tolist() == [3, 0]
    assert most_confident(
        confidence, torch.tensor([[True, False], [True, False], [False, False], [False, False]])
    ).tolist() == [1, 0]


class ScriptedModel(nn.Module):
    """Answers each input from a table (one segment, one-hot logits); unknown inputs get `fallback(inputs)`."""

    def __init__(self, answers: dict, confidence: dict, vocab: int, fallback):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.answers, self.sure, self.vocab, self.fallback = answers, confidence, vocab, fallback
        self.core = type("Core", (), {"hidden_size": 4, "state_fields": ("x",)})()
        self.policy = type(
            "Policy",
            (),
            {
                "max_steps": 1,
                "halt": lambda self, logits, steps, nxt: (steps >= 1, {}),
                "logits": lambda self, h: {"q_halt": h[:, 0, 0]},
            },
        )()

    def embed(self, inputs, puzzle_ids=None):
        return inputs

    def initial_state(self, batch, device):
        return {"x": torch.zeros(batch, 1, 1)}

    def segment(self, state, x):
        return {"x": x}

    def heads(self, state):
        rows = state["x"]
        answers = torch.stack([self.answers.get(tuple(r.tolist()), self.fallback(r)) for r in rows])
        sure = torch.tensor([self.sure.get(tuple(r.tolist()), 0.0) for r in rows])
        return nn.functional.one_hot(answers, self.vocab).float(), {"q_halt": torch.logit(sure.clamp(0.01, 0.99))}


def test_augment_vote_against_a_model_right_only_under_some_symmetries():
    task = Sudoku(box=2, min_givens=4, max_givens=8)
    data = sd.build_dataset(2, 0, 1, 2, 6, 8)
    inputs, labels = torch.from_numpy(data["inputs"]).long(), torch.from_numpy(data["labels"]).long()
    symmetries = task.symmetries(5, seed=0)
    answers, sure = {}, {}
    for row in range(2):
        for k, symmetry in enumerate(symmetries):  # right under symmetries 1, 2, 3; wrong (and sure) under 0 and 4
            question = tuple(symmetry.forward(inputs[row]).tolist())
            answers[question] = (
                symmetry.forward(labels[row]) if k in (1, 2, 3) else symmetry.forward(torch.roll(labels[row], k + 1))
            )
            sure[question] = 0.9 if k in (0, 4) else 0.6
    model = ScriptedModel(answers, sure, task.vocab_size, fallback=lambda r: r)
    single = build_strategy("single").run(model, task, inputs, None, Compute())
    assert not torch.equal(single.tokens, labels)  # the identity copy alone is wrong
    compute = Compute()
    voted = build_strategy({"name": "augment_vote", "count": 5}).run(model, task, inputs, None, compute)
    assert torch.equal(voted.tokens, labels)  # three copies agree on the answer once mapped back
    assert compute.forward_passes == 5 * 2 and compute.segment_calls == 1  # one stacked forward
    assert torch.allclose(voted.confidence, torch.tensor([0.6, 0.6]))
    # only symmetries 0 and 1: one wrong vote each way, the more confident (wrong) answer wins the tie
    two = build_strategy({"name": "augment_vote", "count": 2}).run(model, task, inputs, None, Compute())
    assert torch.equal(two.tokens, single.tokens)
    # with the validity check, the wrong answer (not a Sudoku solution) cannot win
    checked = build_strategy({"name": "augment_vote", "count": 2, "check": True}).run(
        model, task, inputs, None, Compute()
    )
    assert torch.equal(checked.tokens, labels) and checked.checked


# -- strategies on a tiny real model ---------------------------------------------------------------


def _trained(*overrides, seed=0):
    config = tiny_config("task.box=2", *overrides)
    config.infer = {"name": "single"}
    model = tiny_model("task.box=2", *overrides, seed=seed, seq_len=16, vocab=6).eval()
    head = getattr(model.policy, "head", None)
    if head is not None:  # a fresh halting head says the same for every input: give it an opinion
        torch.nn.init.normal_(head.weight, std=0.5)
        torch.nn.init.zeros_(head.bias)
    return TrainedModel(model, Sudoku(box=2, min_givens=4, max_givens=8), config)


def _split(n=12, seed=0):
    data = sd.build_dataset(n, 0, seed, 2, 5, 9)
    return {
        "inputs": torch.from_numpy(data["inputs"]),
        "labels": torch.from_numpy(data["labels"]).int(),
        "puzzle_ids": torch.zeros(n, dtype=torch.long),
    }


def test_single_is_todays_prediction_bit_for_bit():
    """`single` in batches of 5 is run_to_halt on the same batches, to the last bit (compared batch by
    batch: on some CPUs a matmul's last bit depends on how many rows it is given)."""
    trained, split = _trained(), _split()
    out = trained.predict(split, batch_size=5)
    batches = [
        run_to_halt(trained.model, split["inputs"][start : start + 5], split["puzzle_ids"][start : start + 5])
        for start in range(0, len(split["inputs"]), 5)
    ]
    logits = torch.cat([batch[0] for batch in batches])
    steps = torch.cat([batch[1] for batch in batches])
    q_halt = torch.cat([batch[2]["q_halt"] for batch in batches])
    direct = per_row_results(logits, split["labels"])
    assert torch.equal(out["predictions"], logits.argmax(-1))
    assert torch.equal(out["confidence"], torch.sigmoid(q_halt))
    assert out["metrics"]["token_accuracy"] == pytest.approx(float(direct["token_accuracy"].double().mean()), abs=1e-12)
    assert out["metrics"]["exact_accuracy"] == float(direct["exact"].double().mean())
    assert (
        out["compute"]
        == {"forward_passes": int(steps.sum()), "segment_calls": sum(int(batch[1].max()) for batch in batches)}
        and not out["checked"]
    )


def test_noise_select_with_sigma_zero_equals_single_and_noise_changes_candidates():
    trained, split = _trained(), _split()
    single = evaluate(trained, split, "single")
    still = evaluate(trained, split, {"name": "noise_select", "samples": 4, "sigma": 0.0, "clean": False})
    assert torch.equal(still["predictions"], single["predictions"])
    assert torch.allclose(still["confidence"], single["confidence"], atol=1e-6)  # a 4x larger batch rounds differently
    assert still["compute"]["forward_passes"] == 4 * single["compute"]["forward_passes"]
    noisy = evaluate(trained, split, {"name": "noise_select", "samples": 4, "sigma": 1.0, "clean": True})
    # the clean candidate is among the choices (its confidence rounds differently in the larger batch)
    assert (noisy["confidence"] >= single["confidence"] - 1e-6).all()
    assert (noisy["confidence"] > single["confidence"]).any()  # and the noise found others


def test_noise_select_picks_the_most_confident_of_separately_run_candidates():
    """Direct: run each candidate alone with its own noise, pick by confidence by hand."""
    trained, split = _trained(), _split(6)
    model, inputs = trained.model, split["inputs"]
    strategy = build_strategy({"name": "noise_select", "samples": 3, "sigma": 0.5, "clean": False, "seed": 7})
    generator = torch.Generator().manual_seed(7)
    steps = model.policy.max_steps  # q_act halts at max_steps at evaluation: every row runs them all
    state = model.initial_state(3 * len(inputs), "cpu")
    x = model.embed(inputs.repeat(3, 1))
    for _ in range(steps):
        state = {k: v + 0.5 * torch.randn(v.shape, generator=generator) for k, v in state.items()}
        state = model.segment(state, x)
    logits, halt = model.heads(state)
    sure = torch.sigmoid(halt["q_halt"]).view(3, -1)
    best = sure.argmax(0)
    expected = logits.argmax(-1).view(3, len(inputs), -1)[best, torch.arange(len(inputs))]
    got = strategy.run(model, trained.task, inputs, None, Compute())
    assert torch.equal(got.tokens, expected) and torch.allclose(got.confidence, sure.max(0).values)


def test_more_steps_equals_a_model_with_a_larger_maximum():
    trained, split = _trained(), _split()
    compute = Compute()
    more = build_strategy({"name": "more_steps", "factor": 2}).run(
        trained.model, trained.task, split["inputs"], None, compute
    )
    longer = copy.deepcopy(trained.model)
    longer.policy.max_steps = 2 * trained.model.policy.max_steps
    logits, steps, _ = run_to_halt(longer, split["inputs"])
    assert torch.equal(more.tokens, logits.argmax(-1)) and torch.equal(more.steps, steps) and int(steps[0]) == 8
    assert compute.forward_passes == 8 * len(split["inputs"])


def test_ensemble_of_one_is_single_and_of_two_votes():
    trained, other, split = _trained(), _trained(seed=1), _split()
    single = evaluate(trained, split, "single")
    alone = evaluate(trained, split, {"name": "ensemble"})
    assert torch.equal(alone["predictions"], single["predictions"]) and alone["compute"] == single["compute"]
    # first to halt with one member: the member run with its halting head deciding
    first = evaluate(trained, split, {"name": "ensemble", "mode": "first_to_halt"})
    halting = evaluate(trained, split, {"name": "more_steps", "factor": 1, "halting": True})
    assert torch.equal(first["predictions"], halting["predictions"])
    # two members: answers differ, each has one vote, the more confident wins (direct, row by row)
    strategy = build_strategy({"name": "ensemble"}, trained)
    strategy.members = [other]
    both = trained.predict(split, strategy=strategy)
    theirs = other.predict(split)
    ours_wins = single["confidence"] >= theirs["confidence"]
    agree = (single["predictions"] == theirs["predictions"]).all(-1)
    expected = torch.where((ours_wins | agree)[:, None], single["predictions"], theirs["predictions"])
    assert torch.equal(both["predictions"], expected)
    assert both["compute"]["forward_passes"] == 2 * single["compute"]["forward_passes"]


def test_augment_vote_over_noise_select_is_one_stacked_batch():
    trained, split = _trained(), _split(4)
    compute = Compute()
    config = {"name": "augment_vote", "count": 3, "inner": {"name": "noise_select", "samples": 2}}
    out = build_strategy(config, trained).run(trained.model, trained.task, split["inputs"], None, compute)
    assert out.tokens.shape == (4, 16)
    assert compute.segment_calls == trained.model.policy.max_steps  # one forward per segment for all 3 x 2 x 4 rows
    assert compute.forward_passes == 3 * 2 * 4 * trained.model.policy.max_steps


def _stablemax_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """HRM's stablemax, written out: s(x) = x + 1 for x >= 0, 1 / (1 - x) below; normalised."""
    s = torch.where(logits >= 0, logits + 1, 1 / (1 - logits))
    return s / s.sum(-1, keepdim=True)


def test_fill_against_a_loop_run_puzzle_by_puzzle():
    """Direct: each puzzle alone, its surest open cells committed by hand with a sorted list."""
    trained, split = _trained(), _split(6)
    model, task, inputs = trained.model, trained.task, split["inputs"].long()
    rounds, fraction = 6, 0.4
    expected, passes = [], 0
    for row in inputs:
        current = row.clone()
        for round_ in range(rounds):
            logits, steps, _ = run_to_halt(model, current[None])
            passes += int(steps.sum())
            predicted = logits[0].argmax(-1)
            answer = torch.where(current != row, current, predicted)
            open_cells = [i for i in range(len(row)) if current[i] == 1]
            if round_ == rounds - 1:
                break
            sure = _stablemax_probabilities(logits[0].double()).max(-1).values
            count = max(1, int(np.ceil(fraction * len(open_cells))))
            surest = sorted(open_cells, key=lambda i: -float(sure[i]))[:count]
            current[surest] = predicted[surest]
            if len(surest) == len(open_cells):
                break
        expected.append(answer)
    compute = Compute()
    got = build_strategy({"name": "fill", "rounds": rounds, "fraction": fraction}).run(
        model, task, inputs, None, compute
    )
    assert torch.equal(got.tokens, torch.stack(expected))
    assert compute.forward_passes == passes < rounds * len(inputs) * model.policy.max_steps  # finished rows stop
    one = build_strategy({"name": "fill", "rounds": 1}).run(model, task, inputs, None, Compute())
    assert torch.equal(one.tokens, build_strategy("single").run(model, task, inputs, None, Compute()).tokens)


class SurestCellModel(ScriptedModel):
    """Right, and sure, only about the first open cell of a puzzle; wrong and unsure about every other one."""

    def __init__(self, labels: torch.Tensor, vocab: int):
        super().__init__({}, {}, vocab, fallback=lambda r: r)
        self.labels = labels

    def heads(self, state):
        logits = []
        for row in state["x"]:
            answer = next(label for label in self.labels if ((row == 1) | (row == label)).all())
            guess = torch.where(row == 1, 2 + (answer - 1) % (self.vocab - 2), row)  # another digit: wrong
            scale = torch.ones(len(row))
            if (row == 1).any():
                first = int((row == 1).nonzero()[0])
                guess[first], scale[first] = answer[first], 5.0
            logits.append(nn.functional.one_hot(guess, self.vocab).float() * scale[:, None])
        return torch.stack(logits), {"q_halt": torch.zeros(len(state["x"]))}


def test_fill_commits_the_surest_cell_and_solves_what_one_pass_cannot():
    task = Sudoku(box=2, min_givens=4, max_givens=8)
    data = sd.build_dataset(3, 0, 1, 2, 6, 8)
    inputs, labels = torch.from_numpy(data["inputs"]).long(), torch.from_numpy(data["labels"]).long()
    model = SurestCellModel(labels, task.vocab_size)
    single = build_strategy("single").run(model, task, inputs, None, Compute())
    assert not (single.tokens == labels).all(1).any()
    open_cells = (inputs == task.blank_token).sum(1)
    fill = build_strategy({"name": "fill", "rounds": int(open_cells.max()) + 1, "fraction": 0.01}).run(
        model, task, inputs, None, Compute()
    )
    assert torch.equal(fill.tokens, labels)
    assert torch.equal(fill.steps, open_cells.int())  # one cell per round; a row stops once none is open
    short = build_strategy({"name": "fill", "rounds": 2, "fraction": 0.01}).run(model, task, inputs, None, Compute())
    assert not (short.tokens == labels).all(1).any()  # two passes fill one cell and guess the rest


def test_fill_rejects_bad_settings_and_tasks_without_blanks():
    with pytest.raises(ConfigError, match="infer.rounds=0 should be a positive integer"):
        build_strategy({"name": "fill", "rounds": 0})
    for fraction in (0, 1.5):
        with pytest.raises(ConfigError, match=f"infer.fraction={fraction} should be in"):
            build_strategy({"name": "fill", "fraction": fraction})
    for key, value in (("rounds", True), ("rounds", "3"), ("fraction", "0.3")):  # types: checked by the registry
        with pytest.raises(ConfigError, match=f"infer 'fill': {key}={value!r} should be"):
            build_strategy({"name": "fill", key: value})
    model, task, inputs, ids, compute = _scripted_maze()
    task.blank_token = None  # a task without blanks (Maze, ARC)
    with pytest.raises(ConfigError, match="Sudoku task has no blank token to fill"):
        build_strategy("fill").run(model, task, inputs, ids, compute)


# -- configuration ---------------------------------------------------------------------------------


def test_command_line_options():
    configs, rest = parse(
        ["ckpt=x", "infer=single,augment_vote", "infer.inner.samples=3", "infer.inner=noise_select", "infer.count=4"]
    )
    assert rest == ["ckpt=x"] and [c["name"] for c in configs] == ["single", "augment_vote"]
    inner = configs[1]["inner"]
    assert (
        configs[1]["count"] == 4 and inner["name"] == "noise_select" and inner["samples"] == 3 and inner["sigma"] == 0.1
    )
    assert parse([], {"name": "single"})[0] == [{"name": "single"}]
    with pytest.raises(ConfigError, match="has the key 'sampels'.*Did you mean 'samples'"):
        parse(["infer=noise_select", "infer.sampels=3"])
    with pytest.raises(ConfigError, match="No infer named 'nois_select'"):
        parse(["infer=nois_select"])
    with pytest.raises(ConfigError, match="no validity check"):
        build_strategy({"name": "noise_select", "check": True}).run(*_scripted_maze())
    with pytest.raises(ConfigError, match="needs a halting head"):
        build_strategy({"name": "noise_select"}).prepare(_trained("halt=fixed"), _split(2))


def _scripted_maze():
    task = Sudoku(box=2, min_givens=4, max_givens=8)
    task.check = lambda inputs, predictions: None  # a task without a validity check
    inputs = _split(2)["inputs"].long()
    return ScriptedModel({}, {}, 6, fallback=lambda r: r), task, inputs, None, Compute()


class Echo(InferenceStrategy):
    """A plugin's strategy: answer with the puzzle itself, twice as sure as it is worth."""

    def __init__(self, certainty: float = 0.25, trained=None):
        self.certainty = certainty

    def run(self, model, task, inputs, puzzle_ids, compute) -> Candidates:
        return Candidates(
            inputs.long(), torch.full((len(inputs),), 2 * self.certainty), torch.zeros(len(inputs), dtype=torch.int32)
        )


def test_a_plugin_strategy_registers_and_runs():
    registry.register("infer", "test_echo")(Echo)  # as a plugin's module does on import
    try:
        entry = registry.get("infer", "test_echo")
        assert entry.origin.startswith("local")
        configs, _ = parse(["infer=test_echo", "infer.certainty=0.4"])
        trained, split = _trained(), _split(3)
        out = evaluate(trained, split, configs[0])
        assert torch.equal(out["predictions"], split["inputs"].long()) and torch.allclose(
            out["confidence"], torch.tensor(0.8)
        )
        assert out["compute"]["forward_passes"] == 0 and out["strategy"] == "test_echo (certainty=0.4)"
    finally:
        registry.unregister("infer", "test_echo")


def test_list_shows_the_infer_kind():
    from latentreason.cli import cmd_list
    from latentreason.console import console

    with console.capture() as captured:
        cmd_list(["infer"])
    text = captured.get()
    assert "infer" in registry.KINDS
    for name in ("single", "more_steps", "noise_select", "augment_vote", "ensemble", "fill"):
        assert name in text
    assert "(no card)" not in text


def test_run_model_counts_rows_times_segments():
    model, inputs = (
        tiny_model("task.box=2", "halt.eval_halt=q_halt", "halt.eval_threshold=0.0", seq_len=16, vocab=6).eval(),
        _split(5)["inputs"],
    )
    compute = Compute()
    out = run_model(model, inputs, None, compute)
    assert (
        torch.equal(out.steps, torch.ones(5, dtype=torch.int32))
        and compute.forward_passes == 5
        and compute.segment_calls == 1
    )
