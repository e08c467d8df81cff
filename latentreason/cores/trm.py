"""The Tiny Recursive Model core (Jolicoeur-Martineau 2025, "Less is More: Recursive Reasoning with
Tiny Networks", arXiv 2510.04871), faithful to SamsungSAILMontreal/TinyRecursiveModels.

One small network `net` updates both a latent z and an answer y, with additive input injection:

    for each of H_cycles recursions:
        repeat L_cycles times:  z <- net(z, y + x)
        y <- net(y, z)                               (no x: the answer is refined from z alone)

Both start from fixed truncated-normal vectors (`y_init`, `z_init`); the heads read y. TRM's
gradient rule (the first H_cycles - 1 recursions without grad, full backprop through the last) is
not written here: it is the `tbptt` estimator with k = L_cycles + 1.

`mixer: mlp` is TRM's `mlp_t`: each block mixes positions with a SwiGLU across the sequence axis
instead of attention (for fixed-size inputs; best on Sudoku), and no rotary embedding is used.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from latentreason.cores.base import Core, State, Update, make_rotary
from latentreason.cores.blocks import Stack, TokenMLPStack
from latentreason.errors import ConfigError
from latentreason.registry import register


@register("core", "trm")
class TRM(Core):
    """TRM: one tiny network recursively updating a latent z and an answer y."""

    state_fields = ("y", "z")

    def __init__(
        self,
        seq_len: int,
        hidden_size: int = 512,
        num_heads: int = 8,
        expansion: float = 4.0,
        mlp_multiple: int = 256,
        num_layers: int = 2,
        H_cycles: int = 3,
        L_cycles: int = 6,
        mixer: str = "attn",
        positions: str = "rope",
        rope_theta: float = 10000.0,
        compile: bool = False,
        make_stack: Callable[..., Stack] | None = None,
    ):
        super().__init__()
        make_stack = make_stack or Stack  # config.block, built by build_model
        if mixer not in ("attn", "mlp"):
            raise ConfigError(f"core.mixer must be 'attn' or 'mlp', got {mixer!r}")
        if H_cycles < 1 or L_cycles < 1 or num_layers < 1:
            raise ConfigError(
                f"core.H_cycles, core.L_cycles and core.num_layers must be >= 1, got {H_cycles}, {L_cycles} and {num_layers}"
            )
        if mixer == "mlp" and make_stack is not Stack:
            raise ConfigError(
                "core.mixer=mlp builds TRM's own token-MLP stack and takes no other block; use block=hrm or core.mixer=attn"
            )
        if mixer == "mlp" and positions == "rope":
            positions = "none"  # the token-mixing MLP is tied to positions; rotary has nothing to act on
        self.hidden_size, self.positions, self.mixer = hidden_size, positions, mixer
        self.H_cycles, self.L_cycles = H_cycles, L_cycles
        if mixer == "attn":
            self.net = make_stack(num_layers, hidden_size, num_heads, expansion, mlp_multiple)
        else:
            self.net = TokenMLPStack(num_layers, hidden_size, seq_len, expansion, mlp_multiple)
        self.rotary = make_rotary(positions, hidden_size, num_heads, seq_len, rope_theta, ("rope", "learned", "none"))
        self.register_initial_states()  # y_init, z_init
        self.set_updates({"z": self.update_z, "y": self.update_y}, compile)

    def schedule(self) -> tuple[Update, ...]:
        recursion = (Update("z", "z"),) * self.L_cycles + (Update("y", "y"),)
        return recursion * self.H_cycles

    def update_z(self, y: torch.Tensor, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(z, y + x, self.rotary)

    def update_y(self, y: torch.Tensor, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(y, z, self.rotary)

    def readout(self, state: State) -> torch.Tensor:
        return state["y"]
