"""The Hierarchical Reasoning Model core (Wang et al. 2025), faithful to sapientinc/HRM.

Two stacks of post-norm blocks, a fast L and a slow H, coupled by additive input injection:

    for each of H_cycles:
        repeat L_cycles times:  z_L <- L(z_L, z_H + x)
        z_H <- H(z_H, z_L)

Both start from fixed truncated-normal vectors. Which of these updates carry gradient is decided
by the gradient estimator, not here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from latentreason.cores.base import Core, State, Update, make_rotary
from latentreason.cores.blocks import Stack
from latentreason.errors import ConfigError
from latentreason.registry import register


@register("core", "hrm")
class HRM(Core):
    """HRM: a slow H stack and a fast L stack updated on two timescales."""

    state_fields = ("z_H", "z_L")

    def __init__(
        self,
        seq_len: int,
        hidden_size: int = 512,
        num_heads: int = 8,
        expansion: float = 4.0,
        mlp_multiple: int = 256,
        H_layers: int = 4,
        L_layers: int = 4,
        H_cycles: int = 2,
        L_cycles: int = 2,
        positions: str = "rope",
        rope_theta: float = 10000.0,
        compile: bool = False,
        make_stack: Callable[..., Stack] | None = None,
    ):
        super().__init__()
        make_stack = make_stack or Stack  # config.block, built by build_model
        if H_cycles < 1 or L_cycles < 1:
            raise ConfigError(f"core.H_cycles and core.L_cycles must be >= 1, got {H_cycles} and {L_cycles}")
        self.hidden_size, self.positions = hidden_size, positions
        self.H_cycles, self.L_cycles = H_cycles, L_cycles
        self.H = make_stack(H_layers, hidden_size, num_heads, expansion, mlp_multiple)
        self.L = make_stack(L_layers, hidden_size, num_heads, expansion, mlp_multiple)
        self.rotary = make_rotary(positions, hidden_size, num_heads, seq_len, rope_theta)
        self.register_initial_states()  # z_H_init, z_L_init
        self.set_updates({"L": self.update_L, "H": self.update_H}, compile)

    def schedule(self) -> tuple[Update, ...]:
        cycle = (Update("L", "z_L"),) * self.L_cycles + (Update("H", "z_H"),)
        return cycle * self.H_cycles

    def update_L(self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.L(z_L, z_H + x, self.rotary)

    def update_H(self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.H(z_H, z_L, self.rotary)

    def readout(self, state: State) -> torch.Tensor:
        return state["z_H"]
