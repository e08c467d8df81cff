"""`latentreason import`: a checkpoint written by the reference code converts and predicts as the reference does.

The reference model is built by its own code and saved as its pretrain.py saves it
(`torch.save(model.state_dict())` of the loss head, after torch.compile: keys
`_orig_mod.model.inner....`); the command converts it with a recipe; `load_checkpoint` and
`TrainedModel.predict` (what `eval` and `solve` run) must then give the reference's predictions.
"""

from __future__ import annotations

import pytest
import torch
from reference_code import load

from latentreason.cli import main
from latentreason.inference import load_checkpoint

HRM_ARGS = [
    "recipe=hrm_sudoku",
    "core.hidden_size=64",
    "core.num_heads=4",
    "core.H_layers=1",
    "core.L_layers=1",
    "halt.max_steps=3",
]
HRM_CONFIG = dict(
    batch_size=4,
    seq_len=81,
    puzzle_emb_ndim=64,
    num_puzzle_identifiers=1,
    vocab_size=11,
    H_cycles=2,
    L_cycles=2,
    H_layers=1,
    L_layers=1,
    hidden_size=64,
    expansion=4,
    num_heads=4,
    pos_encodings="rope",
    halt_max_steps=3,
    halt_exploration_prob=0.1,
    forward_dtype="float32",
)
TRM_ARGS = [
    "recipe=trm_sudoku",
    "core.hidden_size=64",
    "core.H_cycles=2",
    "core.L_cycles=2",
    "grad.k=3",
    "halt.max_steps=2",
]
TRM_CONFIG = dict(
    batch_size=4,
    seq_len=81,
    puzzle_emb_ndim=64,
    puzzle_emb_len=16,
    num_puzzle_identifiers=1,
    vocab_size=11,
    H_cycles=2,
    L_cycles=2,
    H_layers=0,
    L_layers=2,
    hidden_size=64,
    expansion=4,
    num_heads=8,
    pos_encodings="none",
    mlp_t=True,
    halt_max_steps=2,
    halt_exploration_prob=0.1,
    forward_dtype="float32",
    no_ACT_continue=True,
)


class CompiledLike(torch.nn.Module):
    """What torch.compile's OptimizedModule does to a state dict: the module is kept as `_orig_mod`.

    (torch.compile itself takes about 15 s to import its machinery on a 2-core machine.)
    """

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self._orig_mod = module


def reference_checkpoint(tmp_path, code: str, config: dict, compiled: bool):
    """A reference model with trained-looking heads and puzzle row, saved as pretrain.py saves it."""
    if code == "hrm":
        modules = load("hrm", "models.hrm.hrm_act_v1", "models.losses")
        model_class = modules["models.hrm.hrm_act_v1"].HierarchicalReasoningModel_ACTV1
    else:
        modules = load("trm", "models.recursive_reasoning.trm", "models.losses")
        model_class = modules["models.recursive_reasoning.trm"].TinyRecursiveReasoningModel_ACTV1
    torch.manual_seed(1)
    model = model_class(config)
    with torch.no_grad():
        model.inner.q_head.weight.normal_(0, 0.2)
        model.inner.q_head.bias.normal_(0, 0.5)
        model.inner.puzzle_emb.weights.normal_(0, 0.5)
    head = modules["models.losses"].ACTLossHead(model, "stablemax_cross_entropy")
    saved = CompiledLike(head) if compiled else head
    path = tmp_path / "step_1000"
    torch.save(saved.state_dict(), path)
    assert all(k.startswith("_orig_mod.model.inner." if compiled else "model.inner.") for k in torch.load(path))
    return head, path


def reference_predictions(head, inputs):
    """What the reference's evaluation computes: halt_max_steps ACT steps, then argmax."""
    batch = {
        "inputs": inputs,
        "labels": torch.zeros_like(inputs),
        "puzzle_identifiers": torch.zeros(len(inputs), dtype=torch.long),
    }
    head.eval()
    carry = head.initial_carry(batch)
    with torch.no_grad():
        while True:
            carry, _, _, out, done = head(return_keys=["logits", "q_halt_logits"], carry=carry, batch=batch)
            if done:
                return out


@pytest.mark.parametrize("code,compiled", [("hrm", True), ("hrm", False), ("trm", True)])
def test_reference_checkpoint_imports_and_predicts_as_the_reference(tmp_path, capsys, code, compiled):
    args, config = (HRM_ARGS, HRM_CONFIG) if code == "hrm" else (TRM_ARGS, TRM_CONFIG)
    head, path = reference_checkpoint(tmp_path, code, config, compiled)
    out = tmp_path / "ours" / "final.ckpt"
    assert main(["import", f"ckpt={path}", *args, f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "reference tensors mapped" in printed and ("_orig_mod." in printed) == compiled, printed

    trained = load_checkpoint(out, device="cpu")
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(1, 11, (4, 81), generator=g)
    split = {
        "inputs": inputs,
        "labels": torch.randint(2, 11, (4, 81), generator=g),
        "puzzle_ids": torch.zeros(4, dtype=torch.long),
    }
    ours = trained.predict(split, batch_size=4)
    reference = reference_predictions(head, inputs)
    assert torch.equal(ours["predictions"], reference["logits"].argmax(-1))
    torch.testing.assert_close(ours["confidence"], torch.sigmoid(reference["q_halt_logits"]), atol=1e-5, rtol=0)
    assert ours["steps"].tolist() == [config["halt_max_steps"]] * 4


@pytest.mark.parametrize(
    "override,message",
    [
        ("core.hidden_size=32", "hidden size 64, this config has core.hidden_size=32: set core.hidden_size=64"),
        ("core.H_layers=2", "H stack has 1 layers, this config has core.H_layers=2: set core.H_layers=1"),
        ("model.puzzle_emb_len=0", "set model.puzzle_emb_len=1"),
        ("core.positions=learned", "set core.positions=rope"),
        (
            "recipe=trm_sudoku",
            "the checkpoint is an HRM (H and L stacks); this config's core is TRM: use a recipe with core=hrm",
        ),
    ],
)
def test_mismatched_config_is_one_clear_line(tmp_path, capsys, override, message):
    _, path = reference_checkpoint(tmp_path, "hrm", HRM_CONFIG, compiled=True)
    args = [*HRM_ARGS, override] if not override.startswith("recipe=") else [override, "core.hidden_size=64"]
    assert main(["import", f"ckpt={path}", *args, f"out={tmp_path / 'x.ckpt'}"]) == 2
    printed = capsys.readouterr().out
    assert message in printed.replace("\n", " ") and "Traceback" not in printed
    assert not (tmp_path / "x.ckpt").exists()


def test_files_that_are_not_reference_checkpoints(tmp_path, capsys):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    assert main(["import", f"ckpt={tmp_path / 'other.pt'}", "recipe=hrm_sudoku"]) == 2
    assert "not a state dict saved by the reference" in capsys.readouterr().out
    (tmp_path / "text.pt").write_text("hello")
    assert main(["import", f"ckpt={tmp_path / 'text.pt'}", "recipe=hrm_sudoku"]) == 2
    assert "could not be read" in capsys.readouterr().out
    assert main(["import", f"ckpt={tmp_path / 'other.pt'}"]) == 2
    assert "usage: latentreason import" in capsys.readouterr().out


def test_identifiers_name_the_puzzle_rows(tmp_path, capsys):
    _, path = reference_checkpoint(tmp_path, "hrm", HRM_CONFIG, compiled=True)
    (tmp_path / "identifiers.json").write_text('["abcd1234|||t3|||0271845936"]')
    out = tmp_path / "named.ckpt"
    assert (
        main(["import", f"ckpt={path}", *HRM_ARGS, f"identifiers={tmp_path / 'identifiers.json'}", f"out={out}"]) == 0
    )
    assert "puzzle rows named from identifiers.json" in capsys.readouterr().out
    assert load_checkpoint(out, device="cpu").puzzle_names == ["abcd1234|t3-0271845936"]
    (tmp_path / "identifiers.json").write_text('["<blank>", "abcd1234"]')
    assert (
        main(["import", f"ckpt={path}", *HRM_ARGS, f"identifiers={tmp_path / 'identifiers.json'}", f"out={out}"]) == 2
    )
    assert "holds 2 names, the checkpoint's puzzle table 1 rows" in capsys.readouterr().out
