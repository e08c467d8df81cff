"""The L-only looped transformer: the ablation of Ge, Liao & Poggio (arXiv 2510.00355).

"Hierarchical Reasoning Models: Perspectives and Misconceptions" drops HRM's H module and keeps a
single stack of post-norm blocks, re-applied with the input injected by addition at every update:

    repeat L_cycles times:  z <- L(z, x)

With 8 layers and `L_cycles: 1` this is a plain transformer run once per segment; it matched or
beat HRM (4 H + 4 L layers, the same parameter count) on Sudoku-Extreme and trained faster.
Blocks, initialisation and hyperparameters follow HRM (`latentreason.cores.hrm`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from latentreason.cores.base import Core, State, Update, make_rotary
from latentreason.cores.blocks import Stack
from latentreason.errors import ConfigError
from latentreason.registry import register


@register("core", "looped")
class Looped(Core):
    """L-only looped transformer (Ge, Liao & Poggio): one stack re-applied with additive input injection."""

    state_fields = ("z",)

    def __init__(
        self,
        seq_len: int,
        hidden_size: int = 512,
        num_heads: int = 8,
        expansion: float = 4.0,
        mlp_multiple: int = 256,
        L_layers: int = 8,
        L_cycles: int = 1,
        positions: str = "rope",
        rope_theta: float = 10000.0,
        compile: bool = False,
        make_stack: Callable[..., Stack] | None = None,
    ):
        super().__init__()
        make_stack = make_stack or Stack  # config.block, built by build_model
        if L_cycles < 1 or L_layers < 1:
            raise ConfigError(f"core.L_cycles and core.L_layers must be >= 1, got {L_cycles} and {L_layers}")
        self.hidden_size, self.positions = hidden_size, positions
        self.L_cycles = L_cycles
        self.L = make_stack(L_layers, hidden_size, num_heads, expansion, mlp_multiple)
        self.rotary = make_rotary(positions, hidden_size, num_heads, seq_len, rope_theta)
        self.register_initial_states()  # z_init
        self.set_updates({"L": self.update_L}, compile)

    def schedule(self) -> tuple[Update, ...]:
        return (Update("L", "z"),) * self.L_cycles

    def update_L(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.L(z, x, self.rotary)

    def readout(self, state: State) -> torch.Tensor:
        return state["z"]
