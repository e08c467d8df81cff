import math

import torch
import torch.nn.functional as F

from conftest import tiny_config, tiny_model
from latentreason.config import load_config
from latentreason.cores.blocks import Block, Rotary, swiglu_width
from latentreason.model import build_model


def test_paper_model_has_the_reference_parameter_count():
    config = load_config(["recipe=hrm_sudoku", "preset=paper"])
    model = build_model(config, vocab_size=11, seq_len=81, num_puzzle_ids=1)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 27_275_266
    assert swiglu_width(512, 4) == 1536


def _reference_block(block: Block, x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """The HRM block written out by hand: explicit softmax attention, rotary by complex multiplication."""
    b, n, d = x.shape
    hd = d // num_heads
    q, k, v = (x @ block.attn.qkv.weight.T).split(d, dim=-1)
    q, k, v = (t.view(b, n, num_heads, hd).transpose(1, 2) for t in (q, k, v))

    def rope(t):  # pairs (i, i + hd/2) as one complex number, rotated by position * frequency
        freqs = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        angle = torch.arange(n).float()[:, None] * freqs[None]
        z = torch.complex(t[..., : hd // 2], t[..., hd // 2 :]) * torch.polar(torch.ones_like(angle), angle)
        return torch.cat((z.real, z.imag), dim=-1)

    q, k = rope(q), rope(k)
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
    x = x + attn.transpose(1, 2).reshape(b, n, d) @ block.attn.out.weight.T
    x = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
    gate, up = (x @ block.mlp.gate_up.weight.T).chunk(2, dim=-1)
    x = x + (F.silu(gate) * up) @ block.mlp.down.weight.T
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)


def test_block_matches_hand_written_reference():
    torch.manual_seed(0)
    block = Block(hidden_size=32, num_heads=4, expansion=4.0)
    x = torch.randn(2, 7, 32)
    ours = block(x, Rotary(8, 7))
    assert torch.allclose(ours, _reference_block(block, x, 4), atol=1e-5)
    assert all(m.bias is None for m in (block.attn.qkv, block.attn.out, block.mlp.gate_up, block.mlp.down))


def test_schedule_and_initialisation():
    model = tiny_model("core.H_cycles=2", "core.L_cycles=3")
    assert "".join(u.name for u in model.core.schedule()) == "LLLHLLLH"
    assert torch.all(model.policy.head.weight == 0) and torch.all(model.policy.head.bias == -5)
    # Token embeddings have std 1/sqrt(hidden), so scaled embeddings have about unit std.
    assert abs(model.embed_tokens.weight.std().item() * math.sqrt(32) - 1) < 0.15
    state = model.initial_state(3, "cpu")
    assert state["z_H"].shape == (3, 82, 32) and torch.equal(state["z_H"][0, 0], state["z_H"][2, 5])


def _reference_one_step_segment(core, z_H, z_L, x):
    """sapientinc/HRM's forward, written independently: all but the last L and H updates without grad."""
    H, Lc = core.H_cycles, core.L_cycles
    with torch.no_grad():
        for h in range(H):
            for l in range(Lc):
                if not (h == H - 1 and l == Lc - 1):
                    z_L = core.L(z_L, z_H + x, core.rotary)
            if h != H - 1:
                z_H = core.H(z_H, z_L, core.rotary)
    z_L = core.L(z_L, z_H + x, core.rotary)
    z_H = core.H(z_H, z_L, core.rotary)
    return z_H, z_L


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in model.named_parameters()}


def test_one_step_gradient_matches_hand_written_reference():
    model = tiny_model("core.H_cycles=2", "core.L_cycles=3")
    inputs = torch.randint(1, 11, (3, 81))
    start = model.initial_state(3, "cpu")
    # Start from a non-trivial state, as in a later segment of the carry.
    start = {k: v + 0.1 * torch.randn_like(v) for k, v in start.items()}
    target = torch.randint(0, 11, (3, 81))

    def loss_of(z_H):
        return F.cross_entropy(model.lm_head(z_H[:, 1:]).flatten(0, 1), target.flatten())

    ours = model.segment(start, model.embed(inputs))
    grads_ours = _grads(model, loss_of(ours["z_H"]))
    ref_H, ref_L = _reference_one_step_segment(model.core, start["z_H"], start["z_L"], model.embed(inputs))
    grads_ref = _grads(model, loss_of(ref_H))

    assert torch.allclose(ours["z_H"], ref_H, atol=1e-6) and torch.allclose(ours["z_L"], ref_L, atol=1e-6)
    for name in grads_ref:
        assert torch.allclose(grads_ours[name], grads_ref[name], atol=1e-6, rtol=1e-5), name
    assert grads_ours["embed_tokens.weight"].abs().sum() > 0  # the input injection is trained

    # The test can tell one-step from full backprop: unrolled autograd gives different gradients.
    with torch.enable_grad():
        state, x = dict(start), model.embed(inputs)
        for update in model.core.schedule():
            state = model.core.apply(update, state, x)
    grads_full = _grads(model, loss_of(state["z_H"]))
    assert not torch.allclose(
        grads_full["core.L.blocks.0.attn.qkv.weight"], grads_ours["core.L.blocks.0.attn.qkv.weight"], atol=1e-6
    )


def test_config_builds_the_requested_shapes():
    config = tiny_config("core.hidden_size=48", "core.num_heads=3")
    model = build_model(config, 11, 81, 1)
    assert model.core.H.blocks[0].attn.qkv.weight.shape == (144, 48)
