"""`latentreason bench`: the FLOP count it reports, checked against a hand formula for a tiny HRM."""

from __future__ import annotations

import pytest
import torch

from latentreason.bench import count_flops
from latentreason.model import build_model
from latentreason.train.deep_supervision import Carry, train_segment

B, SEQ, PUZZLE, VOCAB = 4, 16, 1, 11
HIDDEN, HEADS, WIDTH = 16, 2, 48  # swiglu_width(16, 4, multiple=16) = 48
H_CYCLES, L_CYCLES = 2, 3


def tiny_hrm(max_steps: int):
    config = {
        "core": {
            "name": "hrm",
            "hidden_size": HIDDEN,
            "num_heads": HEADS,
            "expansion": 4.0,
            "mlp_multiple": 16,
            "H_layers": 1,
            "L_layers": 2,
            "H_cycles": H_CYCLES,
            "L_cycles": L_CYCLES,
        },
        "grad": {"name": "one_step"},
        "halt": {"name": "q_act", "max_steps": max_steps},
        "model": {"puzzle_emb_len": PUZZLE},
    }
    return build_model(config, vocab_size=VOCAB, seq_len=SEQ)


def block_forward_flops(rows: int, length: int) -> int:
    """One post-norm block: fused QKV, attention (QK^T and AV), output projection, SwiGLU (gate+up, down)."""
    tokens = rows * length
    linear = 2 * tokens * (HIDDEN * 3 * HIDDEN + HIDDEN * HIDDEN + HIDDEN * 2 * WIDTH + WIDTH * HIDDEN)
    return linear + attention_forward_flops(rows, length)


def attention_forward_flops(rows: int, length: int) -> int:
    return 2 * (2 * rows * length * length * HIDDEN)  # QK^T and AV over all heads


def hand_formula(bootstrap: bool) -> int:
    length = SEQ + PUZZLE
    block = block_forward_flops(B, length)
    L_layers, H_layers = 2, 1
    segment = H_CYCLES * (L_CYCLES * L_layers + H_layers) * block  # every update runs forward
    lm_head = 2 * B * SEQ * HIDDEN * VOCAB  # on the sequence positions only
    q_head = 2 * B * HIDDEN * 2  # on position 0
    # One-step gradient: the last L update and the last H update. Backward computes the gradient of the
    # input and of the weight of every product (2x); torch counts attention's backward as 5 products
    # against 2 forward (it recomputes QK^T), so 2.5x.
    graded_linear = (L_layers + H_layers) * (block - attention_forward_flops(B, length))
    graded_attention = (L_layers + H_layers) * attention_forward_flops(B, length)
    backward = 2 * (graded_linear + lm_head + q_head) + 5 * graded_attention // 2
    total = segment + lm_head + q_head + backward
    if bootstrap:  # Q-ACT's target: one more no-grad segment and its halting head (no output logits needed)
        total += segment + q_head
    return total


@pytest.mark.parametrize("max_steps, bootstrap", [(4, True), (1, False)])
def test_flops_of_one_training_step_match_the_hand_formula(max_steps, bootstrap):
    torch.manual_seed(0)
    model = tiny_hrm(max_steps)
    batch = {
        "inputs": torch.randint(1, VOCAB, (B, SEQ)),
        "labels": torch.randint(1, VOCAB, (B, SEQ)),
        "puzzle_ids": torch.zeros(B, dtype=torch.long),
    }
    carry = Carry.start(model, batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        _, loss, _, _ = train_segment(model, carry, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    assert count_flops(step) == hand_formula(bootstrap)


def test_attention_flops_are_counted_on_cpu():
    """torch's counter knows only the GPU attention kernels; bench registers the CPU one with the same formula."""
    q = torch.randn(2, 4, 10, 8, requires_grad=True)
    flops = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward())
    forward = 2 * (2 * 2 * 4 * 10 * 10 * 8)
    assert flops == forward + 5 * forward // 2  # torch's backward formula: 5 products (QK^T recomputed)


def load_benchmark(name: str):
    """A script of benchmarks/ as a module (the folder is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_cores_reruns_one_row_and_keeps_the_others():
    """`compare_cores.py --recipes X` replaces X's row of the existing table and keeps every other row in place."""
    compare = load_benchmark("compare_cores")

    def row(recipe, steps):
        return {c: (recipe if c == "recipe" else steps if c == "steps" else "x") for c in compare.COLUMNS}

    def line(r):
        return "| " + " | ".join(r[c] for c in compare.COLUMNS) + " |"

    header = "| " + " | ".join(compare.COLUMNS) + " |"
    page = "\n".join(
        ["# title", "", header, "|" + "---|" * len(compare.COLUMNS), line(row("a", "1")), line(row("b", "2"))]
    )
    merged = compare.merged_rows(page, [row("b", "9"), row("c", "3")])
    assert [(r["recipe"], r["steps"]) for r in merged] == [("a", "1"), ("b", "9"), ("c", "3")]


def test_cpu_profile_groups_the_step_time_and_flops():
    """benchmarks/cpu_profile.py finds the matmul and attention events and splits the step's FLOPs among them."""
    from latentreason.bench import step_flops
    from latentreason.config import load_config
    from latentreason.tasks.base import build_task

    cpu_profile = load_benchmark("cpu_profile")

    config = load_config(
        ["recipe=lonly_sudoku", "preset=cpu", "trainer.compile=false", "core.hidden_size=32", "core.num_heads=2"]
        + ["task.train_puzzles=20", "task.augmentations=1", "task.test_puzzles=4", "trainer.global_batch_size=8"]
    )
    seconds, flops, total = cpu_profile.measure(config, steps=2)
    assert seconds["matrix products"] > 0 and seconds["attention"] > 0
    assert seconds["fused elementwise"] == 0  # eager: no compiled graphs
    assert sum(seconds.values()) < total
    assert flops["attention"] > 0 and flops["matrix products"] > flops["attention"] and flops["the rest"] == 0
    task = build_task(config)
    assert sum(flops.values()) == step_flops(config, task.splits(), task, None, torch.device("cpu"))
