"""Adam-atan2, HRM's optimizer, in plain PyTorch.

HRM trains with ``from adam_atan2 import AdamATan2``, a fused CUDA-only package; this is the same
update without a compiled extension, so training runs on any device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from latentreason.registry import register


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


@register("optim", "adam_atan2")
def adam_atan2(params, lr: float, betas: tuple[float, float], weight_decay: float) -> AdamATan2:
    """Adam-atan2 (HRM's optimizer): Adam with atan2 in place of the epsilon-guarded division."""
    return AdamATan2(params, lr=lr, betas=betas, weight_decay=weight_decay)
