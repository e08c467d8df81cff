"""The whole training step (core + one-step gradient + Q-ACT + deep supervision) can fit a fixed batch."""

import torch

from conftest import tiny_model
from latentreason.train.deep_supervision import Carry, run_to_halt, train_segment
from latentreason.train.optim import build_optimizer


def test_overfits_a_fixed_batch():
    model = tiny_model("core.hidden_size=64", "core.num_heads=4", "halt.max_steps=2", seed=0, seq_len=16, vocab=6)
    g = torch.Generator().manual_seed(0)
    batch = {"inputs": torch.randint(1, 6, (16, 16), generator=g), "labels": torch.randint(2, 6, (16, 16), generator=g), "puzzle_ids": torch.zeros(16, dtype=torch.long)}
    optimizer = build_optimizer("adamw", model.parameters(), lr=3e-3, weight_decay=0.0)
    carry = Carry.start(model, batch)
    losses = []
    for _ in range(150):
        carry, loss, terms, _ = train_segment(model, carry, batch)
        optimizer.zero_grad()
        (loss / 16).backward()
        optimizer.step()
        losses.append(terms["lm"].item() / 16)
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])
    model.eval()
    logits, steps, _ = run_to_halt(model, batch["inputs"], batch["puzzle_ids"])
    assert (logits.argmax(-1) == batch["labels"]).float().mean() > 0.8  # chance is 0.25
    assert steps.tolist() == [2] * 16
