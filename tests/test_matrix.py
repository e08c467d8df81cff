"""Every core x every gradient estimator x every halting policy, from config alone, fits a fixed batch."""

import itertools

import pytest
import torch

from latentreason.config import load_config
from latentreason.inference import run_to_halt
from latentreason.model import build_model
from latentreason.optim.build import build_optimizer
from latentreason.train.deep_supervision import Carry, train_segment

CORES = {
    "hrm": ["core.H_layers=1", "core.L_layers=1"],
    "looped": ["core.L_layers=2", "core.L_cycles=2"],
    "trm": ["core.num_layers=1", "core.H_cycles=2", "core.L_cycles=2"],
    "trm_mlp": ["core=trm", "core.mixer=mlp", "core.num_layers=1", "core.H_cycles=2", "core.L_cycles=2"],
    "latent_diffusion": ["core.num_layers=1", "core.num_levels=3"],
}
ESTIMATORS = {"one_step": [], "tbptt": ["grad.k=2"], "full_bptt": ["grad=tbptt"]}
POLICIES = ["fixed", "q_act", "halt_only"]


def _config(core, estimator, policy):
    core_overrides = CORES[core]
    choice = [] if core_overrides and core_overrides[0].startswith("core=") else [f"core={core}"]
    grad = ESTIMATORS[estimator]
    grad_choice = (
        grad
        if grad and grad[0].startswith("grad=")
        else [f"grad={'tbptt' if estimator == 'tbptt' else 'one_step'}", *grad]
    )
    return load_config(
        [
            "recipe=hrm_sudoku",
            "preset=paper",
            *choice,
            *grad_choice,
            f"halt={policy}",
            "core.hidden_size=32",
            "core.num_heads=2",
            "core.mlp_multiple=16",
            *core_overrides,
            "halt.max_steps=3",
            "model.puzzle_emb_len=1",
        ]
    )


@pytest.mark.parametrize("core, estimator, policy", list(itertools.product(CORES, ESTIMATORS, POLICIES)))
def test_combination_fits_a_fixed_batch(core, estimator, policy):
    torch.manual_seed(0)
    model = build_model(_config(core, estimator, policy), vocab_size=6, seq_len=16, num_puzzle_ids=1)
    g = torch.Generator().manual_seed(1)
    inputs = torch.randint(1, 6, (8, 16), generator=g)
    # Each answer token is a fixed relabelling of its input token (a permutation of 1..5).
    batch = {"inputs": inputs, "labels": (inputs * 2) % 5 + 1, "puzzle_ids": torch.zeros(8, dtype=torch.long)}
    optimizer = build_optimizer("adamw", model.parameters(), lr=3e-3, weight_decay=0.0)
    carry = Carry.start(model, batch)
    losses = []
    for _ in range(80):
        carry, loss, terms, _ = train_segment(model, carry, batch)
        optimizer.zero_grad()
        (loss / 8).backward()
        optimizer.step()
        losses.append(terms["lm"].item() / 8)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first / 3, f"{core}/{estimator}/{policy}: lm loss {first:.3f} -> {last:.3f}"
    model.eval()
    logits, steps, _ = run_to_halt(model, batch["inputs"], batch["puzzle_ids"])
    assert logits.shape == (8, 16, 6) and int(steps.max()) <= 3
