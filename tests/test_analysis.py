"""`latentreason analyze`: every figure's numbers against a direct computation, on checkpoints trained here."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import TINY_RUN
from latentreason.analysis import measures
from latentreason.analysis.trace import policy_halting_steps, trace
from latentreason.cli import main
from latentreason.errors import ConfigError
from latentreason.inference import load_checkpoint
from latentreason.train.deep_supervision import per_row_results

TRAIN = [*TINY_RUN, "halt.max_steps=3", "trainer.max_steps=12", "trainer.eval_every=0", "task.test_puzzles=12"]
TRM = [a for a in TRAIN if not a.startswith(("recipe=", "core.num_heads"))] + [
    "recipe=trm_sudoku",
    "core.num_layers=1",
    "core.H_cycles=2",
    "core.L_cycles=2",
    "grad.k=3",
    "model.puzzle_emb_len=1",
]


def latentreason(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "latentreason.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny checkpoints of different cores (HRM with Q-ACT, TRM with halt-only), trained by the command line."""
    root = tmp_path_factory.mktemp("analysis")
    env = {"LATENTREASON_CACHE": str(root / "cache")}
    for name, args in (("hrm", TRAIN), ("trm", TRM)):
        result = latentreason(*args, f"output_dir={root}", f"run_name={name}", env_extra=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LATENTREASON_CACHE", str(root / "cache"))  # the held-out split is read back from the same cache
        yield root


def held_out(path):
    trained = load_checkpoint(path, "cpu")
    split = trained.task.splits()["test"]
    trained.use_puzzle_names(split)
    return trained, split


def by_hand(model, split, k):
    """Token and exact accuracy after exactly k segments, through the model's own segment() and heads()."""
    with torch.no_grad():
        x = model.embed(split["inputs"], split["puzzle_ids"])
        state = model.initial_state(len(split["inputs"]), "cpu")
        for _ in range(k):
            state = model.segment(state, x)
        logits, halt_logits = model.heads(state)
    results = per_row_results(logits, split["labels"].long())
    return float(results["token_accuracy"].double().mean()), float(results["exact"].double().mean()), halt_logits


@pytest.mark.parametrize("run", ["hrm", "trm"])
def test_accuracy_at_k_segments_is_running_k_segments_by_hand(runs, run):
    trained, split = held_out(runs / run / "final.ckpt")
    model = trained.model
    tr = trace(model, split["inputs"], split["labels"], split["puzzle_ids"], segments=2 * model.policy.max_steps)
    table = measures.accuracy_by_segments(tr)
    assert [r["segments"] for r in table] == list(range(1, 2 * model.policy.max_steps + 1))
    for k in (1, model.policy.max_steps, 2 * model.policy.max_steps):
        token, exact, halt_logits = by_hand(model, split, k)
        assert table[k - 1]["token_accuracy"] == pytest.approx(token, abs=1e-9)
        assert table[k - 1]["exact_accuracy"] == pytest.approx(exact, abs=1e-9)
        for name, value in halt_logits.items():
            torch.testing.assert_close(tr.halt_logits[name][k - 1], value)
    assert 0 < table[0]["token_accuracy"] < 1  # a real number, not a degenerate one


def test_halting_sweep_matches_run_to_halt_with_that_threshold(runs):
    trained, split = held_out(runs / "hrm" / "final.ckpt")
    model, max_steps = trained.model, trained.model.policy.max_steps
    tr = trace(model, split["inputs"], split["labels"], split["puzzle_ids"], segments=max_steps)
    probability = torch.sigmoid(tr.halt_logits["q_halt"])
    threshold = float(probability[: max_steps - 1].flatten().median())  # some rows halt early, others do not
    sweep = measures.halting_sweep(
        tr, max_steps, [threshold], policy_halting_steps(model, tr.halt_logits, len(tr.labelled))
    )
    # the model's own rule, set to this threshold, run by the inference path used by `eval`
    model.policy.eval_halt, model.policy.eval_threshold = "q_halt", threshold
    direct = trained.predict(split)
    row = next(r for r in sweep if r["rule"] == "sigmoid(q_halt)")
    assert 1 < direct["metrics"]["steps"] < max_steps
    assert row["mean_segments"] == pytest.approx(direct["metrics"]["steps"])
    assert row["token_accuracy"] == pytest.approx(direct["metrics"]["token_accuracy"])
    assert row["exact_accuracy"] == pytest.approx(direct["metrics"]["exact_accuracy"])
    # the policy row replays the policy; it was built before the rule was changed, so: max_steps for every row
    policy = next(r for r in sweep if r["rule"] == "policy")
    assert policy["mean_segments"] == max_steps
    steps = policy_halting_steps(model, tr.halt_logits, len(tr.labelled))
    torch.testing.assert_close(steps, direct["steps"])


def test_example_trajectories_and_principal_components(runs):
    trained, split = held_out(runs / "hrm" / "final.ckpt")
    tr = trace(trained.model, split["inputs"], split["labels"], split["puzzle_ids"], segments=4, keep_readouts=True)
    groups = measures.choose_examples(tr, 3, 3)
    best = groups["best"][0]
    score = tr.exact[:3].double().sum(0) * 2 + tr.token_accuracy[:3].double().mean(0)
    assert score[best] == score.max()
    table = measures.example_trajectories(tr, {"best": [best]})
    predictions = tr.predictions[:, best]
    assert [r["changed_cells"] for r in table][1] == pytest.approx(
        float((predictions[1] != predictions[0]).double().mean())
    )
    rows = groups["best"] + groups["random"]
    pca, explained = measures.principal_trajectories(tr.readouts, rows)
    points = tr.readouts[:, rows].flatten(2).reshape(-1, tr.readouts[0, 0].numel()).numpy().astype(np.float64)
    centred = points - points.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    assert explained == pytest.approx(list((s**2 / (s**2).sum())[:2]))
    mine = np.array(
        [[r["pc1"], r["pc2"]] for r in sorted(pca, key=lambda r: (r["segments"], rows.index(r["example"])))]
    )
    theirs = centred @ vt[:2].T
    assert np.allclose(np.abs(mine), np.abs(theirs), atol=1e-6)  # components are defined up to sign


def test_residuals_and_participation_ratio_recomputed_from_the_states(runs):
    trained, split = held_out(runs / "hrm" / "final.ckpt")
    model = trained.model
    inputs, labels, ids = split["inputs"][:4], split["labels"][:4], split["puzzle_ids"][:4]
    schedule = model.core.schedule()
    recorder = measures.Convergence("hrm", len(schedule))
    trace(model, inputs, labels, ids, segments=2, observe=recorder)
    # the same walk by hand, keeping every state
    with torch.no_grad():
        x = model.embed(inputs, ids)
        states = [model.initial_state(4, "cpu")]
        for _ in range(2):
            for update in schedule:
                states.append(model.core.apply(update, states[-1], x))
    assert len(recorder.residuals) == 2 * len(schedule) * len(model.core.state_fields)
    for r in recorder.residuals:
        new, old = states[r["update"]][r["field"]], states[r["update"] - 1][r["field"]]
        expected = np.mean([np.linalg.norm((n - o).numpy()) / np.linalg.norm(n.numpy()) for n, o in zip(new, old)])
        assert r["residual"] == pytest.approx(expected, rel=1e-4)
        assert (r["residual"] > 0) == (r["field"] == schedule[r["index_in_segment"] - 1].writes)
    for r in recorder.ratios:
        final = (
            states[r["segment"] * len(schedule)][r["field"]]
            .reshape(-1, model.core.hidden_size)
            .numpy()
            .astype(np.float64)
        )
        eigen = np.linalg.eigvalsh(np.cov(final.T))
        assert r["participation_ratio"] == pytest.approx(eigen.sum() ** 2 / (eigen**2).sum(), rel=1e-6)
    # the segment the trace walks is the segment the model runs
    with torch.no_grad():
        direct = model.segment(model.initial_state(4, "cpu"), x)
    for field_name in model.core.state_fields:
        torch.testing.assert_close(direct[field_name], states[len(schedule)][field_name])


def read(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_analyze_two_cores_in_one_call(runs, capsys):
    out = runs / "report"
    code = main(
        [
            "analyze",
            f"ckpt={runs / 'hrm' / 'final.ckpt'}",
            f"ckpt={runs / 'trm' / 'final.ckpt'}",
            f"run={runs / 'hrm'}",
            f"run={runs / 'trm'}",
            f"out={out}",
            "segments=5",
            "device=cpu",
        ]
    )
    assert code == 0, capsys.readouterr().out[-3000:]
    rows = read(out / "accuracy_vs_segments.csv")
    assert {r["model"] for r in rows} == {"hrm (hrm)", "trm (trm)"}
    for name in ("hrm", "trm"):
        trained, split = held_out(runs / name / "final.ckpt")
        token, exact, _ = by_hand(trained.model, split, 5)
        row = next(r for r in rows if r["model"] == f"{name} ({name})" and r["segments"] == "5")
        assert float(row["token_accuracy"]) == pytest.approx(token) and float(row["exact_accuracy"]) == pytest.approx(
            exact
        )
    sweep = read(out / "halting_sweep.csv")
    assert {r["rule"] for r in sweep if r["model"] == "trm (trm)"} == {
        "sigmoid(q_halt)",
        "policy",
        "max_steps",
    }  # no q_continue
    assert "sigmoid(q_halt - q_continue)" in {r["rule"] for r in sweep if r["model"] == "hrm (hrm)"}
    assert {r["weights"] for r in read(out / "residuals.csv")} == {"trained", "untrained"}
    page = (out / "report.html").read_text()
    images = page.count("<img ")
    assert images >= 9 and page.count("src='data:image/png;base64,") == images
    for png in ("accuracy_vs_segments", "halting_sweep", "residuals", "participation_ratio", "training_curves"):
        assert (out / f"{png}.png").stat().st_size > 5000


def test_bad_options_are_one_line_errors(runs, capsys):
    for args, words in (
        (["analyze"], "nothing to analyse"),
        (["analyze", f"ckpt={runs / 'hrm' / 'final.ckpt'}", "what=segments,bogus"], "what='segments,bogus'"),
        (["analyze", f"ckpt={runs / 'hrm' / 'final.ckpt'}", "limits=3"], "no option 'limits'"),
        (["analyze", f"run={runs}"], "no metrics.csv"),
    ):
        code = main(args)
        printed = " ".join(capsys.readouterr().out.split())
        assert code == 2 and printed.startswith("error:") and words in printed, printed


def test_missing_matplotlib_is_named_with_the_extra(monkeypatch):
    from latentreason.analysis import figures

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(ConfigError, match=r"latentreason\[analysis\]"):
        figures.pyplot()


def test_analyze_regenerates_missing_data_or_reads_a_file(runs, tmp_path, monkeypatch, capsys):
    from latentreason.tasks import sudoku_data as sd

    trained, split = held_out(runs / "hrm" / "final.ckpt")
    monkeypatch.setenv(
        "LATENTREASON_CACHE", str(tmp_path / "empty-cache")
    )  # the checkpoint's data is rebuilt from its config
    assert (
        main(["analyze", f"ckpt={runs / 'hrm' / 'final.ckpt'}", "what=segments", "segments=2", f"out={tmp_path / 'a'}"])
        == 0
    )
    rebuilt = read(tmp_path / "a" / "accuracy_vs_segments.csv")
    token, exact, _ = by_hand(trained.model, split, 2)
    assert float(rebuilt[1]["token_accuracy"]) == pytest.approx(token)
    # a Sudoku-Extreme style CSV of the first 5 held-out puzzles gives the numbers of those 5 rows
    rows = ["source,q,a,rating"]
    for inputs, labels in zip(split["inputs"][:5], split["labels"][:5]):
        line = [sd.grid_to_string(sd.decode(t.numpy().astype(np.uint8))) for t in (inputs, labels)]
        rows.append(f"gen,{line[0]},{line[1]},0")
    csv_file = tmp_path / "five.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    assert (
        main(
            [
                "analyze",
                f"ckpt={runs / 'hrm' / 'final.ckpt'}",
                f"data={csv_file}",
                "what=segments",
                "segments=2",
                f"out={tmp_path / 'b'}",
            ]
        )
        == 0
    )
    five = read(tmp_path / "b" / "accuracy_vs_segments.csv")
    token, exact, _ = by_hand(trained.model, {k: v[:5] for k, v in split.items()}, 2)
    assert float(five[1]["token_accuracy"]) == pytest.approx(token)


def test_schedule_diagram_marks_the_updates_each_estimator_grads():
    from latentreason.analysis.schedule_diagram import readout_field, schedule_svg, small_core
    from latentreason.grad.one_step import OneStep
    from latentreason.grad.tbptt import TBPTT

    core = small_core({"name": "trm", "H_cycles": 3, "L_cycles": 6, "num_layers": 2})
    assert len(core.schedule()) == 21 and readout_field(core) == "y"
    for estimator, graded in ((OneStep(), 2), (TBPTT(k=7), 7), (TBPTT(), 21)):
        svg = schedule_svg(core, [("row", estimator)])
        assert svg.count("(with gradient)") == graded and svg.count("(no gradient)") == 21 - graded
    assert "heads read y" in svg and "y[0]" in svg


def test_the_policy_replay_passes_only_the_running_rows_as_run_to_halt_does():
    """A policy with per-row state (PonderNet's cumulative rule) sees, at each segment, only the rows still running."""
    from types import SimpleNamespace

    class Stateful(torch.nn.Module):
        max_steps = 4

        def halt(self, logits, steps, next_logits):
            q = logits["q_halt"]
            if int(steps[0]) == 1:
                self.running = len(q)
            assert len(q) == self.running, "called with rows that had already halted"
            halted = q > 0
            self.running -= int(halted.sum())
            return halted, {}

    q = torch.tensor([[1.0, -1, -1], [0, 1, -1], [0, 0, 1], [0, 0, 0]])  # (segments, rows): row r halts at r + 1
    steps = policy_halting_steps(SimpleNamespace(policy=Stateful()), {"q_halt": q}, 3)
    assert steps.tolist() == [1, 2, 3]


def test_training_curves_take_the_held_out_columns_from_their_own_rows():
    from latentreason.analysis.figures import CURVE_PANELS, curve_columns

    rows = [{"step": 1, "train/token_accuracy": 0.5}, {"step": 2, "val/token_accuracy": 0.6}]  # as metrics.csv reads
    accuracy = next(wanted for title, wanted, _ in CURVE_PANELS if "accurac" in title)
    assert curve_columns(rows, accuracy) == ["train/token_accuracy", "val/token_accuracy"]
