"""An optimizer by name: a registered one (`optim=adam_atan2`, `adamw`, a plugin's), else timm's."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from latentreason import registry


def build_optimizer(
    name: str,
    params: Iterable[Tensor] | Iterable[dict[str, Any]] | nn.Module,
    lr: float | Tensor,
    weight_decay: float,
    betas: tuple[float, ...] = (0.9, 0.95),
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """Build an optimizer by name, with weight decay on *all* parameters, as HRM does.

    A module is turned into its parameter list first: given a module, timm would move biases and
    norm weights into a no-decay group, which HRM does not.
    """
    if isinstance(params, nn.Module):
        params = params.parameters()
    params = list(params)
    key = name.lower()
    registered = {e.name: e.factory for e in registry.entries("optim")}
    if key in registered:
        return registered[key](params, lr=lr, betas=betas, weight_decay=weight_decay, **kwargs)

    from timm.optim import create_optimizer_v2, list_optimizers

    choices = sorted({*registered, *list_optimizers()})
    if key.removeprefix("lookahead_") not in choices:
        close = difflib.get_close_matches(key, choices, n=3)
        hint = (
            f" Did you mean: {', '.join(close)}? (optim.name takes any of timm's {len(choices)} optimizers)"
            if close
            else f" Choices: {', '.join(choices)}"
        )
        raise ValueError(f"unknown optimizer {name!r}.{hint}")
    # timm drops ``betas`` itself for optimizers that take none (e.g. sgd).
    return create_optimizer_v2(params, opt=key, lr=lr, weight_decay=weight_decay, betas=betas, **kwargs)
