"""Voting, pass@k by both scoring rules, and the submission format, on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from latentreason.tasks import arc_eval as ev

G = {
    name: np.full((1, 2), value, dtype=np.uint8)
    for value, name in enumerate(["g0", "g1", "g2", "g3", "g4", "g5", "g6"])
}


def test_rank_orders_by_votes_then_mean_confidence_then_first_seen():
    ranked = ev.rank([G["g1"], G["g2"], G["g2"], G["g1"], G["g3"]], [0.9, 0.8, 0.3, 0.1, 0.99])
    # g1: 2 votes, mean 0.5; g2: 2 votes, mean 0.55; g3: 1 vote, 0.99 -> g2, g1, g3
    assert [int(c.grid[0, 0]) for c in ranked] == [2, 1, 3]
    assert [c.votes for c in ranked] == [2, 2, 1]
    assert ranked[0].confidence == pytest.approx(0.55) and ranked[1].confidence == pytest.approx(0.5)
    tie = ev.rank([G["g4"], G["g5"]], [0.5, 0.5])  # same votes, same confidence: the first seen wins
    assert [int(c.grid[0, 0]) for c in tie] == [4, 5]
    shapes = ev.rank([np.zeros((1, 2), np.uint8), np.zeros((2, 1), np.uint8)], [0.1, 0.2])
    assert len(shapes) == 2  # equal bytes, different shapes: different answers


def _case() -> dict:
    rows = [
        # task A, test 0: ranking g2, g1, g3; truth g1 -> right at k=2 only
        ("A", 0, G["g1"], 0.9, G["g1"]),
        ("A", 0, G["g2"], 0.8, G["g1"]),
        ("A", 0, G["g2"], 0.3, G["g1"]),
        ("A", 0, G["g1"], 0.1, G["g1"]),
        ("A", 0, G["g3"], 0.99, G["g1"]),
        # task A, test 1: g4 three times; truth g4 -> right at k=1
        ("A", 1, G["g4"], 0.2, G["g4"]),
        ("A", 1, G["g4"], 0.2, G["g4"]),
        ("A", 1, G["g4"], 0.2, G["g4"]),
        # task B, test 0: one vote each; g6 more confident; truth g5 -> right at k=2 only
        ("B", 0, G["g5"], 0.2, G["g5"]),
        ("B", 0, G["g6"], 0.9, G["g5"]),
        # task C: no known output, so not scored
        ("C", 0, G["g0"], 0.5, None),
    ]
    return ev.collect(rows)


def test_pass_at_k_both_rules_by_hand():
    scores = ev.pass_at_k(_case(), ks=(1, 2, 3))
    assert scores["scored_tasks"] == 2
    # HRM (all test inputs right): k=1: A fails (test 0), B fails -> 0; k=2: both -> 1
    assert scores["pass@1"] == 0.0 and scores["pass@2"] == 1.0 and scores["pass@3"] == 1.0
    # TRM (per-input credit): k=1: A = (0 + 1) / 2, B = 0 -> 0.25; k=2: 1
    assert scores["pass@1_per_input"] == pytest.approx(0.25)
    assert scores["pass@2_per_input"] == 1.0


def test_the_two_rules_differ_when_a_task_is_half_right():
    rows = [("A", 0, G["g1"], 0.5, G["g1"]), ("A", 1, G["g2"], 0.5, G["g3"]), ("B", 0, G["g4"], 0.5, G["g4"])]
    scores = ev.pass_at_k(ev.collect(rows), ks=(1,))
    assert scores["pass@1"] == pytest.approx(0.5)  # B only
    assert scores["pass@1_per_input"] == pytest.approx((0.5 + 1.0) / 2)


def test_submission_has_two_attempts_per_test_input_in_order():
    sub = ev.submission(_case())
    assert set(sub) == {"A", "B", "C"}
    assert sub["A"] == [
        {"attempt_1": G["g2"].tolist(), "attempt_2": G["g1"].tolist()},
        {"attempt_1": G["g4"].tolist(), "attempt_2": G["g4"].tolist()},
    ]
    assert sub["B"] == [{"attempt_1": G["g6"].tolist(), "attempt_2": G["g5"].tolist()}]
    empty = ev.submission(ev.collect([("D", 0, np.zeros((0, 0), np.uint8), 0.9, None)]))
    assert empty["D"] == [{"attempt_1": [[0]], "attempt_2": [[0]]}]  # nothing decoded: a placeholder of the right shape
