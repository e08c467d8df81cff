"""Optimizers and the learning-rate schedule used to train latent-reasoning models.

HRM trains with Adam-atan2 (``from adam_atan2 import AdamATan2``), a fused CUDA-only package, and
a linear-warmup / cosine multiplier. Both are re-implemented here in plain PyTorch so that
training runs on any device and without a compiled extension.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["AdamATan2", "warmup_cosine", "make_scheduler", "build_optimizer", "OPTIMIZERS"]


class AdamATan2(torch.optim.Optimizer):
    """Adam with ``atan2(m_hat, sqrt(v_hat))`` in place of ``m_hat / (sqrt(v_hat) + eps)``.

    Why: removes Adam's epsilon (a scale-dependent hyper-parameter) and bounds every update
    coordinate by ``lr * pi / 2`` (Everett et al. 2024, arXiv:2407.05872).

    Per parameter, with ``t`` the step count (from 1)::

        p   <- p * (1 - lr * weight_decay)                 # decoupled weight decay
        m   <- lerp(m, g, 1 - beta1)
        v   <- lerp(v, g * g, 1 - beta2)
        p   <- p - lr * atan2(m / (1 - beta1**t), sqrt(v) / sqrt(1 - beta2**t))

    This matches the ``adam_atan2`` package (the fused kernel ``csrc/adam_atan2.cu`` and its test
    reference ``adam_atan2/adam_atan2_test.py``), i.e. the constants are a = b = 1 and the
    defaults are lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-2.

    Differences from the pure-PyTorch port ``adam_atan2_pytorch.AdamAtan2`` (lucidrains), which
    HRM forks fall back to, and which this class does NOT follow:

    * it scales the update by ``a = 1.27`` (``b = 1``); here a = 1;
    * its weight decay is ``p *= 1 - lr / initial_lr * wd`` (wd relative to the initial lr, so
      ``wd`` is not multiplied by lr); here it is ``1 - lr * wd``, like AdamW;
    * its defaults are betas=(0.9, 0.99), weight_decay=0, and it asserts lr > 0 (which is why
      HRM forks pass lr=1e-8 instead of 0 before the scheduler sets it); lr=0 is allowed here.

    As in the fused kernel, fp16/bf16 parameters are updated in fp32 and the moments are stored
    in the parameter's dtype.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 1e-2,
    ) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("a tensor lr must have exactly one element")
        if not 0.0 <= lr:
            raise ValueError(f"invalid learning rate: {lr}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"invalid beta parameter at index {i}: {beta}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Apply one update to every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            lr, weight_decay = group["lr"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamATan2 does not support sparse gradients")
                state = self.state[p]
                if len(state) == 0:
                    # Step kept on the CPU as a float32 tensor, like torch.optim.Adam's
                    # non-capturable path: cheap to read, and state_dict-compatible.
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"].item()

                # Math in fp32 for half-precision params (as the fused kernel's opmath type).
                low = p.dtype in (torch.float16, torch.bfloat16)
                param = p.float() if low else p
                grad = p.grad.float() if low else p.grad
                exp_avg = state["exp_avg"].float() if low else state["exp_avg"]
                exp_avg_sq = state["exp_avg_sq"].float() if low else state["exp_avg_sq"]

                param.mul_(1 - lr * weight_decay)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.lerp_(grad * grad, 1 - beta2)
                denom = exp_avg_sq.sqrt().div_(math.sqrt(1 - beta2**t))
                update = torch.atan2(exp_avg * (1 / (1 - beta1**t)), denom)
                param.sub_(update.mul_(lr))

                if low:
                    p.copy_(param)
                    state["exp_avg"].copy_(exp_avg)
                    state["exp_avg_sq"].copy_(exp_avg_sq)
        return loss


def warmup_cosine(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int,
    min_ratio: float = 1.0,
    num_cycles: float = 0.5,
) -> float:
    """LR multiplier: linear 0 -> 1 over ``warmup_steps``, then cosine 1 -> ``min_ratio``.

    Same formula as ``cosine_schedule_with_warmup_lr_lambda`` in HRM's ``pretrain.py`` (divided by
    base_lr). ``min_ratio=1.0`` (HRM's configs) is constant after warmup. One deliberate change:
    progress is clamped at 1, so steps past ``total_steps`` stay at ``min_ratio`` instead of the
    cosine climbing back up (HRM never steps past ``total_steps``, so it never sees the difference).
    """
    if step < warmup_steps:
        return float(step) / float(max(1, warmup_steps))
    progress = float(step - warmup_steps) / float(max(1, total_steps - warmup_steps))
    progress = min(progress, 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    return min_ratio + max(0.0, (1.0 - min_ratio) * cosine)


def make_scheduler(optimizer: torch.optim.Optimizer, **kwargs: Any) -> LambdaLR:
    """``LambdaLR`` applying :func:`warmup_cosine` (same keyword arguments) to each group's lr.

    Shifted by one step, as HRM counts: its first update already uses the multiplier of step 1
    (LambdaLR alone would give the first ``optimizer.step()`` the multiplier of step 0, i.e. lr 0).
    """
    return LambdaLR(optimizer, lambda step: warmup_cosine(step + 1, **kwargs))


OPTIMIZERS = ("adam_atan2", "adamw")
"""Names handled here; every other name goes to ``timm.optim.create_optimizer_v2``."""


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
    if key == "adam_atan2":
        return AdamATan2(params, lr=lr, betas=betas, weight_decay=weight_decay, **kwargs)
    if key == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, **kwargs)

    from timm.optim import create_optimizer_v2, list_optimizers

    choices = sorted({*OPTIMIZERS, *list_optimizers()})
    if key.removeprefix("lookahead_") not in choices:
        close = difflib.get_close_matches(key, choices, n=3)
        hint = f" Did you mean: {', '.join(close)}? (optim.name takes any of timm's {len(choices)} optimizers)" if close else f" Choices: {', '.join(choices)}"
        raise ValueError(f"unknown optimizer {name!r}.{hint}")
    # timm drops ``betas`` itself for optimizers that take none (e.g. sgd).
    return create_optimizer_v2(
        params, opt=key, lr=lr, weight_decay=weight_decay, betas=betas, **kwargs
    )
