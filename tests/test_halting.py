"""Halting policies (fixed, halt_only, inference-time rules), early-exit inference, and the weight EMA."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from omegaconf import OmegaConf

from conftest import random_batch, tiny_config, tiny_model
from latentreason import registry
from latentreason.inference import run_to_halt
from latentreason.train.deep_supervision import Carry, train_segment
from latentreason.train.ema import ema_parameters
from latentreason.train.module import LatentReasoningModule


def _never(*_):
    raise AssertionError("next_logits must not be called")


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# -- fixed ----------------------------------------------------------------------------------------


def test_fixed_runs_max_steps_with_no_head_and_no_loss():
    policy = registry.build("halt", {"name": "fixed", "max_steps": 5}, hidden_size=32)
    assert sum(p.numel() for p in policy.parameters()) == 0
    assert policy.logits(torch.randn(3, 7, 32)) == {}
    steps = torch.tensor([1, 4, 5, 6], dtype=torch.int32)
    for training in (True, False):
        policy.train(training)
        halted, targets = policy.halt({}, steps, _never)
        assert halted.tolist() == [False, False, True, True] and targets == {}
    assert policy.loss({}, {}, torch.ones(4, dtype=torch.bool)) == {}


def test_fixed_trains_and_evaluates_end_to_end():
    model = tiny_model("halt=fixed", "halt.max_steps=3")
    model.train()
    batch = random_batch(4, 0)
    carry = Carry.start(model, batch)
    for expected in (1, 2, 3):
        carry, loss, terms, results = train_segment(model, carry, batch)
        assert carry.steps.tolist() == [expected] * 4 and set(terms) == {"lm"}
    assert carry.halted.all()
    model.eval()
    logits, steps, halt_logits = run_to_halt(model, batch["inputs"], batch["puzzle_ids"])
    assert steps.tolist() == [3] * 4 and halt_logits == {} and logits.shape == (4, 81, 11)


# -- halt_only (TRM) ------------------------------------------------------------------------------


def test_halt_only_head_is_one_logit_initialised_off():
    policy = registry.build("halt", {"name": "halt_only"}, hidden_size=32)
    assert policy.head.weight.shape == (1, 32) and torch.all(policy.head.weight == 0)
    assert policy.head.bias.tolist() == [-5.0] and policy.max_steps == 16 and policy.loss_weight == 0.5
    logits = policy.logits(torch.randn(3, 7, 32))
    assert set(logits) == {"q_halt"} and logits["q_halt"].shape == (3,) and logits["q_halt"].dtype == torch.float32


def test_halt_only_halts_on_positive_q_halt_in_training_without_an_extra_segment():
    policy = registry.build("halt", {"name": "halt_only", "max_steps": 4, "exploration_prob": 0.0}, hidden_size=8)
    policy.train()
    q = torch.tensor([0.5, -0.5, 0.0, -3.0, 2.0])
    steps = torch.tensor([1, 2, 3, 4, 4], dtype=torch.int32)
    halted, targets = policy.halt({"q_halt": q}, steps, _never)
    assert halted.tolist() == [True, False, False, True, True] and targets == {}
    policy.eval()  # reference evaluation: max_steps only
    halted, _ = policy.halt({"q_halt": q}, steps, _never)
    assert halted.tolist() == [False, False, False, True, True]


def test_halt_only_explores_like_q_act():
    policy = registry.build("halt", {"name": "halt_only", "max_steps": 6, "exploration_prob": 1.0}, hidden_size=8)
    policy.train()
    q = {"q_halt": torch.full((400,), 3.0)}
    torch.manual_seed(0)
    assert not policy.halt(q, torch.ones(400, dtype=torch.int32), _never)[0].any()
    torch.manual_seed(0)
    at_3 = policy.halt(q, torch.full((400,), 3, dtype=torch.int32), _never)[0]
    assert 0.3 < at_3.float().mean().item() < 0.5  # minimum uniform on {2..6}: P(min <= 3) = 2/5


def test_halt_only_loss_is_weighted_bce_against_exact():
    policy = registry.build("halt", {"name": "halt_only", "loss_weight": 0.5}, hidden_size=8)
    q = [1.5, -0.3, 0.0, -4.0]
    exact = [True, False, True, False]
    terms = policy.loss({"q_halt": torch.tensor(q)}, {}, torch.tensor(exact))
    expected = 0.5 * sum(-math.log(_sigmoid(z)) if y else -math.log(1 - _sigmoid(z)) for z, y in zip(q, exact))
    assert set(terms) == {"q_halt"} and abs(terms["q_halt"].item() - expected) < 1e-5


def test_halt_only_training_segment_runs_one_segment_and_no_continue_term():
    model = tiny_model("halt=halt_only", "halt.exploration_prob=0.0")
    model.train()
    calls = []
    segment = model.segment
    model.segment = lambda state, x: calls.append(1) or segment(state, x)
    batch = random_batch(4, 1)
    with torch.no_grad():  # the first segment from the start state, by hand: make rows 0 and 2 exactly right
        predictions = model.heads(
            segment(model.initial_state(4, "cpu"), model.embed(batch["inputs"], batch["puzzle_ids"]))
        )[0].argmax(-1)
    batch["labels"][::2] = predictions[::2]
    exact = (predictions == batch["labels"]).all(-1)
    assert exact.tolist() == [True, False, True, False]
    carry, loss, terms, results = train_segment(model, Carry.start(model, batch), batch)
    assert len(calls) == 1  # no bootstrap segment
    assert set(terms) == {"lm", "q_halt"}
    assert torch.equal(results["exact"], exact)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(results["q_halt"], exact.float(), reduction="sum")
    assert torch.allclose(terms["q_halt"], 0.5 * bce, atol=1e-6)


# -- inference-time rules -------------------------------------------------------------------------


def test_eval_rules_halt_exactly_the_rows_a_hand_computation_says():
    q_halt = [2.0, -1.0, 0.5, -3.0, 0.0, 0.3]
    q_continue = [3.0, -2.0, -1.0, 0.0, -0.1, -0.2]
    steps = [1, 1, 2, 4, 3, 1]
    threshold, max_steps = 0.6, 4
    logits = {"q_halt": torch.tensor(q_halt), "q_continue": torch.tensor(q_continue)}
    step_tensor = torch.tensor(steps, dtype=torch.int32)
    last = [s >= max_steps for s in steps]
    expected = {
        "max_steps": last,
        "q_halt": [end or _sigmoid(h) > threshold for end, h in zip(last, q_halt)],
        "q_halt_minus_continue": [end or _sigmoid(h - c) > threshold for end, h, c in zip(last, q_halt, q_continue)],
    }
    assert expected["q_halt"] == [True, False, True, True, False, False]
    assert expected["q_halt_minus_continue"] == [False, True, True, True, False, True]
    for rule, want in expected.items():
        policy = registry.build(
            "halt",
            {"name": "q_act", "max_steps": max_steps, "eval_halt": rule, "eval_threshold": threshold},
            hidden_size=8,
        ).eval()
        assert policy.halt(logits, step_tensor, _never)[0].tolist() == want, rule
        if rule != "q_halt_minus_continue":
            only = registry.build(
                "halt",
                {"name": "halt_only", "max_steps": max_steps, "eval_halt": rule, "eval_threshold": threshold},
                hidden_size=8,
            ).eval()
            assert only.halt({"q_halt": logits["q_halt"]}, step_tensor, _never)[0].tolist() == want, rule
    # The rules apply at evaluation only: in training q_act still compares q_halt with q_continue.
    policy = registry.build(
        "halt", {"name": "q_act", "max_steps": max_steps, "exploration_prob": 0.0, "eval_halt": "q_halt"}, hidden_size=8
    ).train()
    nxt = lambda: {"q_halt": torch.zeros(6), "q_continue": torch.zeros(6)}  # noqa: E731
    assert policy.halt(logits, step_tensor, nxt)[0].tolist() == [
        h > c or end for h, c, end in zip(q_halt, q_continue, last)
    ]


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("q_act", {"eval_halt": "threshold"}, "choose one of: max_steps, q_halt, q_halt_minus_continue"),
        ("halt_only", {"eval_halt": "q_halt_minus_continue"}, "needs a continue value"),
        ("halt_only", {"eval_halt": "q-halt"}, "choose one of: max_steps, q_halt"),
        ("q_act", {"eval_threshold": 1.5}, "must be a probability"),
    ],
)
def test_bad_eval_options_are_rejected_clearly(name, options, message):
    with pytest.raises(ValueError, match=message):
        registry.build("halt", {"name": name, **options}, hidden_size=8)


# -- early exit -----------------------------------------------------------------------------------


def _reference_all_segments(model, inputs):
    """Every row runs max_steps segments; per step, the logits and halting logits of every row."""
    x = model.embed(inputs)
    state = model.initial_state(inputs.shape[0], "cpu")
    per_step = []
    with torch.no_grad():
        for _ in range(model.policy.max_steps):
            state = model.segment(state, x)
            per_step.append(model.heads(state))
    return per_step


def test_early_exit_matches_reading_each_row_at_its_halting_step_and_saves_updates():
    max_steps, n = 6, 16
    model = tiny_model("halt.eval_halt=q_halt", f"halt.max_steps={max_steps}")
    model.eval()
    with torch.no_grad():
        model.policy.head.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
        model.policy.head.bias.zero_()
    inputs = random_batch(n, 5)["inputs"]
    per_step = _reference_all_segments(model, inputs)
    probs = torch.stack([torch.sigmoid(h["q_halt"]) for _, h in per_step], 1)  # (rows, steps)

    def halting_steps(t):
        fired = probs[:, :-1] > t
        return torch.where(fired.any(1), fired.float().argmax(1) + 1, max_steps)

    # A threshold half-way between two observed probabilities (far from every value) that gives the
    # widest spread of halting steps.
    values = probs[:, :-1].flatten().sort().values
    candidates = (values[:-1] + values[1:]) / 2
    threshold = max(candidates.tolist(), key=lambda t: (len(halting_steps(t).unique()), -abs(t - 0.5)))
    expected_steps = halting_steps(threshold)
    assert (
        len(expected_steps.unique()) >= 3 and (expected_steps < max_steps).any() and (expected_steps == max_steps).any()
    )
    model.policy.eval_threshold = threshold

    rows = torch.arange(n)
    expected_logits = torch.stack([per_step[s - 1][0][r] for r, s in zip(rows.tolist(), expected_steps.tolist())])
    expected_q = torch.stack([per_step[s - 1][1]["q_halt"][r] for r, s in zip(rows.tolist(), expected_steps.tolist())])

    processed = []
    apply = model.core.apply
    model.core.apply = lambda update, state, x: processed.append(x.shape[0]) or apply(update, state, x)
    logits, steps, halt_logits = run_to_halt(model, inputs)

    assert steps.tolist() == expected_steps.tolist()
    assert torch.equal(logits.argmax(-1), expected_logits.argmax(-1))
    assert torch.allclose(logits, expected_logits, atol=1e-5)
    assert torch.allclose(halt_logits["q_halt"], expected_q, atol=1e-5)
    assert set(halt_logits) == {"q_halt", "q_continue"}
    updates_per_segment = len(model.core.schedule())
    assert sum(processed) == updates_per_segment * int(expected_steps.sum())
    assert sum(processed) < updates_per_segment * n * max_steps


def test_reference_rule_runs_every_row_to_max_steps():
    model = tiny_model("halt.max_steps=3")
    model.eval()
    with torch.no_grad():
        model.policy.head.bias.fill_(5.0)  # the head says "halt" everywhere; the reference rule ignores it
    inputs = random_batch(5, 2)["inputs"]
    last_logits, last_halt = _reference_all_segments(model, inputs)[-1]
    logits, steps, halt_logits = run_to_halt(model, inputs)
    assert steps.tolist() == [3] * 5
    assert torch.allclose(logits, last_logits, atol=1e-6) and torch.allclose(halt_logits["q_halt"], last_halt["q_halt"])


# -- EMA ------------------------------------------------------------------------------------------


def _module(*overrides):
    config = OmegaConf.to_container(tiny_config(*overrides), resolve=True)
    return LatentReasoningModule(config, 11, 81, 1, "stablemax")


def test_ema_is_off_by_default_and_not_a_registered_submodule():
    assert _module().ema is None
    module = _module("trainer.ema=true", "trainer.ema_decay=0.5")
    assert module.ema is not None and module.ema.decay == 0.5
    own = {id(p) for p in module.model.parameters()}
    assert {id(p) for p in module.parameters()} == own  # the optimizer and DDP see only the model
    assert all(k.startswith("model.") for k in module.state_dict())


def test_ema_builds_with_a_timm_that_has_no_stochastic_rounding(monkeypatch):
    """timm 1.0.29 (a GPU image's) has no `stochastic_rounding` argument; gpu_check failed on it."""
    import timm.utils

    import latentreason.train.ema as ema_file

    class OldModelEmaV3(timm.utils.ModelEmaV3):
        def __init__(self, model, decay=0.9999, use_warmup=False, exclude_buffers=False):
            super().__init__(model, decay=decay, use_warmup=use_warmup, exclude_buffers=exclude_buffers)

    monkeypatch.setattr(ema_file, "ModelEmaV3", OldModelEmaV3)
    model = tiny_model()
    ema = ema_file.make_ema(model, 0.5)
    assert isinstance(ema, OldModelEmaV3) and ema.decay == 0.5
    assert torch.equal(ema_parameters(ema)["lm_head.weight"], model.lm_head.weight)


def test_evaluation_uses_the_ema_weights_and_checkpoints_keep_them(monkeypatch, tmp_path):
    module = _module("trainer.ema=true", "trainer.ema_decay=0.5", "halt.max_steps=2")
    module.eval()
    ema = module.ema
    ema.update(module.model, step=1)  # first update: the average is a copy of the weights
    with torch.no_grad():
        for p in module.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ema.update(module.model, step=10**9)  # decay capped at 0.5: the average is half way
    live = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    averaged = ema_parameters(ema)
    name = "lm_head.weight"
    assert not torch.allclose(averaged[name], live[name])

    inputs = random_batch(3, 4)["inputs"]
    reference = copy.deepcopy(module.model)
    reference.load_state_dict({**reference.state_dict(), **averaged})
    expected = run_to_halt(reference, inputs)[0]
    with module.eval_weights():
        assert torch.equal(run_to_halt(module.model, inputs)[0], expected)
    assert all(torch.equal(p, live[n]) for n, p in module.model.named_parameters())  # put back

    seen = {}
    import latentreason.train.module as module_file

    def spy(model, inputs, puzzle_ids=None):
        seen["weight"] = model.lm_head.weight.detach().clone()
        return run_to_halt(model, inputs, puzzle_ids)

    monkeypatch.setattr(module_file, "run_to_halt", spy)
    batch = random_batch(3, 4)
    module._evaluate((batch["inputs"], batch["labels"], batch["puzzle_ids"]), "val")
    assert torch.equal(seen["weight"], averaged[name]) and torch.equal(module.model.lm_head.weight, live[name])

    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert torch.equal(checkpoint["ema"][name], averaged[name])
    restored = _module("trainer.ema=true", "trainer.ema_decay=0.5", "halt.max_steps=2")
    restored.on_load_checkpoint(checkpoint)
    assert torch.equal(ema_parameters(restored.ema)[name], averaged[name])
    without = _module("trainer.ema=true", "halt.max_steps=2")  # resuming a run saved without EMA
    without.on_load_checkpoint({"state_dict": module.state_dict()})
    assert torch.equal(ema_parameters(without.ema)[name], live[name])

    # `latentreason eval/solve` load the averaged weights.
    from types import SimpleNamespace

    import latentreason.inference as inference

    path = tmp_path / "ema.ckpt"
    torch.save({"hyper_parameters": {"config": module.hparams["config"]}, **checkpoint}, path)
    task = SimpleNamespace(vocab_size=11, seq_len=81, position_groups=lambda: None)  # the shape _module builds
    monkeypatch.setattr(inference, "build_task", lambda config: task)
    loaded = inference.load_checkpoint(str(path))
    assert torch.equal(loaded.model.lm_head.weight, averaged[name])


def test_q_halt_accuracy_counts_only_rows_with_a_halting_head():
    from latentreason.train.metrics import ReasoningMetrics

    base = {
        "counts": torch.tensor([4, 4, 4]),
        "token_accuracy": torch.tensor([1.0, 0.5, 1.0]),
        "exact": torch.tensor([True, False, True]),
        "steps": torch.tensor([1, 2, 3]),
    }
    without = ReasoningMetrics()
    without.update(base)
    assert math.isnan(float(without.compute()["q_halt_accuracy"]))  # `fixed` halting: nothing to be right about
    with_head = ReasoningMetrics()
    with_head.update({**base, "q_halt": torch.tensor([1.0, 1.0, -1.0])}, rows=torch.tensor([True, True, False]))
    computed = with_head.compute()  # rows 0 and 1: right, wrong
    assert (
        float(computed["q_halt_accuracy"]) == 0.5
        and float(computed["exact_accuracy"]) == 0.5
        and float(computed["steps"]) == 1.5
    )
