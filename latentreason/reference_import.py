"""Weights saved by the reference code (sapientinc/HRM, TinyRecursiveModels) into our models.

The reference's `pretrain.py` saves `model.state_dict()` of its loss head around the ACT model,
after torch.compile (so keys read `_orig_mod.model.inner....`). Its layers are the ones ours are built from, laid out
the same way: the fused QKV projection holds all query heads, then all key heads, then all value
heads; rotary pairs dims (i, i + d/2) on both sides; SwiGLU's gate_up is [gate; up]. So
converting is renaming, plus one change of form: TRM's Q head has two outputs even without a
continue value (`no_ACT_continue`); our `halt_only` head keeps the first (q_halt), the only one
TRM reads. The puzzle-embedding table keeps its width (`puzzle_emb_ndim`, our
`model.puzzle_emb_ndim`); both sides zero-pad it to the positions it fills.

Every size is checked against the model built from the user's config first, and a mismatch is
one line naming the config key to change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from latentreason.atomic import write_atomically
from latentreason.errors import ConfigError

COMPILE_PREFIX = "_orig_mod."  # torch.compile's wrapper
LOSS_HEAD_PREFIX = "model."  # pretrain.py saves its ACTLossHead, whose `model` is the ACT model

# Inside one block: reference name -> our name.
BLOCK_NAMES = {
    "self_attn.qkv_proj.weight": "attn.qkv.weight",
    "self_attn.o_proj.weight": "attn.out.weight",
    "mlp.gate_up_proj.weight": "mlp.gate_up.weight",
    "mlp.down_proj.weight": "mlp.down.weight",
    "mlp_t.gate_up_proj.weight": "token_mlp.gate_up.weight",
    "mlp_t.down_proj.weight": "token_mlp.down.weight",
}


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """The state dict keyed as the ACT model names its tensors (`inner.`...), and whether it was compiled.

    pretrain.py saves its loss head (`model.` before every key) after torch.compile (`_orig_mod.`
    before that); a state dict of the bare model has neither.
    """
    compiled = any(k.startswith(COMPILE_PREFIX) for k in state)
    state = {k.removeprefix(COMPILE_PREFIX): v for k, v in state.items()}
    if any(k.startswith(LOSS_HEAD_PREFIX + "inner.") for k in state):
        state = {k.removeprefix(LOSS_HEAD_PREFIX): v for k, v in state.items()}
    return state, compiled


def is_reference_state(state: Mapping) -> bool:
    """True for a state dict saved by the reference's pretrain.py (or of its bare ACT model)."""
    return (
        isinstance(state, Mapping)
        and all(isinstance(k, str) for k in state)
        and any(k.startswith("inner.") for k in strip_prefixes(state)[0])
    )


def _layers(state: Mapping[str, torch.Tensor], level: str) -> int:
    indices = {int(m.group(1)) for k in state if (m := re.match(rf"inner\.{level}_level\.layers\.(\d+)\.", k))}
    return max(indices) + 1 if indices else 0


def reference_architecture(state: Mapping[str, torch.Tensor]) -> str:
    """'hrm' (H and L stacks: sapientinc/HRM, or TRM's HRM variant) or 'trm' (one L stack)."""
    return "hrm" if _layers(state, "H") else "trm"


def _stack_names(core) -> dict[str, tuple[str, str]]:
    """Reference stack -> (our stack's name, the config key of its layer count), for our core."""
    name = type(core).__name__
    if name == "HRM":
        return {"H": ("core.H", "core.H_layers"), "L": ("core.L", "core.L_layers")}
    if name == "TRM":
        return {"L": ("core.net", "core.num_layers")}
    raise ConfigError(
        f"the reference code has HRM and TRM models; this config's core is {name}: use an hrm or trm recipe"
    )


def convert_state_dict(reference: Mapping[str, torch.Tensor], model) -> tuple[dict[str, torch.Tensor], str]:
    """Our `model`'s state dict holding the reference's weights, and a one-line account of the mapping.

    `reference` is a state dict of the reference's ACT model (with or without `_orig_mod.`);
    `model` is a `ReasoningModel` built from the config the weights are meant for. Raises
    ConfigError naming the first size or structure that does not match.
    """
    state, compiled = strip_prefixes(reference)
    if not is_reference_state(state):
        raise ConfigError("this is not a state dict saved by the reference's pretrain.py (no keys under 'inner.')")
    arch = reference_architecture(state)
    ours_arch = {"HRM": "hrm", "TRM": "trm"}.get(type(model.core).__name__)
    if ours_arch != arch:
        what = "an HRM (H and L stacks)" if arch == "hrm" else "a TRM (one network, L_level only)"
        raise ConfigError(
            f"the checkpoint is {what}; this config's core is {type(model.core).__name__}: use a recipe with core={arch}"
        )
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def put(ours: str, ref: str, tensor: torch.Tensor, key_hint: str) -> None:
        if ours not in target:
            raise ConfigError(f"the checkpoint has {ref}, which this config's model has no place for ({key_hint})")
        if tuple(tensor.shape) != tuple(target[ours].shape):
            raise ConfigError(
                f"the checkpoint's {ref} has shape {tuple(tensor.shape)}, this config's model expects "
                f"{tuple(target[ours].shape)}: {key_hint}"
            )
        out[ours] = tensor.detach().to(target[ours].dtype).clone()
        used.add(ref)

    hidden = model.core.hidden_size
    vocab, ref_hidden = state["inner.embed_tokens.embedding_weight"].shape
    if ref_hidden != hidden:
        raise ConfigError(
            f"the checkpoint has hidden size {ref_hidden}, this config has core.hidden_size={hidden}: set core.hidden_size={ref_hidden}"
        )
    if vocab != model.embed_tokens.num_embeddings:
        raise ConfigError(
            f"the checkpoint's vocabulary has {vocab} tokens, this task's has {model.embed_tokens.num_embeddings}: use the task it was trained on"
        )
    put(
        "embed_tokens.weight",
        "inner.embed_tokens.embedding_weight",
        state["inner.embed_tokens.embedding_weight"],
        "task vocabulary",
    )
    put("lm_head.weight", "inner.lm_head.weight", state["inner.lm_head.weight"], "task vocabulary")

    # Stacks and their blocks.
    for level, (ours, layers_key) in _stack_names(model.core).items():
        count, expected = _layers(state, level), len(model.get_submodule(ours).blocks)
        if count != expected:
            raise ConfigError(
                f"the checkpoint's {level} stack has {count} layers, this config has {layers_key}={expected}: set {layers_key}={count}"
            )
        for key in [k for k in state if k.startswith(f"inner.{level}_level.layers.")]:
            index, _, rest = key.removeprefix(f"inner.{level}_level.layers.").partition(".")
            if rest not in BLOCK_NAMES:
                raise ConfigError(f"the checkpoint has {key}, which no block of ours holds")
            if rest.startswith("mlp_t.") and getattr(model.core, "mixer", "attn") != "mlp":
                raise ConfigError(
                    f"the checkpoint mixes positions by an MLP (mlp_t: {key}); set core.mixer=mlp (TRM only)"
                )
            hint = "check core.num_heads, core.expansion and core.mlp_multiple (the reference rounds MLP widths to 256)"
            if rest.startswith("mlp_t."):
                hint = "the token-mixing MLP is as wide as the sequence: check the task's size and model.puzzle_emb_len"
            put(f"{ours}.blocks.{index}.{BLOCK_NAMES[rest]}", key, state[key], hint)

    # Fixed start states: HRM's z_H/z_L, TRM's y (its z_H) and z (its z_L).
    fields = dict(zip(("H", "L"), model.core.state_fields))
    for level, field in fields.items():
        put(f"core.{field}_init", f"inner.{level}_init", state[f"inner.{level}_init"], "core.hidden_size")

    # Halting head.
    weight, bias = state["inner.q_head.weight"], state["inner.q_head.bias"]
    head = getattr(model.policy, "head", None)
    if head is None:
        used.update(("inner.q_head.weight", "inner.q_head.bias"))  # a policy without a head: the Q head is not used
    else:
        rows = head.weight.shape[0]  # 2 for q_act, 1 for halt_only (TRM reads only q_halt)
        put("policy.head.weight", "inner.q_head.weight", weight[:rows], "halt")
        put("policy.head.bias", "inner.q_head.bias", bias[:rows], "halt")

    # Positions.
    if "inner.embed_pos.embedding_weight" in state:
        if model.positions is None:
            raise ConfigError(
                "the checkpoint has learned position embeddings (pos_encodings: learned): set core.positions=learned"
            )
        put(
            "positions",
            "inner.embed_pos.embedding_weight",
            state["inner.embed_pos.embedding_weight"],
            "check the task's sequence length and model.puzzle_emb_len",
        )
    elif model.positions is not None:
        raise ConfigError("the checkpoint uses rotary positions (pos_encodings: rope): set core.positions=rope")

    # Puzzle embeddings.
    table = state.get("inner.puzzle_emb.weights")
    if table is not None:
        ids, width = table.shape
        needed = -(-width // hidden)
        if model.puzzle is None or model.puzzle.length < needed:
            have = 0 if model.puzzle is None else model.puzzle.length
            raise ConfigError(
                f"the checkpoint's puzzle embeddings fill {needed} position(s) ({width} values), this config has model.puzzle_emb_len={have}: set model.puzzle_emb_len={needed}"
            )
        if model.puzzle.width != width:
            raise ConfigError(
                f"the checkpoint learns {width} values per puzzle, this config {model.puzzle.width} "
                f"(model.puzzle_emb_len={model.puzzle.length} x core.hidden_size={hidden}): set model.puzzle_emb_ndim={width}"
            )
        if model.puzzle.table.shape[0] != ids:
            raise ConfigError(
                f"the checkpoint's puzzle-embedding table has {ids:,} rows, the model was built for {model.puzzle.table.shape[0]:,}"
            )
        put("puzzle.table", "inner.puzzle_emb.weights", table, "model.puzzle_emb_ndim")
    elif model.puzzle is not None:
        raise ConfigError(
            f"the checkpoint has no puzzle embeddings (puzzle_emb_ndim: 0), this config has model.puzzle_emb_len={model.puzzle.length}: set model.puzzle_emb_len=0"
        )

    left = sorted(set(state) - used)
    if left:
        raise ConfigError(f"the checkpoint holds {len(left)} tensor(s) with no place in this model, e.g. {left[0]}")
    missing = sorted(set(target) - set(out))
    if missing:
        raise ConfigError(
            f"this config's model has {len(missing)} tensor(s) the checkpoint lacks, e.g. {missing[0]} (model.grid_positions adds some; turn it off)"
        )
    count = sum(t.numel() for k, t in out.items() if k != "puzzle.table")
    report = (
        f"{len(used)} reference tensors mapped ({arch.upper()}, {count:,} weights"
        + (f", puzzle table {table.shape[0]:,} x {table.shape[1]}" if table is not None else "")
        + (", torch.compile prefix '_orig_mod.' removed" if compiled else "")
        + (", Q head: q_halt row kept (halt_only)" if head is not None and head.weight.shape[0] == 1 else "")
        + (", Q head dropped (the halt policy has none)" if head is None else "")
        + ")"
    )
    return out, report


def read_reference_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a file saved by the reference's pretrain.py, or a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist (the reference saves checkpoints as checkpoints/<project>/<run>/step_<N>)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to unpickle: damaged, or not a PyTorch file
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"{path} could not be read as a PyTorch state dict ({first})") from None
    if isinstance(state, dict) and "state_dict" in state and "hyper_parameters" in state:
        raise ConfigError(f"{path} is already a latentreason checkpoint: give it to eval, solve or init_from= as it is")
    if not is_reference_state(state):
        raise ConfigError(
            f"{path} is not a state dict saved by the reference's pretrain.py (no 'inner.' keys under '_orig_mod.model.')"
        )
    return state


def arc_names(identifiers: list[str]) -> list[str]:
    """The reference's ARC puzzle identifiers (its identifiers.json) in our naming of task variants.

    It names a variant `task|||t<k>|||<colours>` (dihedral transform k, then colour c -> colours[c]),
    the original `task`, and keeps id 0 as `<blank>`; we write `task|t<k>-<colours>` with the same
    transform numbers and colour maps (tests/test_parity_arc.py checks they de-augment alike).
    """
    from latentreason.tasks.arc_data import IDENTITY

    out = []
    for name in identifiers:
        parts = str(name).split("|||")
        if len(parts) == 3 and parts[1].startswith("t"):
            out.append(f"{parts[0]}|{parts[1]}-{parts[2]}")
        elif len(parts) == 1 and name != "<blank>":
            out.append(f"{name}|{IDENTITY.name}")
        else:
            out.append(str(name))
    return out


def read_identifiers(path: str | Path, rows: int) -> list[str]:
    """Our names for the rows of a reference puzzle table, from the identifiers.json of its dataset."""
    import json

    try:
        names = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"identifiers={path} could not be read as the reference's identifiers.json ({error})"
        ) from None
    if not isinstance(names, list) or len(names) != rows:
        count = len(names) if isinstance(names, list) else "no list of"
        raise ConfigError(
            f"identifiers={path} holds {count} names, the checkpoint's puzzle table {rows:,} rows: use the identifiers.json of the data it was trained on"
        )
    return arc_names(names)


def import_checkpoint(
    path: str | Path, overrides: list[str], out: str | Path | None = None, identifiers: str | Path | None = None
) -> tuple[Path, str]:
    """Convert the reference checkpoint `path` into a latentreason checkpoint; returns where, and what was mapped.

    `overrides` compose the config as for `latentreason run` (a recipe, then key=value); the
    paper preset is the default here, whatever the machine, since the reference's checkpoints are
    paper-sized. The written checkpoint holds the weights and the config, which is what
    `eval`, `solve` and `init_from=` read; it has no optimizer state, so it cannot be resumed.
    `identifiers` (the reference dataset's identifiers.json) names the puzzle-table rows, so that
    ARC variants find their rows by name rather than by position.
    """
    from omegaconf import OmegaConf

    from latentreason.config import load_config
    from latentreason.model import build_model
    from latentreason.tasks.base import build_task

    state = read_reference_state(path)
    if not any(o.startswith("preset=") for o in overrides):
        overrides = [*overrides, "preset=paper"]
    config = load_config(overrides)
    task = build_task(config)
    table = strip_prefixes(state)[0].get("inner.puzzle_emb.weights")
    ids = table.shape[0] if table is not None else 1
    model = build_model(config, task.vocab_size, task.seq_len, ids, False, task.position_groups())
    weights, report = convert_state_dict(state, model)
    model.load_state_dict(weights)
    names = None
    if identifiers is not None:
        if table is None:
            raise ConfigError("identifiers= names the rows of a puzzle-embedding table, and this checkpoint has none")
        names = read_identifiers(identifiers, ids)
        report = report[:-1] + f", puzzle rows named from {Path(identifiers).name})"
    out = Path(out) if out else Path(config.output_dir) / f"import-{Path(path).name}" / "final.ckpt"
    resolved = OmegaConf.to_container(config, resolve=True)
    checkpoint = {
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "hyper_parameters": {
            "config": resolved,
            "vocab_size": task.vocab_size,
            "seq_len": task.seq_len,
            "num_puzzle_ids": ids,
            "loss": task.loss,
            "position_groups": None,
        },
        "puzzle_names": names,  # None: rows are matched to the data's identifiers by position
        "global_step": 0,
        "imported_from": str(Path(path).resolve()),
    }
    write_atomically(out, lambda handle: torch.save(checkpoint, handle))  # whole or absent, as every checkpoint
    OmegaConf.save(config, out.parent / "config.yaml")
    return out, report
