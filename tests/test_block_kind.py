"""The `block` kind: HRM's own block by default (unchanged numerics), x-transformers' Encoder on any core."""

import pytest
import torch

from latentreason.blocks.x_transformers import EncoderStack
from latentreason.config import load_config
from latentreason.cores.blocks import Rotary, Stack, swiglu_width
from latentreason.errors import ConfigError
from latentreason.model import build_model
from latentreason.optim.build import build_optimizer
from latentreason.train.deep_supervision import Carry, train_segment

TINY = [
    "core.hidden_size=32",
    "core.num_heads=2",
    "core.mlp_multiple=16",
    "halt=fixed",
    "halt.max_steps=2",
    "model.puzzle_emb_len=1",
]
CORES = {  # each core's stacks, one layer, few updates
    "hrm": (["core=hrm", "core.H_layers=1", "core.L_layers=1", "core.H_cycles=1", "core.L_cycles=1"], ("H", "L")),
    "looped": (["core=looped", "core.L_layers=1", "core.L_cycles=2"], ("L",)),
    "trm": (["core=trm", "core.mixer=attn", "core.num_layers=1", "core.H_cycles=1", "core.L_cycles=1"], ("net",)),
    "latent_diffusion": (["core=latent_diffusion", "core.num_layers=1", "core.num_levels=2"], ("net",)),
}


def _config(core: str, *extra: str):
    return load_config(["recipe=hrm_sudoku", "preset=paper", *CORES[core][0], *TINY, *extra])


def _fixed_batch():
    g = torch.Generator().manual_seed(1)
    inputs = torch.randint(1, 6, (8, 16), generator=g)
    return {"inputs": inputs, "labels": (inputs * 2) % 5 + 1, "puzzle_ids": torch.zeros(8, dtype=torch.long)}


def encoder_parameters(layers: int, hidden: int, width: int, glu: bool = True, ff_bias: bool = False) -> int:
    """From x-transformers' layer shapes: per layer, to_q, to_k, to_v and to_out (hidden x hidden each, no bias);
    the feed-forward's input projection (hidden -> 2 x width with a bias under GLU, which ff_no_bias leaves in;
    hidden -> width without GLU, bias only with ff_bias) and output projection (width -> hidden, bias only with
    ff_bias); RMSNorm without gain has no parameters."""
    attention = 4 * hidden * hidden
    ff_in = hidden * 2 * width + 2 * width if glu else hidden * width + (width if ff_bias else 0)
    ff_out = width * hidden + (hidden if ff_bias else 0)
    return layers * (attention + ff_in + ff_out)


@pytest.mark.parametrize("core", list(CORES))
def test_x_transformers_block_trains_every_core(core):
    torch.manual_seed(0)
    model = build_model(_config(core, "block=x_transformers"), vocab_size=6, seq_len=16, num_puzzle_ids=1)
    for stack in CORES[core][1]:
        assert isinstance(getattr(model.core, stack), EncoderStack)
    batch = _fixed_batch()
    optimizer = build_optimizer("adamw", model.parameters(), lr=3e-3, weight_decay=0.0)
    carry = Carry.start(model, batch)
    losses = []
    for _ in range(12):
        carry, loss, terms, _ = train_segment(model, carry, batch)
        optimizer.zero_grad()
        (loss / 8).backward()
        optimizer.step()
        losses.append(terms["lm"].item() / 8)
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, f"{core} with block=x_transformers: lm loss {first:.3f} -> {last:.3f}"


@pytest.mark.parametrize(
    "extra, glu, ff_bias",
    [
        ([], True, False),
        (["block.ff_glu=false"], False, False),
        (["block.ff_no_bias=false", "block.pre_norm=true"], True, True),
    ],
)
def test_x_transformers_parameter_count_matches_the_formula(extra, glu, ff_bias):
    config = _config("hrm", "block=x_transformers", "core.H_layers=2", "core.L_layers=3", *extra)
    model = build_model(config, vocab_size=6, seq_len=16)
    width = swiglu_width(32, 4.0, 16)
    for stack, layers in (("H", 2), ("L", 3)):
        count = sum(p.numel() for p in getattr(model.core, stack).parameters())
        assert count == encoder_parameters(layers, 32, width, glu, ff_bias)
    # Against ours: the GLU bias (2 x width per layer) is the whole difference under the card's defaults.
    if not extra:
        ours = sum(p.numel() for p in Stack(5, 32, 2, 4.0, 16).parameters())
        assert sum(p.numel() for s in ("H", "L") for p in getattr(model.core, s).parameters()) == ours + 5 * 2 * width


def test_hrm_block_is_bit_identical_to_the_stack():
    torch.manual_seed(0)
    model = build_model(_config("hrm", "block=hrm"), vocab_size=6, seq_len=16, num_puzzle_ids=1)
    torch.manual_seed(0)
    H, L = Stack(1, 32, 2, 4.0, 16), Stack(1, 32, 2, 4.0, 16)  # the core builds H, then L, first
    state, injection = torch.randn(2, 17, 32), torch.randn(2, 17, 32)
    rotary = Rotary(16, 17)
    for ours, built in ((H, model.core.H), (L, model.core.L)):
        assert type(built) is Stack
        assert torch.equal(ours(state, injection, rotary), built(state, injection, model.core.rotary))


def test_the_default_block_is_hrm():
    assert load_config(["recipe=hrm_sudoku"])["block"]["name"] == "hrm"


def test_bad_block_options_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="core.mixer=mlp"):
        build_model(_config("trm", "block=x_transformers", "core.mixer=mlp"), vocab_size=6, seq_len=16)
    with pytest.raises(ConfigError, match="Encoder refused"):
        build_model(_config("hrm", "block=x_transformers", "+block.no_such_option=1"), vocab_size=6, seq_len=16)
    with pytest.raises(ConfigError, match="block.heads is set from the core"):
        build_model(_config("hrm", "block=x_transformers", "+block.heads=4"), vocab_size=6, seq_len=16)


def test_list_shows_the_block_kind(capsys):
    from latentreason.cli import main

    main(["list", "block"])
    out = capsys.readouterr().out
    for name in ("hrm", "x_transformers"):
        assert any(name in line and "built-in" in line and "block" in line for line in out.splitlines()), out
