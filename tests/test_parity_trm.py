"""Parity with TinyRecursiveModels' own code (../shared/reference/trm): TRM and its HRM variant.

TRM (models/recursive_reasoning/trm.py, `no_ACT_continue: True`) is our `trm` core with the
`tbptt` estimator at k = L_cycles + 1 and the `halt_only` policy; its `mlp_t` is `mixer: mlp`.
Run beside ours for several ACT steps of training (exploration on, same seeded draws) with the
reference's loss head: outputs, carry, halting, loss, every gradient and the puzzle-embedding
update agree to fp32 round-off (2e-5 absolute on values of order one, 1e-4 relative on gradients).

TRM's `puzzle_emb_len: 16` with `puzzle_emb_ndim: hidden_size` learns one position's worth of
values per puzzle and leaves the other positions zero: our `model.puzzle_emb_ndim`.

TRM's HRM variant (models/recursive_reasoning/hrm.py) is sapientinc's model plus an optional
`mlp_t` (which our `hrm` core does not offer): without it, it computes what sapientinc's does.
"""

from __future__ import annotations

import pytest
import torch
from reference_code import load
from test_parity_hrm import as_reference, batches, close, grads_close, reference_grads

from latentreason.cores.trm import TRM
from latentreason.errors import ConfigError
from latentreason.grad.tbptt import TBPTT
from latentreason.halt.halt_only import HaltOnly
from latentreason.model import PuzzleEmbedding, ReasoningModel
from latentreason.reference_import import convert_state_dict
from latentreason.train.deep_supervision import Carry, train_segment

BATCH, SEQ, VOCAB, IDS, HIDDEN, MAX_STEPS, PUZZLE_LEN = 6, 20, 11, 5, 64, 4, 2
CONFIG = dict(
    batch_size=BATCH,
    seq_len=SEQ,
    puzzle_emb_ndim=HIDDEN,
    puzzle_emb_len=PUZZLE_LEN,
    num_puzzle_identifiers=IDS,
    vocab_size=VOCAB,
    H_cycles=2,
    L_cycles=2,
    H_layers=0,
    L_layers=2,
    hidden_size=HIDDEN,
    expansion=4,
    num_heads=4,
    pos_encodings="rope",
    halt_max_steps=MAX_STEPS,
    halt_exploration_prob=0.5,
    forward_dtype="float32",
    no_ACT_continue=True,
)


def reference_modules():
    return load(
        "trm",
        "models.recursive_reasoning.trm",
        "models.recursive_reasoning.hrm",
        "models.losses",
        "models.sparse_embedding",
    )


def build_pair(**config):
    ref = reference_modules()
    cfg = {**CONFIG, **config}
    torch.manual_seed(0)
    reference = ref["models.recursive_reasoning.trm"].TinyRecursiveReasoningModel_ACTV1(cfg)
    with torch.no_grad():
        reference.inner.q_head.weight.normal_(0, 0.2)
        reference.inner.q_head.bias.normal_(0, 0.5)
        reference.inner.puzzle_emb.weights.normal_(0, 0.5)
    head = ref["models.losses"].ACTLossHead(reference, "stablemax_cross_entropy")
    mixer = "mlp" if cfg.get("mlp_t") else "attn"
    core = TRM(
        seq_len=PUZZLE_LEN + SEQ,
        hidden_size=HIDDEN,
        num_heads=4,
        expansion=4,
        num_layers=cfg["L_layers"],
        H_cycles=cfg["H_cycles"],
        L_cycles=cfg["L_cycles"],
        mixer=mixer,
        positions=cfg["pos_encodings"],
    )
    policy = HaltOnly(HIDDEN, max_steps=MAX_STEPS, exploration_prob=cfg["halt_exploration_prob"])
    ours = ReasoningModel(
        core, TBPTT(k=cfg["L_cycles"] + 1), policy, VOCAB, SEQ, IDS, PUZZLE_LEN, puzzle_emb_width=HIDDEN
    )
    weights, report = convert_state_dict(reference.state_dict(), ours)
    assert "q_halt row kept" in report
    # Pinned difference (docs/reference.md): TRM keeps a second Q output it never reads; our halt_only head has one.
    assert reference.inner.q_head.weight.shape[0] == 2 and ours.policy.head.weight.shape[0] == 1
    ours.load_state_dict(weights)
    return head, ours


@pytest.mark.parametrize("mlp_t", [False, True], ids=["attention", "mlp_t"])
def test_trm_train_steps_match_reference(mlp_t):
    ref = reference_modules()
    head, ours = build_pair(mlp_t=mlp_t, pos_encodings="none" if mlp_t else "rope")
    head.train(), ours.train()
    sparse = ref["models.sparse_embedding"].CastedSparseEmbeddingSignSGD_Distributed(
        head.model.puzzle_emb.buffers(), world_size=1, lr=0.01, weight_decay=0.1
    )
    data = batches(5, seed=4)
    ref_carry, our_carry = head.initial_carry(as_reference(data[0])), Carry.start(ours, data[0])
    halted_seen = set()
    for step, batch in enumerate(data):
        head.zero_grad(set_to_none=True), ours.zero_grad(set_to_none=True)
        head.model.puzzle_emb.local_weights.grad = None
        torch.manual_seed(200 + step)
        ref_carry, ref_loss, metrics, out, _ = head(
            return_keys=["logits", "q_halt_logits"], carry=ref_carry, batch=as_reference(batch)
        )
        torch.manual_seed(200 + step)
        our_carry, loss, terms, results = train_segment(ours, our_carry, batch)
        assert "target_q_continue" not in out and set(terms) == {"lm", "q_halt"}  # no continue value, no extra segment
        assert torch.equal(our_carry.halted, ref_carry.halted), f"step {step}: halting differs"
        assert torch.equal(our_carry.steps, ref_carry.steps)
        halted_seen.update(int(s) for s in our_carry.steps[our_carry.halted])
        close(our_carry.state["y"], ref_carry.inner_carry.z_H)  # TRM's z_H is the answer y
        close(our_carry.state["z"], ref_carry.inner_carry.z_L)  # and its z_L the latent z
        with torch.no_grad():
            logits, _ = ours.heads(our_carry.state)
        close(logits, out["logits"])
        close(results["q_halt"], out["q_halt_logits"])
        close(terms["q_halt"].detach(), 0.5 * metrics["q_halt_loss"])
        close(loss.detach(), ref_loss.detach())
        ref_loss.backward(), loss.backward()
        ref_grads, _ = convert_state_dict(reference_grads(head.model), ours)
        for name, p in ours.named_parameters():
            grads_close(p.grad, ref_grads[name], name)
        grads_close(ours.puzzle._pending[1].grad, head.model.puzzle_emb.local_weights.grad, "puzzle embedding rows")
        sparse.step()
        ours.puzzle.sign_sgd_step(lr=0.01, weight_decay=0.1)
        close(ours.puzzle.table, head.model.puzzle_emb.weights, atol=1e-6)
    assert len(halted_seen) >= 2, f"too few distinct halting steps to test ACT: {halted_seen}"


def test_trm_eval_matches_reference():
    head, ours = build_pair()
    head.eval(), ours.eval()
    batch = batches(1, seed=5)[0]
    ref_carry, our_carry = head.initial_carry(as_reference(batch)), Carry.start(ours, batch)
    with torch.no_grad():
        for _ in range(MAX_STEPS):
            ref_carry, _, _, out, _ = head(
                return_keys=["logits", "q_halt_logits"], carry=ref_carry, batch=as_reference(batch)
            )
            our_carry, _, _, results = train_segment(ours, our_carry, batch)
            assert torch.equal(our_carry.halted, ref_carry.halted)
            close(our_carry.state["y"], ref_carry.inner_carry.z_H)
            close(results["q_halt"], out["q_halt_logits"])


def test_trm_hrm_variant_is_sapientincs_model():
    """TRM's hrm.py without mlp_t, given sapientinc's weights, computes what sapientinc's model does."""
    from test_parity_hrm import CONFIG as HRM_CONFIG
    from test_parity_hrm import reference_modules as hrm_modules

    sapientinc = hrm_modules()["models.hrm.hrm_act_v1"].HierarchicalReasoningModel_ACTV1
    variant = reference_modules()["models.recursive_reasoning.hrm"].HierarchicalReasoningModel_ACTV1
    torch.manual_seed(0)
    a = sapientinc(HRM_CONFIG)
    b = variant(HRM_CONFIG)
    assert a.state_dict().keys() == b.state_dict().keys()
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    batch = as_reference(batches(1, seed=6)[0])
    carry_a, carry_b = a.initial_carry(batch), b.initial_carry(batch)
    with torch.no_grad():
        for _ in range(2):
            carry_a, out_a = a(carry=carry_a, batch=batch)
            carry_b, out_b = b(carry=carry_b, batch=batch)
    assert torch.equal(out_a["logits"], out_b["logits"]) and torch.equal(
        carry_a.inner_carry.z_L, carry_b.inner_carry.z_L
    )


def test_puzzle_embedding_narrower_than_its_positions():
    """model.puzzle_emb_ndim: only the first values are learned; the rest of the positions stay zero."""
    table = PuzzleEmbedding(3, 2, 4, width=4)
    table.table.normal_()
    table.train()
    rows = table(torch.tensor([0, 2]))
    assert rows.shape == (2, 2, 4) and torch.equal(rows[:, 1], torch.zeros(2, 4))
    assert torch.equal(rows[:, 0], table.table[[0, 2]])
    rows.sum().backward()
    before = table.table.clone()
    table.sign_sgd_step(lr=0.1, weight_decay=0.0)
    assert torch.allclose(table.table[[0, 2]], before[[0, 2]] - 0.1) and torch.equal(table.table[1], before[1])
    with pytest.raises(ConfigError, match="puzzle_emb_ndim"):
        PuzzleEmbedding(3, 2, 4, width=9)
