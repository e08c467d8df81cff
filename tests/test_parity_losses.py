"""Parity of losses and metrics with the reference's ACTLossHead (sapientinc/HRM and TRM models/losses.py).

The reference's loss head is run on logits we choose, through a stand-in ACT model that returns
them, so the comparison is of the loss and metric code alone: our stablemax and softmax
cross-entropies, per-row token and exact accuracy, the Q-halt and Q-continue BCE terms with their
0.5 weight, and the sums the reference reports over halted rows.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from reference_code import load
from torch import nn

from latentreason.halt.halt_only import HaltOnly
from latentreason.halt.q_act import QACT
from latentreason.train.deep_supervision import per_row_results
from latentreason.train.losses import token_cross_entropy
from latentreason.train.metrics import ReasoningMetrics


class FixedOutputs(nn.Module):
    """Stands in for the reference's ACT model: returns the carry and outputs it was given."""

    def __init__(self, carry, outputs):
        super().__init__()
        self.carry, self.outputs = carry, outputs

    def forward(self, **_):
        return self.carry, self.outputs


def case(seed: int, rows: int = 8, length: int = 12, vocab: int = 7):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, vocab, (rows, length), generator=g)
    logits = torch.randn(rows, length, vocab, generator=g) * 4
    logits[0, :3] = torch.tensor([-1e4, 0.0, 1e4] + [0.0] * (vocab - 3))  # stablemax's two branches, far out
    logits[1] = torch.nn.functional.one_hot(labels[1], vocab) * 5.0  # an exactly right row
    labels[2, ::2] = -100
    labels[3] = -100  # a row with nothing to predict
    q_halt, q_continue = torch.randn(rows, generator=g) * 3, torch.randn(rows, generator=g) * 3
    target = torch.rand(rows, generator=g)
    halted = torch.rand(rows, generator=g) < 0.6
    halted[1] = True
    steps = torch.randint(1, 5, (rows,), generator=g, dtype=torch.int32)
    return labels, logits, q_halt, q_continue, target, halted, steps


@pytest.mark.parametrize("code", ["hrm", "trm"])
@pytest.mark.parametrize("kind", ["stablemax", "softmax"])
def test_token_losses_match_reference(code, kind):
    losses = load(code, "models.losses")["models.losses"]
    labels, logits, *_ = case(0)
    reference = getattr(losses, f"{kind}_cross_entropy")(logits, labels, ignore_index=-100)
    ours = token_cross_entropy(logits, labels, kind)
    torch.testing.assert_close(ours.double(), reference.double(), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_head_terms_and_metrics_match_reference(seed):
    losses = load("hrm", "models.losses")["models.losses"]
    labels, logits, q_halt, q_continue, target, halted, steps = case(seed)
    carry = SimpleNamespace(current_data={"labels": labels}, halted=halted, steps=steps)
    outputs = {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_continue, "target_q_continue": target}
    head = losses.ACTLossHead(FixedOutputs(carry, outputs), "stablemax_cross_entropy")
    _, total, metrics, _, _ = head(return_keys=[])

    # Ours, as train_segment composes it.
    results = per_row_results(logits, labels)
    per_token = token_cross_entropy(logits, labels, "stablemax")
    lm = (per_token.sum(-1) / results["counts"].clamp_min(1)).sum()
    q_terms = QACT(hidden_size=4).loss(
        {"q_halt": q_halt, "q_continue": q_continue}, {"q_continue": target}, results["exact"]
    )
    torch.testing.assert_close(lm.double(), metrics["lm_loss"].double(), atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(q_terms["q_halt"], 0.5 * metrics["q_halt_loss"], atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(q_terms["q_continue"], 0.5 * metrics["q_continue_loss"], atol=1e-5, rtol=1e-6)
    torch.testing.assert_close((lm + sum(q_terms.values())).double(), total.double(), atol=1e-5, rtol=1e-6)

    # Metrics: the reference sums over halted rows with labels; ours keeps sums and a count.
    ours = ReasoningMetrics()
    ours.update({**results, "steps": steps, "q_halt": q_halt}, rows=halted)
    n = int(metrics["count"])
    assert int(ours.count) == n > 0
    torch.testing.assert_close(float(ours.token_accuracy), float(metrics["accuracy"]), atol=1e-5, rtol=0)
    assert int(ours.exact_accuracy) == int(metrics["exact_accuracy"])
    assert int(ours.q_halt_accuracy) == int(metrics["q_halt_accuracy"])
    assert int(ours.steps) == int(metrics["steps"])


def test_trm_loss_head_without_continue_matches_halt_only():
    """TRM (no_ACT_continue): the loss is lm + 0.5 q_halt, which is our halt_only policy's."""
    losses = load("trm", "models.losses")["models.losses"]
    labels, logits, q_halt, q_continue, _, halted, steps = case(2)
    carry = SimpleNamespace(current_data={"labels": labels}, halted=halted, steps=steps)
    outputs = {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_continue}
    head = losses.ACTLossHead(FixedOutputs(carry, outputs), "stablemax_cross_entropy")
    _, total, metrics, _, _ = head(return_keys=[])
    results = per_row_results(logits, labels)
    lm = (token_cross_entropy(logits, labels).sum(-1) / results["counts"].clamp_min(1)).sum()
    q_terms = HaltOnly(hidden_size=4).loss({"q_halt": q_halt}, {}, results["exact"])
    assert set(q_terms) == {"q_halt"} and "q_continue_loss" not in metrics
    torch.testing.assert_close((lm + q_terms["q_halt"]).double(), total.double(), atol=1e-5, rtol=1e-6)
