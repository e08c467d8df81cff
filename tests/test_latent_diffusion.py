import torch

from latentreason.config import load_config
from latentreason.model import build_model


def _model(**kw):
    torch.manual_seed(0)
    overrides = [f"core.{k}={v}" for k, v in kw.items()]
    config = load_config(
        [
            "recipe=hrm_sudoku",
            "preset=paper",
            "core=latent_diffusion",
            "core.hidden_size=32",
            "core.num_heads=2",
            "core.num_layers=1",
            "core.mlp_multiple=16",
            "halt=fixed",
            "halt.max_steps=4",
            *overrides,
        ]
    )
    return build_model(config, 6, 16, 1)


def test_training_starts_from_a_noised_answer_at_a_schedule_level():
    model = _model(num_levels=4)
    target = torch.randn(64, 17, 32)
    torch.manual_seed(1)
    state = model.core.initial_state(64, 17, "cpu", target=target)
    levels = state["level"].flatten()
    assert set((levels * 4).round().tolist()) <= {1.0, 2.0, 3.0, 4.0} and len(set(levels.tolist())) > 1
    # Independent check: where level == 1 the latent is pure noise, elsewhere it interpolates to the answer.
    noise_part = (state["z"] - (1 - state["level"]) * target) / state["level"]
    assert torch.allclose(noise_part.std(), torch.tensor(1.0), atol=0.05)

    def corr(a, b):
        return torch.corrcoef(torch.stack((a.flatten(), b.flatten())))[0, 1]

    assert abs(corr(noise_part, target)) < 0.05  # what is left after removing the answer is independent noise
    quarter = levels == 0.25
    assert quarter.any() and corr(state["z"][quarter], target[quarter]) > 0.9  # level 1/4: mostly the answer
    assert abs(corr(state["z"][levels == 1], target[levels == 1])) < 0.05  # level 1: nothing of it


def test_renoise_is_a_ddim_step_and_inference_reaches_level_zero():
    model = _model(num_levels=4)
    model.eval()
    x = model.embed(torch.randint(1, 6, (3, 16)))
    state = model.initial_state(3, "cpu")
    assert torch.all(state["level"] == 1)
    levels = []
    for _ in range(4):
        before = dict(state)
        state = model.segment(state, x)
        # By hand: implied noise from the old latent, re-mixed at the lower level with the new prediction.
        eps = (before["z"] - (1 - before["level"]) * state["clean"]) / before["level"]
        lower = before["level"] - 0.25
        assert torch.allclose(state["z"], (1 - lower) * state["clean"] + lower * eps, atol=1e-5)
        levels.append(float(state["level"][0]))
    assert levels == [0.75, 0.5, 0.25, 0.0]
    assert torch.allclose(state["z"], state["clean"], atol=1e-6)  # at level 0 the latent is the prediction


def test_schedule_and_readout():
    model = _model(updates_per_segment=2)
    assert [u.name for u in model.core.schedule()] == ["denoise", "renoise", "denoise", "renoise"]
    state = model.segment(model.initial_state(2, "cpu"), model.embed(torch.randint(1, 6, (2, 16))))
    assert model.core.readout(state) is state["clean"]


def test_train_start_noise_trains_from_pure_noise_as_inference_does():
    from latentreason.train.deep_supervision import Carry, train_segment

    model = _model(num_levels=4, train_start="noise")
    assert not model.core.uses_target  # the trainer does not hand it the answer
    batch = {"inputs": torch.randint(1, 6, (8, 16)), "labels": torch.randint(2, 6, (8, 16))}
    batch["puzzle_ids"] = torch.zeros(8, dtype=torch.long)
    model.train()
    carry, *_ = train_segment(model, Carry.start(model, batch), batch)
    assert torch.allclose(carry.state["level"].flatten(), torch.full((8,), 0.75))  # every fresh row began at level 1
    assert _model(num_levels=4).core.uses_target  # the default still starts from noised answers


def test_train_start_must_be_known():
    import pytest

    from latentreason import ConfigError

    with pytest.raises(ConfigError, match="core.train_start must be one of 'answer', 'noise'"):
        _model(train_start="target")
