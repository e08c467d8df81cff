"""The transformer block HRM and its descendants are built from.

Post-norm (`x = norm(x + f(x))`), RMSNorm without a learned scale, rotary positions, fused QKV,
SwiGLU, no biases, non-causal attention through `scaled_dot_product_attention` (runs on CPU,
picks flash kernels on GPU). Written here rather than taken from x-transformers because its
Encoder cannot express this block exactly: its GLU input projection keeps a bias (so HRM's
27,275,266 parameters become 27,299,842), it pairs rotary dims differently (so weights do not port
as they are), and its forward+backward measured 1.09x (paper shape) to 1.26x (CPU preset) slower.
See docs/blocks.md and benchmarks/RESULTS.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from latentreason.errors import ConfigError

# The standard deviation of a unit normal truncated at +-2 sigma: dividing by it makes the
# truncated sample have the requested standard deviation (JAX / HRM convention).
TRUNCATED_STD = 0.87962566103423978


def truncated_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """Truncated (at 2 sigma) normal whose actual standard deviation is `std`, as HRM initialises."""
    from timm.layers import trunc_normal_tf_  # here, not at the top: importing timm pulls torchvision (seconds)

    return trunc_normal_tf_(tensor, mean=0.0, std=std / TRUNCATED_STD, a=-2.0, b=2.0)


def rms_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """RMSNorm with no learned scale, computed in fp32 for stability under bf16."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return x.to(dtype)


def swiglu_width(hidden_size: int, expansion: float, multiple: int = 256) -> int:
    """HRM's SwiGLU inner width: 2/3 of expansion*hidden, rounded up to a multiple of 256.

    The rounding is free at hidden 512 (1365 -> 1536) but quadruples a hidden-64 model's MLP, so
    small CPU models may lower `multiple`.
    """
    width = round(expansion * hidden_size * 2 / 3)
    return -(-width // multiple) * multiple


class Linear(nn.Linear):
    """A Linear layer with HRM's truncated LeCun-normal init and no bias by default."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__(in_features, out_features, bias=bias)

    def reset_parameters(self) -> None:
        from timm.layers import lecun_normal_  # see truncated_normal_

        lecun_normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


def head_size(hidden_size: int, num_heads: int) -> int:
    """hidden_size / num_heads, or a ConfigError naming both keys."""
    if num_heads < 1 or hidden_size % num_heads:
        raise ConfigError(
            f"core.hidden_size={hidden_size} is not divisible by core.num_heads={num_heads}; pick a num_heads that divides it"
        )
    return hidden_size // num_heads


class Rotary(nn.Module):
    """Rotary position embedding pairing dims (i, i + d/2), as HRM does."""

    def __init__(self, head_dim: int, max_len: int, theta: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ConfigError(
                f"Rotary positions need an even head size, and core.hidden_size / core.num_heads = {head_dim}; change one of them, or use core.positions=learned"
            )
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
        angles = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., length, head_dim), e.g. (batch, heads, length, head_dim)."""
        length = x.shape[-2]
        cos, sin = self.cos[:length].to(x.dtype), self.sin[:length].to(x.dtype)
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin


class Attention(nn.Module):
    """Non-causal multi-head self-attention with one fused QKV projection."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_size(hidden_size, num_heads)
        self.qkv = Linear(hidden_size, 3 * hidden_size)
        self.out = Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rotary is not None:  # q and k rotated together: one set of elementwise kernels instead of two
            q, k = rotary(qkv[:2]).unbind(0)
            v = qkv[2]
        else:
            q, k, v = qkv.unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        return self.out(y.transpose(1, 2).reshape(batch, length, -1))


class SwiGLU(nn.Module):
    def __init__(self, hidden_size: int, expansion: float, multiple: int = 256):
        super().__init__()
        width = swiglu_width(hidden_size, expansion, multiple)
        self.gate_up = Linear(hidden_size, 2 * width)
        self.down = Linear(width, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """Post-norm transformer block: x = norm(x + attn(x)); x = norm(x + mlp(x))."""

    def __init__(
        self, hidden_size: int, num_heads: int, expansion: float, mlp_multiple: int = 256, norm_eps: float = 1e-5
    ):
        super().__init__()
        self.attn = Attention(hidden_size, num_heads)
        self.mlp = SwiGLU(hidden_size, expansion, mlp_multiple)
        self.norm_eps = norm_eps

    def forward(self, x: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        x = rms_norm(x + self.attn(x, rotary), self.norm_eps)
        return rms_norm(x + self.mlp(x), self.norm_eps)


class Stack(nn.Module):
    """A recurrent module (HRM's H or L): adds its injected input to the state, then runs its blocks."""

    def __init__(self, num_layers: int, hidden_size: int, num_heads: int, expansion: float, mlp_multiple: int = 256):
        super().__init__()
        self.blocks = nn.ModuleList(Block(hidden_size, num_heads, expansion, mlp_multiple) for _ in range(num_layers))

    def forward(self, state: torch.Tensor, injection: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        x = state + injection
        for block in self.blocks:
            x = block(x, rotary)
        return x


def initial_state_vector(hidden_size: int) -> torch.Tensor:
    """A fixed random start state (std 1), broadcast over positions: HRM's H_init / L_init (`Core.register_initial_states`)."""
    return truncated_normal_(torch.empty(hidden_size), std=1.0)


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class TokenMLPBlock(nn.Module):
    """TRM's `mlp_t` block: a SwiGLU across positions in place of attention, then the usual SwiGLU.

    For fixed-size inputs (Sudoku, mazes) the token mixer is an MLP over the sequence axis: the
    input is transposed to (batch, hidden, positions) and a SwiGLU of width
    `swiglu_width(seq_len, expansion, mlp_multiple)` maps each hidden channel's row of positions.
    As in SamsungSAILMontreal/TinyRecursiveModels, the residual and the RMSNorm of this sublayer
    are taken while transposed, so that norm runs over positions, not over hidden. No rotary:
    the mixer's weights are tied to positions. Post-norm and bias-free like `Block`.
    """

    def __init__(
        self, hidden_size: int, seq_len: int, expansion: float, mlp_multiple: int = 256, norm_eps: float = 1e-5
    ):
        super().__init__()
        self.token_mlp = SwiGLU(seq_len, expansion, mlp_multiple)
        self.mlp = SwiGLU(hidden_size, expansion, mlp_multiple)
        self.norm_eps = norm_eps

    def forward(self, x: torch.Tensor, rotary: Rotary | None = None) -> torch.Tensor:
        t = x.transpose(1, 2)
        x = rms_norm(t + self.token_mlp(t), self.norm_eps).transpose(1, 2)
        return rms_norm(x + self.mlp(x), self.norm_eps)


class TokenMLPStack(Stack):
    """A `Stack` of `TokenMLPBlock`s: adds the injected input to the state, then runs the blocks."""

    def __init__(self, num_layers: int, hidden_size: int, seq_len: int, expansion: float, mlp_multiple: int = 256):
        nn.Module.__init__(self)
        self.blocks = nn.ModuleList(
            TokenMLPBlock(hidden_size, seq_len, expansion, mlp_multiple) for _ in range(num_layers)
        )
