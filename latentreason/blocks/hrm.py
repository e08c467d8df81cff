"""HRM's own block: post-norm, scale-free RMSNorm, rotary (i, i + d/2), fused QKV, bias-free SwiGLU."""

from __future__ import annotations

from latentreason.cores.blocks import Stack
from latentreason.registry import register


@register("block", "hrm")
def hrm():
    """HRM's post-norm block (the default): `latentreason.cores.blocks.Stack`, as before."""
    return Stack
