"""Exponential moving average of the weights (TRM evaluates and checkpoints its EMA weights)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from timm.utils import ModelEmaV3
from torch import nn


def make_ema(model: nn.Module, decay: float) -> ModelEmaV3:
    """An exponential moving average of `model`'s parameters (TRM evaluates and saves its EMA weights).

    timm's warmup ramps the decay up from 0 (decay = 1 - (1 + step)^(-2/3), capped at `decay`), so the
    average does not start from the random initial weights. Buffers (initial states, the puzzle
    embedding table) are not averaged: as in TRM's EMA, evaluation uses the live ones.
    """
    # fp32 averages: timm's stochastic rounding (for bf16 averages, with a generator bound to the
    # device it was made on) is off, so the average can move between devices with its module. timm
    # releases without that option (1.0.29, on a GPU image) round to nearest: nothing to turn off.
    off = {"stochastic_rounding": False} if "stochastic_rounding" in inspect.signature(ModelEmaV3).parameters else {}
    ema = ModelEmaV3(model, decay=decay, use_warmup=True, exclude_buffers=True, **off)
    ema.module.requires_grad_(False)
    return ema


def ema_parameters(ema: ModelEmaV3) -> dict[str, torch.Tensor]:
    """The averaged parameters by name (what checkpoints store under "ema")."""
    return {name: p.detach() for name, p in ema.module.named_parameters()}


@torch.no_grad()
def load_ema_parameters(ema: ModelEmaV3, params: dict[str, torch.Tensor]) -> None:
    own = dict(ema.module.named_parameters())
    missing = sorted(set(own) - set(params))
    if missing:
        raise KeyError(
            f"The checkpoint's EMA weights lack {len(missing)} parameter(s) of this model, e.g. {missing[0]!r}; was it saved by a different model configuration?"
        )
    for name, p in own.items():
        p.copy_(params[name])


@contextmanager
def parameters_swapped(model: nn.Module, params: dict[str, torch.Tensor]) -> Iterator[nn.Module]:
    """Run a block with `params` (by name) in place of `model`'s own parameters, then put them back.

    Copies in place, so the same modules (and any compiled update functions bound to them) run;
    buffers are left as they are.
    """
    own = dict(model.named_parameters())
    saved = {name: own[name].detach().clone() for name in params}
    with torch.no_grad():
        for name, value in params.items():
            own[name].copy_(value)
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, value in saved.items():
                own[name].copy_(value)
