"""Q-ACT and the persistent carry, on hand-built carries with fixed seeds."""

import torch

from conftest import random_batch, tiny_model
from latentreason.train.deep_supervision import Carry, train_segment


def _set_q(model, halt_bias, continue_bias):
    with torch.no_grad():
        model.policy.head.weight.zero_()
        model.policy.head.bias.copy_(torch.tensor([halt_bias, continue_bias]))


def test_halts_at_max_steps_and_when_q_halt_exceeds_q_continue():
    model = tiny_model("halt.exploration_prob=0.0")
    model.train()
    steps = torch.tensor([1, 2, 4, 4], dtype=torch.int32)
    halted, _ = model.policy.halt(
        {"q_halt": torch.tensor([1.0, -1.0, -1.0, 1.0]), "q_continue": torch.zeros(4)},
        steps,
        lambda: {"q_halt": torch.zeros(4), "q_continue": torch.zeros(4)},
    )
    assert halted.tolist() == [True, False, True, True]
    model.eval()  # at evaluation every row runs max_steps, whatever the Q head says
    halted, targets = model.policy.halt(
        {"q_halt": torch.tensor([5.0, 5.0, -5.0, 5.0]), "q_continue": torch.zeros(4)}, steps, lambda: 1 / 0
    )
    assert halted.tolist() == [False, False, True, True] and targets == {}


def test_exploration_sets_a_minimum_number_of_steps():
    model = tiny_model("halt.exploration_prob=1.0", "halt.max_steps=6")
    model.train()
    logits = {"q_halt": torch.full((400,), 3.0), "q_continue": torch.zeros(400)}
    nxt = lambda: {"q_halt": torch.zeros(400), "q_continue": torch.zeros(400)}  # noqa: E731
    torch.manual_seed(0)
    halted_at_1, _ = model.policy.halt(logits, torch.ones(400, dtype=torch.int32), nxt)
    assert not halted_at_1.any()  # the minimum is drawn from [2, max], so nobody stops at step 1
    torch.manual_seed(0)
    halted_at_3, _ = model.policy.halt(logits, torch.full((400,), 3, dtype=torch.int32), nxt)
    # minimum steps uniform on {2..6}: P(min <= 3) = 2/5
    assert 0.3 < halted_at_3.float().mean().item() < 0.5
    model.policy.exploration_prob = 0.0
    halted, _ = model.policy.halt(logits, torch.ones(400, dtype=torch.int32), nxt)
    assert halted.all()


def test_halted_rows_are_replaced_and_the_others_continue():
    model = tiny_model("halt.exploration_prob=0.0")
    model.train()
    _set_q(model, -5.0, 5.0)  # never halt on Q: only max_steps stops a row
    first, second = random_batch(4, 1), random_batch(4, 2)
    carry = Carry.start(model, first)
    carry, *_ = train_segment(model, carry, first)
    assert carry.steps.tolist() == [1, 1, 1, 1] and torch.equal(carry.data["inputs"], first["inputs"])

    carry.halted = torch.tensor([True, False, True, False])
    kept_state = {k: v.clone() for k, v in carry.state.items()}
    # Reference for the continuing rows: one more segment from their own state and example.
    x = model.embed(first["inputs"])
    expected = model.segment(kept_state, x)
    fresh = model.segment(model.initial_state(4, "cpu"), model.embed(second["inputs"]))
    carry, *_ = train_segment(model, carry, second)

    assert carry.steps.tolist() == [1, 2, 1, 2]
    for row, source in ((0, second), (1, first), (2, second), (3, first)):
        assert torch.equal(carry.data["inputs"][row], source["inputs"][row])
        assert torch.equal(carry.data["labels"][row], source["labels"][row])
    assert torch.allclose(carry.state["z_H"][[1, 3]], expected["z_H"][[1, 3]], atol=1e-6)
    assert torch.allclose(carry.state["z_H"][[0, 2]], fresh["z_H"][[0, 2]], atol=1e-6)
    assert not carry.state["z_H"].requires_grad  # the carry leaves the segment detached


def test_bootstrapped_continue_target_comes_from_one_more_segment():
    model = tiny_model("halt.exploration_prob=0.0", "halt.max_steps=3")
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        model.policy.head.weight.normal_(0, 0.3)
        model.policy.head.bias.copy_(torch.tensor([-5.0, 5.0]))
    batch = random_batch(4, 3)
    carry = Carry.start(model, batch)
    carry.halted = torch.tensor([True, True, True, True])
    carry, *_ = train_segment(model, carry, batch)  # everyone at step 1
    carry.halted = torch.zeros(4, dtype=torch.bool)
    carry.steps = torch.tensor([1, 2, 1, 2], dtype=torch.int32)  # rows 1 and 3 reach max_steps now

    # Independent computation of the target from the carry by hand.
    x = model.embed(carry.data["inputs"])
    with torch.no_grad():
        after = model.segment(dict(carry.state), x)
        nxt = model.policy.logits(model.core.readout(model.segment(after, x)))
        predictions = model.heads(after)[0].argmax(-1)
    carry.data["labels"][::2] = predictions[::2]  # rows 0 and 2 exactly right, 1 and 3 not
    exact = (predictions == carry.data["labels"]).all(-1)
    assert exact.tolist() == [True, False, True, False]
    is_last = torch.tensor([False, True, False, True])
    expected = torch.sigmoid(torch.where(is_last, nxt["q_halt"], torch.maximum(nxt["q_halt"], nxt["q_continue"])))

    captured = {}
    original = model.policy.loss

    def spy(logits, targets, exact):
        captured.update(targets)
        return original(logits, targets, exact)

    model.policy.loss = spy
    carry, loss, terms, results = train_segment(model, carry, batch)
    assert torch.allclose(captured["q_continue"], expected, atol=1e-6)
    assert carry.halted.tolist() == [False, True, False, True]
    assert set(terms) == {"lm", "q_halt", "q_continue"}
    # Loss terms: q_halt is BCE against exact correctness (computed above, independently), weighted 0.5.
    assert torch.equal(results["exact"], exact)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(results["q_halt"], exact.float(), reduction="sum")
    assert torch.allclose(terms["q_halt"], 0.5 * bce, atol=1e-6)
