"""`ensemble`: several checkpoints of the same task, by vote or first to halt.

Members are the evaluated checkpoint and those of `ckpts`. `mode=vote`: every member answers (with
the `inner` strategy) and the answer most members give wins, ties to the most confident.
`mode=first_to_halt` (the "first to halt" TRM ensembles): every member runs with its halting head
deciding (stop when sigmoid(q_halt) > 0.5, at most max_steps), and each puzzle takes the answer of
the member that halted first, ties to the most confident. Each member runs its batch as one forward.
"""

from __future__ import annotations

import torch

from latentreason.errors import ConfigError
from latentreason.infer.base import (
    Candidates,
    InferenceStrategy,
    build_strategy,
    most_confident,
    needs_q_halt,
    q_halt_stop,
    run_model,
    valid_rows,
    vote,
)
from latentreason.registry import register

MODES = ("vote", "first_to_halt")


def _stack(candidates: list[Candidates]) -> Candidates:
    keys = set.intersection(*(set(c.halt_logits) for c in candidates))
    return Candidates(
        torch.stack([c.tokens for c in candidates]),
        torch.stack([c.confidence for c in candidates]),
        torch.stack([c.steps for c in candidates]),
        {k: torch.stack([c.halt_logits[k] for c in candidates]) for k in keys},
        any(c.checked for c in candidates),
    )


@register("infer", "ensemble")
class Ensemble(InferenceStrategy):
    """Several checkpoints (this one and infer.ckpts=[...]): majority vote or first to halt."""

    def __init__(
        self,
        ckpts: list | tuple = (),
        mode: str = "vote",
        check: bool = False,
        inner: dict | str = "single",
        trained=None,
    ):
        if mode not in MODES:
            raise ConfigError(f"infer.mode={mode!r} is not an ensemble mode; choose one of: {', '.join(MODES)}")
        if isinstance(ckpts, str):
            ckpts = [ckpts]
        self.paths, self.mode, self.check = list(ckpts or []), mode, check
        if (
            mode == "first_to_halt"
            and inner not in (None, "single")
            and not (isinstance(inner, dict) and inner.get("name") == "single")
        ):
            raise ConfigError(
                "infer.mode=first_to_halt runs every member with its halting head; it takes no inner strategy "
                "(drop infer.inner)"
            )
        self.inner = build_strategy(inner or "single", trained)
        self.members = []
        if self.paths:
            if trained is None:
                raise ConfigError(
                    "infer=ensemble with infer.ckpts needs the evaluated checkpoint (use it through "
                    "`latentreason eval`/`solve` or evaluate())"
                )
            self.members = [self._load(path, trained) for path in self.paths]

    @staticmethod
    def _load(path, trained):
        from latentreason.inference import load_checkpoint

        member = load_checkpoint(path, device=str(trained.device))
        ours, theirs = trained.task, member.task
        if type(ours) is not type(theirs) or (ours.seq_len, ours.vocab_size) != (theirs.seq_len, theirs.vocab_size):
            raise ConfigError(
                f"infer.ckpts: {path} was trained on {theirs.describe()}, the evaluated checkpoint on "
                f"{ours.describe()}; "
                "an ensemble's members must share the task's tokens"
            )
        return member

    def prepare(self, trained, split) -> None:
        self.inner.prepare(trained, split)
        for member in self.members:
            member.use_puzzle_names(split)
        if self.mode == "first_to_halt":
            for member in (trained, *self.members):
                needs_q_halt(member.model, "infer.mode=first_to_halt")

    def run(self, model, task, inputs, puzzle_ids, compute) -> Candidates:
        models = [model, *(member.model for member in self.members)]
        if self.mode == "first_to_halt":
            every = _stack([run_model(m, inputs, puzzle_ids, compute, stop=q_halt_stop) for m in models])
            valid = valid_rows(task, inputs, every.tokens) if self.check else None
            # the fewest segments first; among those, the most confident (confidence < 1 < one segment)
            score = every.confidence.float() - every.steps.float()
            if valid is not None:
                score = torch.where(valid | ~valid.any(0, keepdim=True), score, torch.full_like(score, -1e9))
            index = score.argmax(0)
        else:
            every = _stack([self.inner.run(m, task, inputs, puzzle_ids, compute) for m in models])
            valid = valid_rows(task, inputs, every.tokens) if self.check else None
            index = (
                vote(every.tokens, every.confidence, valid)
                if len(models) > 1
                else most_confident(every.confidence, valid)
            )
        chosen = every.choose(index)
        chosen.checked = self.check or every.checked
        return chosen
