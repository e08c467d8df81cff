"""Other implementations timed beside ours by `latentreason bench`, at the recipe's dimensions and batch.

- `hrm-pytorch` (PyPI, lucidrains; import `HRM`): for the `hrm` and `looped` cores. Differs from
  HRM: levels are combined by RMSNorm + concatenation + a projection (not by addition), blocks are
  x-transformers pre-norm Encoders with learned norm gains, no Q-ACT head and so no bootstrap
  segment, plain cross-entropy. Its one-step gradient keeps the last L and H updates, as HRM.
- `tiny-recursive-model` (PyPI, lucidrains): for the `trm` core with `mixer: mlp`. Its MLPMixer1D
  is pre-norm LayerNorm + GELU (TRM: post-norm RMSNorm + SwiGLU), the token-mixing width is
  4 x hidden (ours: a SwiGLU of the sequence length), and its halting head reads the mean over positions.
- The reference HRM (`../shared/reference/hrm`, sapientinc/HRM, when that folder is present): the
  same architecture as our `hrm` core, except that its SwiGLU width is always rounded to a multiple
  of 256 (our CPU presets round to 32, so at hidden 64 its MLP is 256 wide, ours 192). It needs
  FlashAttention: a stand-in module computing the same thing with SDPA is put in `sys.modules`.

All are compared per FLOP (their own FLOPs counted the same way as ours), since their sizes differ.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from latentreason.bench import Row, count_flops, spread, time_calls


def reference_dir() -> Path | None:
    """$LATENTREASON_REFERENCE, or the first `shared/reference` folder beside the checkout or above it."""
    if os.environ.get("LATENTREASON_REFERENCE"):
        return Path(os.environ["LATENTREASON_REFERENCE"])
    return next(
        (p / "shared" / "reference" for p in Path(__file__).resolve().parents if (p / "shared" / "reference").is_dir()),
        None,
    )


def _dims(config) -> dict:
    c = config.core
    from latentreason.cores.blocks import swiglu_width

    hidden = int(c.hidden_size)
    return {
        "hidden": hidden,
        "heads": int(c.get("num_heads", 8)),
        "width": swiglu_width(hidden, float(c.expansion), int(c.mlp_multiple)),
    }


def _batch(task, batch_size: int, device):
    generator = torch.Generator().manual_seed(0)
    seq = torch.randint(1, task.vocab_size, (batch_size, task.seq_len), generator=generator).to(device)
    labels = torch.randint(1, task.vocab_size, (batch_size, task.seq_len), generator=generator).to(device)
    return seq, labels


def _timed(name, what, step, device, warmup, steps, batch_size, length, autocast_dtype, notes) -> Row:
    def run():
        with torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else _null():
            step()

    flops = count_flops(run)
    _, times = time_calls(run, device, warmup, steps)
    return Row(name, what, spread(times), flops, batch_size, length, notes)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def hrm_pytorch_row(config, task, batch_size, device, autocast_dtype, warmup, steps) -> Row | None:
    if importlib.util.find_spec("HRM") is None or config.core.name not in ("hrm", "looped"):
        return None
    from HRM import HRM

    d, c = _dims(config), config.core
    if c.name == "hrm":
        depths, reasoning, period = (int(c.L_layers), int(c.H_layers)), int(c.H_cycles), int(c.L_cycles)
    else:  # looped: one stack; matched as one level run L_cycles times
        depths, reasoning, period = (int(c.L_layers),), int(c.L_cycles), 1
    networks = [
        {
            "dim": d["hidden"],
            "depth": n,
            "heads": d["heads"],
            "attn_dim_head": d["hidden"] // d["heads"],
            "ff_glu": True,
            "ff_mult": d["width"] / d["hidden"],
            "rotary_pos_emb": True,
            "attn_flash": True,
        }
        for n in depths
    ]
    model = HRM(
        networks=networks,
        dim=d["hidden"],
        num_tokens=task.vocab_size,
        reasoning_steps=reasoning,
        **({"relative_period": period} if len(depths) > 1 else {}),
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    seq, labels = _batch(task, batch_size, device)
    state = {"hiddens": None}

    def step():
        loss, hiddens, _ = model(seq, state["hiddens"], labels=labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state["hiddens"] = tuple(hiddens)

    return _timed(
        "hrm-pytorch",
        "PyPI hrm-pytorch: concat+project levels, pre-norm x-transformers blocks, no ACT",
        step,
        device,
        warmup,
        steps,
        batch_size,
        task.seq_len,
        autocast_dtype,
        "no Q head / bootstrap; AdamW",
    )


def tiny_recursive_row(config, task, batch_size, device, autocast_dtype, warmup, steps) -> Row | None:
    if importlib.util.find_spec("tiny_recursive_model") is None or config.core.get("mixer") != "mlp":
        return None
    from tiny_recursive_model import MLPMixer1D, TinyRecursiveModel

    c = config.core
    hidden = int(c.hidden_size)
    model = TinyRecursiveModel(
        dim=hidden,
        num_tokens=task.vocab_size,
        network=MLPMixer1D(dim=hidden, depth=int(c.num_layers), seq_len=task.seq_len),
        num_refinement_blocks=int(c.H_cycles),
        num_latent_refinements=int(c.L_cycles),
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    seq, labels = _batch(task, batch_size, device)
    outputs, latents = model.get_initial()
    state = {
        "outputs": outputs.expand(batch_size, task.seq_len, hidden),
        "latents": latents.expand(batch_size, task.seq_len, hidden),
    }

    def step():
        loss, _, outputs, latents, _, _ = model(seq, state["outputs"], state["latents"], labels=labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.update(outputs=outputs, latents=latents)

    return _timed(
        "tiny-recursive-model",
        "PyPI tiny-recursive-model: pre-norm LayerNorm+GELU mixer, halting head only",
        step,
        device,
        warmup,
        steps,
        batch_size,
        task.seq_len,
        autocast_dtype,
        "no bootstrap; AdamW",
    )


def flash_attn_standin() -> types.ModuleType:
    """A `flash_attn` module whose flash_attn_func is SDPA: the reference's layout (batch, seq, heads, dim)."""
    module = types.ModuleType("flash_attn")

    def flash_attn_func(q, k, v, causal=False, **kwargs):
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
        return out.transpose(1, 2)

    module.flash_attn_func = flash_attn_func
    return module


def reference_hrm_row(
    config, task, batch_size, device, autocast_dtype, warmup, steps, compile: bool = False
) -> Row | None:
    folder = (reference_dir() or Path("/nonexistent")) / "hrm"
    if config.core.name != "hrm" or not (folder / "models" / "hrm" / "hrm_act_v1.py").is_file():
        return None
    sys.modules.setdefault("flash_attn", flash_attn_standin())
    sys.path.insert(0, str(folder))
    try:
        from models.hrm.hrm_act_v1 import HierarchicalReasoningModel_ACTV1
        from models.losses import ACTLossHead
    finally:
        sys.path.remove(str(folder))
    c = config.core
    puzzle_len = int(config.model.get("puzzle_emb_len", 0))
    model_config = {
        "batch_size": batch_size,
        "seq_len": task.seq_len,
        "puzzle_emb_ndim": puzzle_len * int(c.hidden_size),
        "num_puzzle_identifiers": 1,
        "vocab_size": task.vocab_size,
        "H_cycles": int(c.H_cycles),
        "L_cycles": int(c.L_cycles),
        "H_layers": int(c.H_layers),
        "L_layers": int(c.L_layers),
        "hidden_size": int(c.hidden_size),
        "expansion": float(c.expansion),
        "num_heads": int(c.num_heads),
        "pos_encodings": str(c.positions),
        "halt_max_steps": int(config.halt.max_steps),
        "halt_exploration_prob": float(config.halt.get("exploration_prob", 0.1)),
        "forward_dtype": "bfloat16" if autocast_dtype == torch.bfloat16 else "float32",
    }
    with torch.device(device):
        head = ACTLossHead(HierarchicalReasoningModel_ACTV1(model_config), loss_type="stablemax_cross_entropy")
    head.train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-4)
    seq, labels = _batch(task, batch_size, device)
    batch = {
        "inputs": seq,
        "labels": labels,
        "puzzle_identifiers": torch.zeros(batch_size, dtype=torch.int32, device=device),
    }
    with torch.device(device):
        state = {"carry": head.initial_carry(batch)}
    forward = torch.compile(head) if compile else head

    def step():
        carry, loss, _, _, _ = forward(return_keys=[], carry=state["carry"], batch=batch)
        optimizer.zero_grad(set_to_none=True)
        (loss / batch_size).backward()
        optimizer.step()
        state["carry"] = carry

    if compile:  # the counter cannot see inside a compiled graph: count an eager step of the same model
        flops = count_flops(lambda: _eager_step(head, batch, state, optimizer, batch_size))
        _, times = time_calls(step, device, warmup, steps)
        return Row(
            "reference HRM (compiled)",
            "sapientinc/HRM code, torch.compile as its pretrain.py",
            spread(times),
            flops,
            batch_size,
            task.seq_len,
            "flash_attn stand-in on SDPA; AdamW (ref: AdamATan2)",
        )
    return _timed(
        "reference HRM",
        "sapientinc/HRM code (../shared/reference/hrm)",
        step,
        device,
        warmup,
        steps,
        batch_size,
        task.seq_len,
        None,
        "flash_attn stand-in on SDPA; SwiGLU width rounded to 256; AdamW (ref: AdamATan2)",
    )


def _eager_step(head, batch, state, optimizer, batch_size):
    carry, loss, _, _, _ = head(return_keys=[], carry=state["carry"], batch=batch)
    optimizer.zero_grad(set_to_none=True)
    (loss / batch_size).backward()
    optimizer.step()
    state["carry"] = carry


def peer_rows(config, task, batch_size, device, autocast_dtype, warmup, steps) -> list[Row]:
    """Rows for every peer that applies to this recipe's core and is installed (or present)."""
    rows = []
    for make in (hrm_pytorch_row, tiny_recursive_row, reference_hrm_row):
        row = make(config, task, batch_size, device, autocast_dtype, warmup, steps)
        if row is not None:
            rows.append(row)
    return rows
