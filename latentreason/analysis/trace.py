"""Run segments by hand and record what happens in them: the raw material of every analysis figure.

`run_to_halt` (latentreason.inference) keeps only each row's final answer. The analysis needs more:
the prediction and halting logits after *every* segment, for more segments than the model was
trained with, and for a few examples the states themselves, segment by segment and update by
update inside a segment. A core is a schedule of updates (latentreason.cores.base), so one walk
serves every core: under `no_grad` a gradient estimator runs exactly this walk (it only decides
which updates carry gradient), which the tests check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from latentreason.cores.base import State, Update
from latentreason.model import ReasoningModel
from latentreason.train.deep_supervision import per_row_results
from latentreason.train.losses import IGNORE_LABEL


@dataclass
class SegmentTrace:
    """Per segment k = 1..K (first axis) and row (second axis), for one batch."""

    predictions: torch.Tensor  # (K, B, L) argmax tokens after each segment (int16)
    token_accuracy: torch.Tensor  # (K, B) share of labelled positions right
    exact: torch.Tensor  # (K, B) bool: every labelled position right
    logit_change: (
        torch.Tensor
    )  # (K, B) ||logits_k - logits_{k-1}|| / ||logits_k|| (segment 1: against zero logits, i.e. 1)
    labelled: torch.Tensor  # (B,) rows with at least one labelled position (the rows metrics count)
    halt_logits: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (K, B)
    readouts: torch.Tensor | None = None  # (K + 1, B, L, H) the heads' input before segment 1 and after each segment


# observe(segment, index in the schedule, update, state before, state after): sees every update
Observer = Callable[[int, int, Update, State, State], None]


def walk_segment(
    model: ReasoningModel, state: State, x: torch.Tensor, observe: Observer | None = None, segment: int = 1
) -> State:
    """One segment as the core's schedule of updates, in order, showing each update to `observe`."""
    core = model.core
    for index, update in enumerate(core.schedule()):
        new = core.apply(update, state, x)
        if observe is not None:
            observe(segment, index, update, state, new)
        state = new
    return state


@torch.no_grad()
def trace(
    model: ReasoningModel,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    puzzle_ids: torch.Tensor | None = None,
    segments: int | None = None,
    keep_readouts: bool = False,
    observe: Observer | None = None,
    seed: int = 0,
) -> SegmentTrace:
    """Run `segments` segments on every row (no halting) and record each one.

    `keep_readouts` keeps the heads' input after each segment (for latent trajectories; memory grows
    with rows x segments, so ask for it on a few rows); `observe` is shown every update of every
    segment with the state before and after it (for convergence inside a segment). `seed` fixes any
    randomness of the core's start (e.g. the noise a latent-diffusion core starts from).
    """
    segments = segments or model.policy.max_steps
    device = inputs.device
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        x = model.embed(inputs, puzzle_ids)
        state = model.initial_state(inputs.shape[0], device)
    labels = labels.to(device).long()
    predictions, accuracy, exact, change, halts, readouts = [], [], [], [], {}, []
    if keep_readouts:
        readouts.append(model.core.readout(state).float().cpu())
    previous = None
    for segment in range(1, segments + 1):
        state = walk_segment(model, state, x, observe, segment)
        logits, halt_logits = model.heads(state)
        logits = logits.float()
        predictions.append(logits.argmax(-1).to(torch.int16).cpu())  # token ids: int16 keeps K x rows x cells small
        r = per_row_results(logits, labels)
        acc, ex = r["token_accuracy"], r["exact"]
        accuracy.append(acc.cpu())
        exact.append(ex.cpu())
        norm = logits.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = logits if previous is None else logits - previous
        change.append((delta.flatten(1).norm(dim=1) / norm).cpu())
        previous = logits
        for k, v in halt_logits.items():
            halts.setdefault(k, []).append(v.float().cpu())
        if keep_readouts:
            readouts.append(model.core.readout(state).float().cpu())
    return SegmentTrace(
        predictions=torch.stack(predictions),
        token_accuracy=torch.stack(accuracy),
        exact=torch.stack(exact),
        logit_change=torch.stack(change),
        labelled=(labels != IGNORE_LABEL).any(-1).cpu(),
        halt_logits={k: torch.stack(v) for k, v in halts.items()},
        readouts=torch.stack(readouts) if keep_readouts else None,
    )


def concat(traces: list[SegmentTrace]) -> SegmentTrace:
    """The traces of consecutive batches as one (rows along the second axis); states are not kept."""
    first = traces[0]
    return SegmentTrace(
        predictions=torch.cat([t.predictions for t in traces], 1),
        token_accuracy=torch.cat([t.token_accuracy for t in traces], 1),
        exact=torch.cat([t.exact for t in traces], 1),
        logit_change=torch.cat([t.logit_change for t in traces], 1),
        labelled=torch.cat([t.labelled for t in traces]),
        halt_logits={k: torch.cat([t.halt_logits[k] for t in traces], 1) for k in first.halt_logits},
    )


def policy_halting_steps(model: ReasoningModel, halt_logits: dict[str, torch.Tensor], rows: int) -> torch.Tensor:
    """The segment at which the model's own halting policy (in eval mode) stops each row, from recorded logits.

    Replays `policy.halt` segment by segment as `run_to_halt` calls it, on the rows still running
    (a policy may keep per-row state, as PonderNet's cumulative rule does); rows that never halt
    stop at `max_steps`. Needs the logits of at least `max_steps` segments.
    """
    policy = model.policy
    max_steps = policy.max_steps
    steps = torch.full((rows,), max_steps, dtype=torch.int32)
    done = torch.zeros(rows, dtype=torch.bool)
    was_training = policy.training
    policy.eval()
    try:
        for step in range(1, max_steps):
            live = (~done).nonzero().squeeze(1)
            if not len(live):
                break
            logits = {k: v[step - 1][live] for k, v in halt_logits.items()}  # {} for a headless policy (fixed)
            halted, _ = policy.halt(logits, torch.full((len(live),), step, dtype=torch.int32), lambda: {})
            new = live[halted.cpu()]
            steps[new] = step
            done[new] = True
    finally:
        policy.train(was_training)
    return steps
