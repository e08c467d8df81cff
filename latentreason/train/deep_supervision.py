"""Deep supervision over a persistent carry: one segment per optimizer step.

Each row of the carry works on one example for several optimizer steps. After every segment the
halting policy says which rows stop; those rows take a fresh example from the next batch and
restart from the core's initial state, while the others keep their example and their (detached)
state. This is how HRM and TRM train; the carry is saved in checkpoints so a resume continues it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from latentreason.cores.base import State
from latentreason.model import ReasoningModel
from latentreason.train.losses import IGNORE_LABEL, token_cross_entropy

Batch = dict[str, torch.Tensor]


@dataclass
class Carry:
    state: State  # the core's state per row, detached
    steps: torch.Tensor  # segments run so far on each row's current example
    halted: torch.Tensor  # rows that take a fresh example at the next step
    data: Batch  # each row's current example (inputs, labels, puzzle_ids)

    @classmethod
    def start(cls, model: ReasoningModel, batch: Batch) -> Carry:
        """A carry whose rows have all halted, so the first step loads fresh examples everywhere."""
        size, device = batch["inputs"].shape[0], batch["inputs"].device
        return cls(
            state={k: v.clone() for k, v in model.initial_state(size, device).items()},
            steps=torch.zeros(size, dtype=torch.int32, device=device),
            halted=torch.ones(size, dtype=torch.bool, device=device),
            data={k: v.clone() for k, v in batch.items()},
        )

    def state_dict(self) -> dict:
        return {"state": self.state, "steps": self.steps, "halted": self.halted, "data": self.data}

    @classmethod
    def from_state_dict(cls, d: dict, device) -> Carry:
        move = lambda t: t.to(device)  # noqa: E731
        return cls(
            {k: move(v) for k, v in d["state"].items()},
            move(d["steps"]),
            move(d["halted"]),
            {k: move(v) for k, v in d["data"].items()},
        )


def per_row_results(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Token accuracy and exact correctness per row, over labelled positions."""
    return token_results(logits.argmax(-1), labels)


def token_results(predictions: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """`per_row_results` of predicted tokens: what inference strategies produce (votes, not logits)."""
    mask = labels != IGNORE_LABEL
    counts = mask.sum(-1)
    correct = mask & (predictions == labels)
    return {
        "counts": counts,
        "token_accuracy": correct.sum(-1) / counts.clamp_min(1),
        "exact": correct.sum(-1) == counts,
    }


def train_segment(model: ReasoningModel, carry: Carry, batch: Batch, loss_kind: str = "stablemax"):
    """Run one supervised segment; returns (new carry, total loss, loss terms, per-row results).

    The loss is summed over rows (each row's output loss is a mean over its tokens); divide by the
    global batch size before backward, as the reference does.
    """
    halted = carry.halted
    data = {k: torch.where(halted.view((-1,) + (1,) * (v.ndim - 1)), batch[k], v) for k, v in carry.data.items()}
    target = None
    if model.core.uses_target:  # e.g. latent_diffusion: fresh rows start from a noised answer embedding
        with torch.no_grad():
            target = model.embed(data["labels"].clamp_min(0), data.get("puzzle_ids"))
    state = model.core.reset(carry.state, halted, target)
    steps = torch.where(halted, 0, carry.steps) + 1

    x = model.embed(data["inputs"], data.get("puzzle_ids"))
    state = model.segment(state, x)
    logits, halt_logits = model.heads(state)

    def next_halt_logits():
        with torch.no_grad():
            return model.halt_logits(model.segment(state, x))

    now_halted, targets = model.policy.halt(halt_logits, steps, next_halt_logits)

    labels = data["labels"].long()
    with torch.no_grad():
        results = per_row_results(logits, labels)
    per_token = token_cross_entropy(logits, labels, loss_kind)
    terms = {"lm": (per_token.sum(-1) / results["counts"].clamp_min(1)).sum()}
    terms.update(model.policy.loss(halt_logits, targets, results["exact"]))
    loss = sum(terms.values())

    results.update(steps=steps, halted=now_halted, **{k: v.detach() for k, v in halt_logits.items()})
    new_carry = Carry({k: v.detach() for k, v in state.items()}, steps, now_halted, data)
    return new_carry, loss, terms, results
