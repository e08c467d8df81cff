"""Parity with sapientinc/HRM's own code (../shared/reference/hrm): its weights in our model compute what it computes.

The reference model (models/hrm/hrm_act_v1.py) and its loss head (models/losses.py, stablemax)
run beside ours at one small configuration, its weights converted by latentreason.reference_import.
Compared after each of several ACT steps of deep supervision, in training mode (exploration on,
both sides drawing from the same seeded generator) and in eval mode: logits, Q-halt and Q-continue
logits, the bootstrapped Q target, the carry, the halting decisions and step counts, the loss and
its terms, the accuracy metrics, the gradient of every parameter, and the SignSGD update of the
puzzle-embedding table (models/sparse_embedding.py).

Tolerances (fp32 on CPU): values of order one (normalised states, logits, losses) agree to 2e-5
absolute; gradients to 1e-4 relative to each tensor's largest entry. Both sides use the same
kernels (SDPA, the same matmuls), so the observed differences are at round-off (about 1e-6).
"""

from __future__ import annotations

import torch
from reference_code import load

from latentreason.cores.hrm import HRM
from latentreason.grad.one_step import OneStep
from latentreason.halt.q_act import QACT
from latentreason.inference import run_to_halt
from latentreason.model import ReasoningModel
from latentreason.reference_import import convert_state_dict
from latentreason.train.deep_supervision import Carry, train_segment

ATOL = 2e-5
GRAD_RTOL = 1e-4
BATCH, SEQ, VOCAB, IDS, HIDDEN, MAX_STEPS = 6, 20, 11, 5, 64, 4
CONFIG = dict(
    batch_size=BATCH,
    seq_len=SEQ,
    puzzle_emb_ndim=HIDDEN,
    num_puzzle_identifiers=IDS,
    vocab_size=VOCAB,
    H_cycles=2,
    L_cycles=2,
    H_layers=2,
    L_layers=2,
    hidden_size=HIDDEN,
    expansion=4,
    num_heads=4,
    pos_encodings="rope",
    halt_max_steps=MAX_STEPS,
    halt_exploration_prob=0.5,
    forward_dtype="float32",
)


def reference_modules():
    return load("hrm", "models.hrm.hrm_act_v1", "models.losses", "models.sparse_embedding")


def build_pair(**config):
    """The reference ACT model in its loss head, and ours holding its weights (converted)."""
    ref = reference_modules()
    cfg = {**CONFIG, **config}
    torch.manual_seed(0)
    reference = ref["models.hrm.hrm_act_v1"].HierarchicalReasoningModel_ACTV1(cfg)
    with torch.no_grad():  # the zero Q head and zero puzzle table of a fresh model would hide mistakes
        reference.inner.q_head.weight.normal_(0, 0.2)
        reference.inner.q_head.bias.normal_(0, 0.5)
        if cfg["puzzle_emb_ndim"]:
            reference.inner.puzzle_emb.weights.normal_(0, 0.5)
    head = ref["models.losses"].ACTLossHead(reference, "stablemax_cross_entropy")
    puzzle_len = -(cfg["puzzle_emb_ndim"] // -cfg["hidden_size"])
    core = HRM(
        seq_len=puzzle_len + cfg["seq_len"],
        hidden_size=cfg["hidden_size"],
        num_heads=cfg["num_heads"],
        expansion=cfg["expansion"],
        H_layers=cfg["H_layers"],
        L_layers=cfg["L_layers"],
        H_cycles=cfg["H_cycles"],
        L_cycles=cfg["L_cycles"],
        positions=cfg["pos_encodings"],
    )
    policy = QACT(cfg["hidden_size"], max_steps=cfg["halt_max_steps"], exploration_prob=cfg["halt_exploration_prob"])
    ours = ReasoningModel(
        core, OneStep(), policy, cfg["vocab_size"], cfg["seq_len"], cfg["num_puzzle_identifiers"], puzzle_len
    )
    weights, _ = convert_state_dict(reference.state_dict(), ours)
    ours.load_state_dict(weights)
    return head, ours


def batches(steps: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        labels = torch.randint(1, VOCAB, (BATCH, SEQ), generator=g)
        labels[torch.rand(BATCH, SEQ, generator=g) < 0.2] = -100  # some unlabelled positions
        labels[0] = -100  # a row with no label at all
        out.append(
            {
                "inputs": torch.randint(0, VOCAB, (BATCH, SEQ), generator=g),
                "labels": labels,
                "puzzle_ids": torch.randint(0, IDS, (BATCH,), generator=g),
            }
        )
    return out


def as_reference(batch):
    return {"inputs": batch["inputs"], "labels": batch["labels"], "puzzle_identifiers": batch["puzzle_ids"]}


def close(a, b, atol=ATOL):
    torch.testing.assert_close(a.float(), b.float(), atol=atol, rtol=0)


def grads_close(ours: torch.Tensor, ref: torch.Tensor, name: str):
    scale = ref.abs().max().clamp_min(1e-12)
    err = (ours - ref).abs().max() / scale
    assert err < GRAD_RTOL, f"gradient of {name}: relative error {err:.2e}"


def reference_grads(reference) -> dict:
    """The reference's gradients keyed by its state-dict names (zeros where a tensor has none)."""
    grads = {name: (p.grad if p.grad is not None else torch.zeros_like(p)) for name, p in reference.named_parameters()}
    return {k: grads.get(k, v) for k, v in reference.state_dict().items()}


def test_train_steps_match_reference():
    """Several ACT steps of training: outputs, carry, halting, loss terms, metrics, every gradient, SignSGD."""
    ref = reference_modules()
    head, ours = build_pair()
    head.train(), ours.train()
    sparse = ref["models.sparse_embedding"].CastedSparseEmbeddingSignSGD_Distributed(
        head.model.puzzle_emb.buffers(), world_size=1, lr=0.01, weight_decay=0.1
    )
    data = batches(6)
    ref_carry, our_carry = head.initial_carry(as_reference(data[0])), Carry.start(ours, data[0])
    halted_seen = set()
    for step, batch in enumerate(data):
        head.zero_grad(set_to_none=True), ours.zero_grad(set_to_none=True)
        head.model.puzzle_emb.local_weights.grad = None
        torch.manual_seed(100 + step)  # the exploration draws: same generator state on both sides
        ref_carry, ref_loss, metrics, out, _ = head(
            return_keys=["logits", "q_halt_logits", "q_continue_logits", "target_q_continue"],
            carry=ref_carry,
            batch=as_reference(batch),
        )
        torch.manual_seed(100 + step)
        our_carry, loss, terms, results = train_segment(ours, our_carry, batch)
        # Same halting decisions and step counts; same examples in the carry.
        assert torch.equal(our_carry.halted, ref_carry.halted), f"step {step}: halting differs"
        assert torch.equal(our_carry.steps, ref_carry.steps)
        assert torch.equal(our_carry.data["labels"], ref_carry.current_data["labels"])
        halted_seen.update(int(s) for s in our_carry.steps[our_carry.halted])
        # Carry and outputs.
        close(our_carry.state["z_H"], ref_carry.inner_carry.z_H)
        close(our_carry.state["z_L"], ref_carry.inner_carry.z_L)
        with torch.no_grad():
            logits, _ = ours.heads(our_carry.state)
        close(logits, out["logits"])
        close(results["q_halt"], out["q_halt_logits"])
        close(results["q_continue"], out["q_continue_logits"])
        # The loss: lm + 0.5 (q_halt + q_continue), term by term.
        close(terms["lm"].detach(), metrics["lm_loss"])
        close(terms["q_halt"].detach(), 0.5 * metrics["q_halt_loss"])
        close(terms["q_continue"].detach(), 0.5 * metrics["q_continue_loss"])
        close(loss.detach(), ref_loss.detach())
        # Metrics over the rows that halted (the reference's sums).
        rows = our_carry.halted & (results["counts"] > 0)
        assert int(rows.sum()) == int(metrics["count"])
        close((results["token_accuracy"] * rows).sum(), metrics["accuracy"])
        assert int((results["exact"] & rows).sum()) == int(metrics["exact_accuracy"])
        assert int((results["steps"] * rows).sum()) == int(metrics["steps"])
        # Gradients of every parameter (mapped by the converter itself), and of the puzzle rows.
        ref_loss.backward(), loss.backward()
        ref_grads, _ = convert_state_dict(reference_grads(head.model), ours)
        for name, p in ours.named_parameters():
            grads_close(p.grad, ref_grads[name], name)
        grads_close(ours.puzzle._pending[1].grad, head.model.puzzle_emb.local_weights.grad, "puzzle embedding rows")
        sparse.step()
        ours.puzzle.sign_sgd_step(lr=0.01, weight_decay=0.1)
        close(ours.puzzle.table, head.model.puzzle_emb.weights, atol=1e-6)
    assert len(halted_seen) >= 2, f"too few distinct halting steps to test ACT: {halted_seen}"


def test_eval_steps_match_reference():
    """Eval mode: every row runs halt_max_steps segments; same outputs at each step and at the end."""
    head, ours = build_pair()
    head.eval(), ours.eval()
    batch = batches(1, seed=7)[0]
    ref_carry, our_carry = head.initial_carry(as_reference(batch)), Carry.start(ours, batch)
    with torch.no_grad():
        for step in range(MAX_STEPS):
            ref_carry, _, metrics, out, all_halted = head(
                return_keys=["logits", "q_halt_logits", "q_continue_logits"], carry=ref_carry, batch=as_reference(batch)
            )
            our_carry, _, terms, results = train_segment(ours, our_carry, batch)
            assert "target_q_continue" not in out and "q_continue" not in terms  # no bootstrapping in eval
            assert torch.equal(our_carry.halted, ref_carry.halted) and bool(all_halted) == (step == MAX_STEPS - 1)
            close(our_carry.state["z_H"], ref_carry.inner_carry.z_H)
            close(our_carry.state["z_L"], ref_carry.inner_carry.z_L)
            close(results["q_halt"], out["q_halt_logits"])
            close(results["q_continue"], out["q_continue_logits"])
        # The inference path (`eval`, `solve`) gives the reference's final outputs.
        logits, steps, halt = run_to_halt(ours, batch["inputs"], batch["puzzle_ids"])
    close(logits, out["logits"])
    close(halt["q_halt"], out["q_halt_logits"])
    assert torch.equal(steps, torch.full_like(steps, MAX_STEPS))
    assert torch.equal(logits.argmax(-1), out["logits"].argmax(-1))


def test_learned_positions_and_one_layer_match_reference():
    """pos_encodings=learned, 1+1 layers, no puzzle table: the other branches of the embedding."""
    head, ours = build_pair(pos_encodings="learned", H_layers=1, L_layers=1, puzzle_emb_ndim=0, H_cycles=1, L_cycles=3)
    head.eval(), ours.eval()
    batch = batches(1, seed=3)[0]
    ref_carry = head.initial_carry(as_reference(batch))
    with torch.no_grad():
        for _ in range(2):
            ref_carry, _, _, out, _ = head(
                return_keys=["logits", "q_halt_logits"], carry=ref_carry, batch=as_reference(batch)
            )
        state = ours.initial_state(BATCH, "cpu")
        x = ours.embed(batch["inputs"], batch["puzzle_ids"])
        for _ in range(2):
            state = ours.segment(state, x)
        logits, halt = ours.heads(state)
    close(logits, out["logits"])
    close(halt["q_halt"], out["q_halt_logits"])
