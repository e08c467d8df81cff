"""The looped (L-only) and TRM cores and the truncated-BPTT estimator, against hand-written references."""

import pytest
import torch
import torch.nn.functional as F

from latentreason.config import load_config
from latentreason.cores.blocks import TokenMLPBlock
from latentreason.grad.one_step import OneStep
from latentreason.grad.tbptt import TBPTT
from latentreason.model import build_model

BASE = ["recipe=hrm_sudoku", "preset=paper", "halt.max_steps=4", "trainer.global_batch_size=8"]
SMALL = ["core.hidden_size=32", "core.num_heads=2", "core.mlp_multiple=16"]


def small_model(core: str, *overrides: str, seed: int = 0):
    torch.manual_seed(seed)
    layers = {"hrm": ["core.H_layers=1", "core.L_layers=1"], "looped": ["core.L_layers=2"], "trm": []}[core]
    return build_model(load_config([*BASE, f"core={core}", *SMALL, *layers, *overrides]), 11, 81, 1)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in model.named_parameters()}


def _setup(model, seed=1):
    """Embedded inputs, a non-trivial start state (as in a later segment) and a loss on the readout."""
    torch.manual_seed(seed)
    inputs = torch.randint(1, 11, (3, 81))
    target = torch.randint(0, 11, (3, 81))
    start = {k: v + 0.1 * torch.randn_like(v) for k, v in model.initial_state(3, "cpu").items()}

    def loss_of(hidden):
        return F.cross_entropy(model.lm_head(hidden[:, model.puzzle_emb_len :]).flatten(0, 1), target.flatten())

    return inputs, start, loss_of


def _assert_same_grads(ours, ref):
    for name in ref:
        assert torch.allclose(ours[name], ref[name], atol=1e-6, rtol=1e-5), name


# --- building from the cards ---------------------------------------------------------------------


def test_cards_build_with_the_specified_schedules():
    trm = small_model("trm")
    assert "".join(u.name for u in trm.core.schedule()) == "zzzzzzy" * 3
    assert all(u.writes == u.name for u in trm.core.schedule())
    assert len(trm.core.net.blocks) == 2 and trm.core.rotary is not None
    state = trm.initial_state(2, "cpu")
    assert set(state) == {"y", "z"} and state["y"].shape == (2, 82, 32)
    assert torch.equal(state["y"][0, 0], state["y"][1, 7]) and not torch.equal(state["y"][0, 0], state["z"][0, 0])
    assert trm.core.readout(state) is state["y"]

    trm = small_model("trm", "core.H_cycles=2", "core.L_cycles=4", "core.mixer=mlp")
    assert "".join(u.name for u in trm.core.schedule()) == "zzzzy" * 2
    assert trm.core.rotary is None and trm.core.positions == "none" and trm.positions is None
    assert trm.core.net.blocks[0].token_mlp.gate_up.weight.shape == (2 * 224, 82)  # width of 82 positions

    looped = small_model("looped")
    assert [(u.name, u.writes) for u in looped.core.schedule()] == [("L", "z")]
    looped = small_model("looped", "core.L_cycles=3")
    assert "".join(u.name for u in looped.core.schedule()) == "LLL"
    assert set(looped.initial_state(2, "cpu")) == {"z"} and len(looped.core.L.blocks) == 2

    tbptt = build_model(load_config([*BASE, "core=trm", *SMALL, "grad=tbptt", "grad.k=7"]), 11, 81, 1).estimator
    assert isinstance(tbptt, TBPTT) and tbptt.k == 7
    assert build_model(load_config([*BASE, "core=trm", *SMALL, "grad=tbptt"]), 11, 81, 1).estimator.k is None


def test_tbptt_graded_indices_and_validation():
    schedule = small_model("trm", "core.H_cycles=2", "core.L_cycles=3").core.schedule()
    assert TBPTT(3).graded(schedule) == {5, 6, 7}
    assert TBPTT().graded(schedule) == set(range(8)) == TBPTT(100).graded(schedule)
    assert OneStep().graded(schedule) == {6, 7}
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            TBPTT(bad)


# --- parameter counts, by hand from the layer shapes ---------------------------------------------


def _attention_block(h, w):  # fused QKV, output projection, SwiGLU (gate+up fused, down); no biases
    return 3 * h * h + h * h + h * 2 * w + w * h


def _token_mlp_block(h, w, n, wn):  # SwiGLU across n positions (inner width wn), then the channel SwiGLU
    return n * 2 * wn + wn * n + h * 2 * w + w * h


def test_parameter_counts_match_the_layer_shapes():
    h, vocab = 512, 11
    w = 1536  # round(4 * 512 * 2/3) = 1365, rounded up to a multiple of 256
    heads = vocab * h + h * vocab + (2 * h + 2)  # token embedding, lm_head, Q-ACT head (weight + bias)

    trm_attn = build_model(load_config([*BASE, "core=trm", "model.puzzle_emb_len=16"]), vocab, 81, 1)
    assert n_params(trm_attn) == heads + 2 * _attention_block(h, w) == 6_828_034

    trm_mlp = build_model(load_config([*BASE, "core=trm", "core.mixer=mlp", "model.puzzle_emb_len=16"]), vocab, 81, 1)
    n, wn = 81 + 16, 512  # round(4 * 97 * 2/3) = 259, rounded up to 512
    assert n_params(trm_mlp) == heads + 2 * _token_mlp_block(h, w, n, wn) == 5_028_866

    looped = build_model(load_config([*BASE, "core=looped"]), vocab, 81, 1)  # puzzle_emb_len 1 (a buffer)
    assert n_params(looped) == heads + 8 * _attention_block(h, w) == 27_275_266  # = HRM's 4 + 4 layers


# --- forward passes against hand-written loops ---------------------------------------------------


def _reference_token_mlp_block(block: TokenMLPBlock, x):
    """TRM's mlp_t block by hand: SwiGLU over positions, residual + RMSNorm while transposed (over positions)."""
    t = x.transpose(1, 2)
    gate, up = (t @ block.token_mlp.gate_up.weight.T).chunk(2, dim=-1)
    t = t + (F.silu(gate) * up) @ block.token_mlp.down.weight.T
    x = (t / torch.sqrt(t.pow(2).mean(-1, keepdim=True) + 1e-5)).transpose(1, 2)
    gate, up = (x @ block.mlp.gate_up.weight.T).chunk(2, dim=-1)
    x = x + (F.silu(gate) * up) @ block.mlp.down.weight.T
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)


def test_token_mlp_block_matches_hand_written_reference():
    torch.manual_seed(0)
    block = TokenMLPBlock(hidden_size=16, seq_len=7, expansion=4.0, mlp_multiple=8)
    x = torch.randn(2, 7, 16)
    assert torch.allclose(block(x, None), _reference_token_mlp_block(block, x), atol=1e-5)
    assert block.token_mlp.gate_up.weight.shape == (2 * 24, 7)  # round(4 * 7 * 2/3) = 19 -> 24


@pytest.mark.parametrize("mixer", ["attn", "mlp"])
def test_trm_segment_matches_hand_written_loop(mixer):
    model = small_model("trm", "core.H_cycles=2", "core.L_cycles=3", f"core.mixer={mixer}")
    model.eval()
    inputs, start, _ = _setup(model)
    core = model.core
    with torch.no_grad():
        x = model.embed(inputs)
        ours = model.segment(start, x)
        y, z = start["y"], start["z"]
        for _ in range(2):  # H_cycles recursions
            for _ in range(3):  # L_cycles latent updates, with the input
                z = core.net(z, y + x, core.rotary)
            y = core.net(y, z, core.rotary)  # the answer update sees no input
    assert torch.allclose(ours["y"], y, atol=1e-6) and torch.allclose(ours["z"], z, atol=1e-6)
    assert torch.equal(core.readout(ours), ours["y"])


def test_looped_segment_matches_hand_written_loop():
    model = small_model("looped", "core.L_cycles=3")
    inputs, start, _ = _setup(model)
    with torch.no_grad():
        x = model.embed(inputs)
        z = start["z"]
        for _ in range(3):
            z = model.core.L(z, x, model.core.rotary)
        assert torch.allclose(model.segment(start, x)["z"], z, atol=1e-6)


# --- gradient estimators against hand-unrolled references -----------------------------------------


@pytest.mark.parametrize("core", ["hrm", "trm", "looped"])
def test_full_tbptt_equals_plain_autograd(core):
    model = small_model(core, *(["core.L_cycles=3"] if core == "looped" else ["core.H_cycles=2", "core.L_cycles=3"]))
    model.estimator = TBPTT(k=None)
    inputs, start, loss_of = _setup(model)
    ours = model.segment(start, model.embed(inputs))
    grads_ours = _grads(model, loss_of(model.core.readout(ours)))
    grads_ref = _grads(model, loss_of(_fully_graded(core, model.core, start, model.embed(inputs))))
    _assert_same_grads(grads_ours, grads_ref)
    assert all(g.abs().sum() > 0 for n, g in grads_ours.items() if not n.startswith("policy")), (
        "every weight is trained"
    )


def _fully_graded(name, core, start, x):
    """The segment written out by hand, every update carrying gradient: the readout it ends with."""
    if name == "hrm":  # H_cycles 2, L_cycles 3
        z_H, z_L = start["z_H"], start["z_L"]
        for _ in range(2):
            for _ in range(3):
                z_L = core.L(z_L, z_H + x, core.rotary)
            z_H = core.H(z_H, z_L, core.rotary)
        return z_H
    if name == "trm":
        return _trm_graded_from(core, start["y"], start["z"], x, first_graded=0)
    z = start["z"]  # looped, L_cycles 3
    for _ in range(3):
        z = core.L(z, x, core.rotary)
    return z


def _hrm_last3(core, z_H, z_L, x):
    """HRM with H_cycles 2, L_cycles 3 (L L L H L L L H), gradient through the last 3 updates only."""
    L = lambda z_L, z_H: core.L(z_L, z_H + x, core.rotary)  # noqa: E731
    H = lambda z_H, z_L: core.H(z_H, z_L, core.rotary)  # noqa: E731
    with torch.no_grad():
        z_L = L(L(L(z_L, z_H), z_H), z_H)
        z_H = H(z_H, z_L)
        z_L = L(z_L, z_H)
    z_L = L(L(z_L, z_H), z_H)
    return H(z_H, z_L)


def _trm_graded_from(core, y, z, x, first_graded):
    """TRM with H_cycles 2, L_cycles 3 (z z z y z z z y), written out; updates from `first_graded` on carry grad."""
    steps = [
        lambda y, z: (y, core.net(z, y + x, core.rotary)),
        lambda y, z: (y, core.net(z, y + x, core.rotary)),
        lambda y, z: (y, core.net(z, y + x, core.rotary)),
        lambda y, z: (core.net(y, z, core.rotary), z),
    ] * 2
    with torch.no_grad():
        for step in steps[:first_graded]:
            y, z = step(y, z)
    for step in steps[first_graded:]:
        y, z = step(y, z)
    return y


def _trm_reference_rule(core, y, z, x):
    """TinyRecursiveModels' own loop: H_cycles - 1 recursions without grad, then one recursion with grad."""
    with torch.no_grad():
        for _ in range(core.H_cycles - 1):
            for _ in range(core.L_cycles):
                z = core.net(z, y + x, core.rotary)
            y = core.net(y, z, core.rotary)
    for _ in range(core.L_cycles):
        z = core.net(z, y + x, core.rotary)
    return core.net(y, z, core.rotary)


def _compare(model, estimator, reference):
    model.estimator = estimator
    inputs, start, loss_of = _setup(model)
    ours = model.segment(start, model.embed(inputs))
    grads_ours = _grads(model, loss_of(model.core.readout(ours)))
    ref = reference(model, start, model.embed(inputs))
    grads_ref = _grads(model, loss_of(ref))
    assert torch.allclose(model.core.readout(ours), ref, atol=1e-6)
    _assert_same_grads(grads_ours, grads_ref)
    return grads_ours


def test_tbptt_3_matches_hand_unrolled_hrm():
    model = small_model("hrm", "core.H_cycles=2", "core.L_cycles=3")
    grads = _compare(model, TBPTT(3), lambda m, s, x: _hrm_last3(m.core, s["z_H"], s["z_L"], x))
    # The test can tell k=3 from full BPTT.
    inputs, start, loss_of = _setup(model)
    model.estimator = TBPTT(None)
    full = _grads(model, loss_of(model.segment(start, model.embed(inputs))["z_H"]))
    name = "core.L.blocks.0.attn.qkv.weight"
    assert not torch.allclose(full[name], grads[name], atol=1e-6)


@pytest.mark.parametrize("mixer", ["attn", "mlp"])
def test_tbptt_3_matches_hand_unrolled_trm(mixer):
    model = small_model("trm", "core.H_cycles=2", "core.L_cycles=3", f"core.mixer={mixer}")
    _compare(model, TBPTT(3), lambda m, s, x: _trm_graded_from(m.core, s["y"], s["z"], x, first_graded=5))


def test_tbptt_last_recursion_is_trms_own_gradient_rule():
    model = small_model("trm", "core.H_cycles=2", "core.L_cycles=3")
    _compare(model, TBPTT(model.core.L_cycles + 1), lambda m, s, x: _trm_reference_rule(m.core, s["y"], s["z"], x))


def test_one_step_on_trm_grads_the_last_z_and_y_updates():
    model = small_model("trm", "core.H_cycles=2", "core.L_cycles=3")
    _compare(model, OneStep(), lambda m, s, x: _trm_graded_from(m.core, s["y"], s["z"], x, first_graded=6))


# --- memory kept for backward ---------------------------------------------------------------------


def _saved_activation_bytes(model, estimator) -> int:
    """Bytes of distinct tensors autograd saves for backward in one segment (parameters excluded)."""
    model.estimator = estimator
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = max(saved.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    inputs, start, loss_of = _setup(model)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        state = model.segment(start, model.embed(inputs))
        loss = loss_of(model.core.readout(state))
    loss.backward()
    return sum(saved.values())


def test_memory_is_constant_under_one_step_and_linear_under_full_bptt():
    one_step, full = {}, {}
    for cycles in (2, 4, 8, 16):
        model = small_model("hrm", f"core.H_cycles={cycles}", "core.L_cycles=2")
        one_step[cycles] = _saved_activation_bytes(model, OneStep())
        full[cycles] = _saved_activation_bytes(model, TBPTT(None))
    assert max(one_step.values()) <= 1.05 * min(one_step.values()), one_step
    assert full[16] / full[2] > 5, full
    assert full[2] < full[4] < full[8] < full[16]
