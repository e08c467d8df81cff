"""Stacks built from x-transformers' `Encoder`, with its options passed through from the card.

The card's defaults make an Encoder as close to HRM's block as it can get (post-norm, RMSNorm with
no gain, rotary over the whole head, SwiGLU of HRM's width, SDPA attention). Where it still
differs (see registry/block/x_transformers.yaml and docs/blocks.md): the GLU input projection keeps
a bias, q/k/v are three projections, rotary pairs dims (2i, 2i+1) with base 10000, and the weights
get PyTorch's default Linear init rather than HRM's truncated LeCun normal.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from latentreason.cores.blocks import head_size, swiglu_width
from latentreason.errors import ConfigError
from latentreason.registry import register

# Set by the stack maker from the core's own keys; a card may not set them.
_FROM_CORE = ("dim", "depth", "heads", "attn_dim_head")


class EncoderStack(nn.Module):
    """One stack: adds the injected input to the state, then runs an x-transformers `Encoder`.

    The core's rotary module is ignored: the Encoder applies its own (`block.rotary_pos_emb`).
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, state: torch.Tensor, injection: torch.Tensor, rotary: Any = None) -> torch.Tensor:
        return self.encoder(state + injection)


def encoder_options(
    hidden_size: int, num_heads: int, expansion: float, mlp_multiple: int, positions: str, options: dict
) -> dict:
    """The Encoder's keyword arguments: the card's options, with the core-derived ones filled in."""
    options = {k: v for k, v in options.items()}
    taken = [k for k in _FROM_CORE if k in options]
    if taken:
        raise ConfigError(
            f"block.{taken[0]} is set from the core (core.hidden_size, core.num_heads, core.*_layers); "
            "remove it from the block"
        )
    dim_head = head_size(hidden_size, num_heads)
    if options.get("rotary_pos_emb") is None:  # follow core.positions
        options["rotary_pos_emb"] = positions == "rope"
    if options.get("rotary_emb_dim") is None:
        options["rotary_emb_dim"] = dim_head  # x-transformers' default rotates only half of each head
    if options.get("ff_mult") is None:  # HRM's SwiGLU width; the 0.5 survives x-transformers' int(dim * mult)
        options["ff_mult"] = (swiglu_width(hidden_size, expansion, mlp_multiple) + 0.5) / hidden_size
    options.setdefault("verbose", False)
    return options


@register("block", "x_transformers")
def x_transformers(positions: str = "rope", **options):
    """Stacks from x-transformers' `Encoder`; its options pass through (`block.pre_norm=true`, `block.ff_glu`, ...)."""
    try:
        from x_transformers import Encoder
    except ImportError:
        raise ConfigError("block=x_transformers needs the x-transformers package: pip install x-transformers") from None

    def make_stack(
        num_layers: int, hidden_size: int, num_heads: int, expansion: float, mlp_multiple: int = 256
    ) -> EncoderStack:
        kwargs = encoder_options(hidden_size, num_heads, expansion, mlp_multiple, positions, options)
        try:
            encoder = Encoder(
                dim=hidden_size, depth=num_layers, heads=num_heads, attn_dim_head=hidden_size // num_heads, **kwargs
            )
        except (TypeError, AssertionError, ValueError) as error:
            raise ConfigError(f"block=x_transformers: x-transformers' Encoder refused the options: {error}") from None
        return EncoderStack(encoder)

    return make_stack
