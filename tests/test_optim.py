"""Tests for latentreason.optim: Adam-atan2 update rule, LR schedule, optimizer factory."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from latentreason.optim.adam_atan2 import AdamATan2
from latentreason.optim.build import build_optimizer
from latentreason.optim.schedule import make_scheduler, warmup_cosine


def _reference_adam_atan2(params, grads, *, lr, beta1, beta2, weight_decay):
    """Independent scalar Adam-atan2 (plain floats, math.atan2), following imbue's kernel."""
    params = list(params)
    m = [0.0] * len(params)
    v = [0.0] * len(params)
    for t, grad in enumerate(grads, start=1):
        for i, g in enumerate(grad):
            params[i] *= 1.0 - lr * weight_decay
            m[i] = beta1 * m[i] + (1.0 - beta1) * g
            v[i] = beta2 * v[i] + (1.0 - beta2) * g * g
            m_hat = m[i] / (1.0 - beta1**t)
            v_hat_sqrt = math.sqrt(v[i]) / math.sqrt(1.0 - beta2**t)
            params[i] -= lr * math.atan2(m_hat, v_hat_sqrt)
    return params


@pytest.mark.parametrize("lr_as_tensor", [False, True])
def test_adam_atan2_matches_scalar_reference(lr_as_tensor):
    torch.manual_seed(0)
    init = torch.randn(5, dtype=torch.float64)
    grads = torch.randn(6, 5, dtype=torch.float64)
    grads[2, 1] = 0.0  # exercise atan2(0, .) and a zero-gradient coordinate
    hyper = dict(lr=0.05, beta1=0.9, beta2=0.95, weight_decay=0.1)

    p = torch.nn.Parameter(init.clone())
    lr = torch.tensor(hyper["lr"], dtype=torch.float64) if lr_as_tensor else hyper["lr"]
    opt = AdamATan2([p], lr=lr, betas=(hyper["beta1"], hyper["beta2"]), weight_decay=hyper["weight_decay"])
    for g in grads:
        p.grad = g.clone()
        opt.step()

    expected = _reference_adam_atan2(init.tolist(), grads.tolist(), **hyper)
    assert p.detach().tolist() == pytest.approx(expected, abs=1e-6, rel=0)
    assert opt.state[p]["step"].item() == len(grads)


def test_adam_atan2_fp32_and_skips_params_without_grad():
    torch.manual_seed(1)
    a = torch.nn.Parameter(torch.randn(4))
    b = torch.nn.Parameter(torch.randn(3))
    b_before = b.detach().clone()
    opt = AdamATan2([a, b], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    grads = torch.randn(3, 4)
    init = a.detach().double().tolist()
    for g in grads:
        a.grad = g.clone()
        opt.step()
    expected = _reference_adam_atan2(init, grads.double().tolist(), lr=1e-2, beta1=0.9, beta2=0.95, weight_decay=0.1)
    assert a.detach().tolist() == pytest.approx(expected, abs=1e-6, rel=0)
    assert torch.equal(b, b_before) and b not in opt.state


def test_adam_atan2_bf16_param_updates_in_fp32():
    p32 = torch.nn.Parameter(torch.ones(8))
    p16 = torch.nn.Parameter(torch.ones(8, dtype=torch.bfloat16))
    opt = AdamATan2([p32, p16], lr=1e-2, weight_decay=0.0)
    p32.grad = torch.full((8,), 0.5)
    p16.grad = torch.full((8,), 0.5, dtype=torch.bfloat16)
    opt.step()
    assert p16.dtype == torch.bfloat16 and opt.state[p16]["exp_avg"].dtype == torch.bfloat16
    torch.testing.assert_close(p16.float(), p32.detach().to(torch.bfloat16).float())


def test_adam_atan2_minimises_quadratic():
    torch.manual_seed(0)
    target = torch.randn(10)
    x = torch.nn.Parameter(torch.zeros(10))
    opt = AdamATan2([x], lr=0.05, betas=(0.9, 0.95), weight_decay=0.0)
    start = ((x - target) ** 2).sum().item()
    for _ in range(300):
        opt.zero_grad()
        loss = ((x - target) ** 2).sum()
        loss.backward()
        opt.step()
    assert ((x - target) ** 2).sum().item() < 1e-3 * start


def test_adam_atan2_state_dict_round_trip_continues_identically():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    data = torch.randn(8, 16, 4)

    def run(m, o, batches):
        for xb in batches:
            o.zero_grad()
            m(xb).pow(2).mean().backward()
            o.step()

    opt = AdamATan2(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    run(model, opt, data[:4])
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    run(model, opt, data[4:])

    resumed = torch.nn.Linear(4, 3)
    resumed.load_state_dict(saved_model)
    resumed_opt = AdamATan2(resumed.parameters(), lr=0.5, betas=(0.5, 0.5), weight_decay=0.0)
    resumed_opt.load_state_dict(saved_opt)
    assert resumed_opt.param_groups[0]["betas"] == (0.9, 0.95)
    run(resumed, resumed_opt, data[4:])
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_adam_atan2_rejects_bad_hyperparameters():
    p = [torch.nn.Parameter(torch.zeros(1))]
    AdamATan2(p, lr=0.0)  # HRM constructs with lr=0 and lets the scheduler set it
    with pytest.raises(ValueError):
        AdamATan2(p, lr=-1.0)
    with pytest.raises(ValueError):
        AdamATan2(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError):
        AdamATan2(p, weight_decay=-0.1)


@pytest.mark.parametrize(
    ("step", "min_ratio", "expected"),
    [
        # warmup_steps=10, total_steps=110: cosine over 100 steps.
        (0, 0.0, 0.0),
        (5, 0.0, 0.5),
        (10, 0.0, 1.0),
        (35, 0.0, 0.5 * (1 + math.cos(math.pi * 0.25))),  # ~0.853553
        (60, 0.0, 0.5),
        (110, 0.0, 0.0),
        (60, 0.1, 0.55),
        (110, 0.1, 0.1),
        (0, 1.0, 0.0),
        (5, 1.0, 0.5),
        (10, 1.0, 1.0),
        (60, 1.0, 1.0),
        (110, 1.0, 1.0),
        (500, 0.0, 0.0),  # clamped past the end
    ],
)
def test_warmup_cosine_values(step, min_ratio, expected):
    got = warmup_cosine(step, warmup_steps=10, total_steps=110, min_ratio=min_ratio)
    assert got == pytest.approx(expected, abs=1e-12)


def test_warmup_cosine_without_warmup_and_default_is_constant():
    assert warmup_cosine(0, warmup_steps=0, total_steps=100, min_ratio=0.0) == 1.0
    assert warmup_cosine(50, warmup_steps=10, total_steps=100) == 1.0


def test_make_scheduler_drives_lr():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = AdamATan2([p], lr=1e-3)
    sched = make_scheduler(opt, warmup_steps=4, total_steps=8, min_ratio=0.0)
    lrs = []
    for _ in range(9):
        lrs.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(2)
        opt.step()
        sched.step()
    # Shifted by one like HRM: the first update already uses the multiplier of step 1.
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lrs[5] == pytest.approx(5e-4) and lrs[7] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("name", "cls_name"), [("adam_atan2", "AdamATan2"), ("adamw", "AdamW"), ("lion", "Lion")])
def test_build_optimizer_builds_and_steps(name, cls_name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    before = [p.detach().clone() for p in model.parameters()]
    opt = build_optimizer(name, model, lr=1e-3, weight_decay=0.1)
    assert type(opt).__name__ == cls_name
    # HRM decays everything: a single group, biases and norm weights included.
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 0.1
    assert len(opt.param_groups[0]["params"]) == 4
    assert tuple(opt.param_groups[0]["betas"]) == (0.9, 0.95)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_build_optimizer_timm_without_betas():
    opt = build_optimizer("sgd", [torch.nn.Parameter(torch.zeros(2))], lr=0.1, weight_decay=0.0)
    assert isinstance(opt, torch.optim.SGD)


def test_build_optimizer_unknown_name_suggests_close_match():
    with pytest.raises(ValueError) as info:
        build_optimizer("adam_atan", [torch.nn.Parameter(torch.zeros(1))], lr=1e-3, weight_decay=0.0)
    assert "Did you mean: adam_atan2" in str(info.value)
