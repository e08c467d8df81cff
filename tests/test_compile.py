"""trainer.compile and precision: compiled training matches eager, evaluation runs eager, when `auto` compiles; bf16 and the bf16 state."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from latentreason.inference import run_to_halt
from latentreason.model import build_model

VOCAB, SEQ = 11, 16


def tiny_config(init_bias: float = -5.0) -> dict:
    return {
        "core": {
            "name": "hrm",
            "hidden_size": 16,
            "num_heads": 2,
            "mlp_multiple": 16,
            "H_layers": 1,
            "L_layers": 1,
            "H_cycles": 1,
            "L_cycles": 2,
        },
        "grad": {"name": "one_step"},
        "halt": {"name": "q_act", "max_steps": 6, "init_bias": init_bias, "eval_halt": "q_halt", "eval_threshold": 0.5},
        "model": {"puzzle_emb_len": 1},
    }


def test_evaluation_runs_the_core_eager_and_matches_it():
    """A compiled model in eval mode compiles nothing: early exit (rows leaving at different segments)
    and inference mode would each need graphs of their own (they once hit dynamo's recompile limit)."""
    torch.manual_seed(0)
    eager = build_model(tiny_config(init_bias=0.0), VOCAB, SEQ)
    compiled = build_model(tiny_config(init_bias=0.0), VOCAB, SEQ, compile=True)
    compiled.load_state_dict(eager.state_dict())
    eager.eval(), compiled.eval()
    inputs = torch.randint(1, VOCAB, (24, SEQ))
    torch._dynamo.reset()
    counters.clear()
    with torch.inference_mode():
        want_logits, want_steps, _ = run_to_halt(eager, inputs)
        got_logits, got_steps, _ = run_to_halt(compiled, inputs)
    assert counters["stats"]["unique_graphs"] == 0, "evaluation compiled graphs"
    assert torch.equal(got_steps, want_steps)
    torch.testing.assert_close(got_logits, want_logits)
    # The same model in training picks its compiled updates (they compile in the TRM run below):
    # without them the zero above would prove nothing.
    core = compiled.core
    names = list(core._updates)
    assert all(core.update_function(n) is core._updates[n] for n in names)
    compiled.train()
    assert all(core.update_function(n) is core._compiled[n] is not core._updates[n] for n in names)


def tiny_run(tmp_path, name: str, *overrides: str, recipe: str = "hrm_sudoku") -> dict:
    from conftest import TINY_RUN
    from latentreason.config import load_config
    from latentreason.train.run import run

    config = [
        f"recipe={recipe}",
        *(o for o in TINY_RUN if not o.startswith("recipe=")),
        "trainer.max_steps=3",
        "halt.max_steps=4",
        f"output_dir={tmp_path}",
        f"run_name={name}",
        *overrides,
    ]
    metrics = run(load_config(config), recipe)
    assert (tmp_path / name / "final.ckpt").is_file()
    return metrics


def test_a_compiled_trm_run_trains_evaluates_and_finishes(tmp_path):
    """The README's recipe compiled, with an evaluation during training and the final one.

    Before, its final evaluation (Lightning's test loop, under inference mode) died with
    FailOnRecompileLimitHit; before that, early exit recompiled per batch size. Training compiles;
    evaluation runs eager (`Core.set_updates`).
    """
    trm = ["core.num_layers=1", "core.H_cycles=2", "core.L_cycles=1", "grad.k=2"]
    torch._dynamo.reset()
    counters.clear()
    # Training needs a graph with and one without gradient per update function (and a spare); any
    # more means evaluation compiled its own, which the README's run could not afford.
    with torch._dynamo.config.patch(recompile_limit=3):
        metrics = tiny_run(
            tmp_path,
            "compiled",
            *trm,
            "trainer.compile=true",
            "trainer.max_steps=4",
            "trainer.eval_every=2",
            recipe="trm_sudoku",
        )
    assert counters["stats"]["unique_graphs"] > 0, "the run compiled nothing"
    assert 0.0 <= metrics["exact_accuracy"] <= 1.0


def test_a_bf16_mixed_run_trains_on_cpu(tmp_path):
    """The GPU's precision on CPU: autocast to bf16 through training and evaluation, the state fp32 or bf16."""
    tiny_run(tmp_path, "bf16", "trainer.precision=bf16-mixed")
    tiny_run(tmp_path, "fp32", "trainer.precision=32-true")
    tiny_run(tmp_path, "bf16_state", "trainer.precision=bf16-mixed", "model.state_dtype=autocast")
    bf16, fp32, bf16_state = (
        torch.load(tmp_path / name / "final.ckpt", weights_only=True)["state_dict"]
        for name in ("bf16", "fp32", "bf16_state")
    )
    # Same seed, same data: only the precision differs, and CPU runs are otherwise bitwise reproducible.
    assert bf16.keys() == fp32.keys() == bf16_state.keys()
    assert any(not torch.equal(bf16[k], fp32[k]) for k in fp32)
    assert any(not torch.equal(bf16[k], bf16_state[k]) for k in fp32)


SUDOKU_CORES = {  # every core a Sudoku CPU preset compiles (trainer.compile=auto), at toy size
    "looped": {"name": "looped", "hidden_size": 16, "num_heads": 2, "mlp_multiple": 16, "L_layers": 1, "L_cycles": 2},
    "trm": {"name": "trm", "hidden_size": 16, "num_heads": 2, "mlp_multiple": 16, "num_layers": 1, "mixer": "mlp",
            "H_cycles": 2, "L_cycles": 2},
    "latent_diffusion": {"name": "latent_diffusion", "hidden_size": 16, "num_heads": 2, "mlp_multiple": 16,
                         "num_layers": 1, "num_levels": 4},
}  # fmt: skip


@pytest.mark.parametrize("core", sorted(SUDOKU_CORES))
def test_a_compiled_training_segment_matches_eager_for_every_sudoku_core(core):
    """Loss and every gradient of one supervised segment, compiled against eager, with the same weights and noise."""
    from latentreason.train.deep_supervision import Carry, train_segment

    config = {**tiny_config(), "core": SUDOKU_CORES[core], "grad": {"name": "tbptt", "k": 2}}
    torch.manual_seed(0)
    eager = build_model(config, VOCAB, SEQ)
    compiled = build_model(config, VOCAB, SEQ, compile=True)
    compiled.load_state_dict(eager.state_dict())
    inputs = torch.randint(1, VOCAB, (6, SEQ))
    batch = {
        "inputs": inputs,
        "labels": torch.randint(1, VOCAB, (6, SEQ)),
        "puzzle_ids": torch.zeros(6, dtype=torch.long),
    }
    torch._dynamo.reset()
    counters.clear()
    losses = []
    for model in (eager, compiled):
        torch.manual_seed(1)
        _, loss, _, _ = train_segment(model, Carry.start(model, batch), batch)
        loss.backward()
        losses.append(loss)
    assert counters["stats"]["unique_graphs"] > 0, "nothing was compiled"
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-4)
    for (name, want), got in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        assert (want.grad is None) == (got.grad is None), name
        if want.grad is not None:
            torch.testing.assert_close(got.grad, want.grad, rtol=1e-3, atol=1e-5, msg=name)


def test_compile_auto_compiles_long_runs_where_a_compiler_exists(monkeypatch):
    from omegaconf import OmegaConf

    from latentreason import hardware

    def trainer(**settings):
        return OmegaConf.create({"accelerator": "cpu", "compile": "auto", "max_steps": 2000, **settings})

    monkeypatch.setattr(hardware.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert hardware.compile_enabled(trainer())
    assert not hardware.compile_enabled(trainer(max_steps=hardware.COMPILE_PAYS_AFTER_STEPS - 1))
    assert hardware.compile_enabled(trainer(compile=True, max_steps=1)) and not hardware.compile_enabled(
        trainer(compile=False)
    )
    monkeypatch.setattr(
        hardware.shutil, "which", lambda name: None
    )  # no C++ compiler: inductor cannot build CPU kernels
    assert not hardware.compile_enabled(trainer())


def test_state_dtype_autocast_holds_the_state_in_bf16_and_stays_close_to_fp32():
    """`model.state_dtype=autocast`: under bf16 autocast the carry is bf16 (the reference's forward
    dtype); without autocast, or with the default, nothing changes; the logits stay near fp32's."""
    from conftest import random_batch, tiny_model
    from latentreason.train.deep_supervision import Carry, train_segment

    default, low = tiny_model(), tiny_model("model.state_dtype=autocast")
    low.load_state_dict(default.state_dict())
    batch = random_batch(8, seed=0)
    results = {}
    for name, model in (("default", default), ("low", low)):
        for autocast in (False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                carry, loss, _, _ = train_segment(model, Carry.start(model, batch), batch)
                logits, _ = model.heads(carry.state)
            loss.backward()
            assert model.embed_tokens.weight.grad.abs().sum() > 0  # the cast passes gradient to the input
            model.zero_grad()
            results[name, autocast] = carry.state, logits.float()
    assert all(v.dtype == torch.bfloat16 for v in results["low", True][0].values())
    assert all(v.dtype == torch.float32 for key in results if key != ("low", True) for v in results[key][0].values())
    torch.testing.assert_close(results["low", False][1], results["default", False][1], rtol=0, atol=0)
    want, got = results["default", False][1], results["low", True][1]
    assert (got - want).abs().mean() < 0.05 * want.abs().mean()
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.9


def test_a_bad_state_dtype_names_the_setting():
    from conftest import tiny_model
    from latentreason.errors import ConfigError

    with pytest.raises(ConfigError, match="model.state_dtype must be 'float32' or 'autocast', got 'bf16'"):
        tiny_model("model.state_dtype=bf16")
