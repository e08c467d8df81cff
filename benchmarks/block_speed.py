"""Our hand-written HRM block stack vs the closest x-transformers Encoder, on CPU.

    python benchmarks/block_speed.py --threads 1 --batch 32 --repeats 5

Times forward (under no_grad, as HRM runs most of its recurrent steps) and forward+backward,
as the median of `--repeats` runs after one warmup, round-robin between the variants so that
background load hits both alike. Weights are copied from ours into the Encoder to check that the
two compute the same function (the Encoder's GLU bias is zeroed for that check).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from rich.console import Console
from rich.table import Table

from latentreason.cores.blocks import Rotary, Stack, param_count, swiglu_width

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script notice on import
from x_transformers import Encoder  # noqa: E402

SHAPES = {  # name: (hidden, heads, expansion, depth, mlp_multiple)
    "paper (H or L module)": (512, 8, 4, 4, 256),
    "small CPU preset": (64, 4, 4, 1, 32),
}
SEQ = 82


def build(hidden: int, heads: int, expansion: float, depth: int, multiple: int):
    ours = Stack(depth, hidden, heads, expansion, multiple)
    width = swiglu_width(hidden, expansion, multiple)
    head_dim = hidden // heads
    theirs = Encoder(
        dim=hidden,
        depth=depth,
        heads=heads,
        attn_dim_head=head_dim,
        pre_norm=False,
        use_simple_rmsnorm=True,
        rotary_pos_emb=True,
        rotary_emb_dim=head_dim,
        ff_glu=True,
        ff_swish=True,
        ff_mult=width / hidden,
        ff_no_bias=True,
        attn_flash=True,
        verbose=False,
    )
    assert theirs.layers[1][1].ff[2].in_features == width, "ff_mult does not reproduce our width"
    return ours, theirs, Rotary(head_dim, SEQ)


@torch.no_grad()
def copy_weights(ours: Stack, theirs: Encoder, heads: int) -> None:
    """Ours -> theirs. Rotary pairs (i, i+d/2) in ours and (2i, 2i+1) in theirs, so q and k rows
    are permuted per head (the same permutation on both leaves q.k unchanged)."""
    d = ours.blocks[0].attn.qkv.in_features
    half = d // heads // 2
    perm = torch.stack((torch.arange(half), torch.arange(half) + half), -1).flatten()
    for i, block in enumerate(ours.blocks):
        attn, ff = theirs.layers[2 * i][1], theirs.layers[2 * i + 1][1].ff
        q, k, v = block.attn.qkv.weight.chunk(3)
        attn.to_q.weight.copy_(q.view(heads, -1, d)[:, perm].reshape(d, d))
        attn.to_k.weight.copy_(k.view(heads, -1, d)[:, perm].reshape(d, d))
        attn.to_v.weight.copy_(v)
        attn.to_out.weight.copy_(block.attn.out.weight)
        gate, up = block.mlp.gate_up.weight.chunk(2)
        ff[0].proj.weight.copy_(torch.cat((up, gate)))  # theirs splits (up, gate)
        ff[0].proj.bias.zero_()
        ff[2].weight.copy_(block.mlp.down.weight)


def bench(fns: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """fns: name -> (forward, forward+backward). Returns name -> (median fwd ms, median fwd+bwd ms)."""
    for fwd, fwdbwd in fns.values():  # warmup
        fwd(), fwdbwd()
    times = {name: ([], []) for name in fns}
    for _ in range(repeats):
        for name, pair in fns.items():
            for fn, out in zip(pair, times[name]):
                start = time.perf_counter()
                fn()
                out.append((time.perf_counter() - start) * 1e3)
    return {name: tuple(statistics.median(t) for t in pair) for name, pair in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32, help="batch at the paper shape")
    parser.add_argument("--small-batch", type=int, default=64, help="batch at the small shape")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    console = Console(width=110)
    console.print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{torch.backends.cpu.get_cpu_capability()}, seq {SEQ}, median of {args.repeats}"
    )

    for label, (hidden, heads, expansion, depth, multiple) in SHAPES.items():
        batch = args.batch if label.startswith("paper") else args.small_batch
        ours, theirs, rotary = build(hidden, heads, expansion, depth, multiple)
        x, inj = torch.randn(2, batch, SEQ, hidden).unbind(0)

        copy_weights(ours, theirs, heads)
        with torch.no_grad():
            diff = (ours(x, inj, rotary) - theirs(x + inj)).abs().max().item()

        def pair(run, model):
            def fwd():
                with torch.no_grad():
                    run()

            def fwdbwd():
                model.zero_grad(set_to_none=True)
                run().square().mean().backward()

            return fwd, fwdbwd

        results = bench(
            {
                "ours (Stack of Block)": pair(lambda: ours(x, inj, rotary), ours),
                "x-transformers Encoder": pair(lambda: theirs(x + inj), theirs),
            },
            args.repeats,
        )

        table = Table(
            title=f"{label}: hidden {hidden}, {heads} heads, depth {depth}, "
            f"SwiGLU width {swiglu_width(hidden, expansion, multiple)}, batch {batch}"
        )
        for col in ("variant", "parameters", "forward ms", "fwd+bwd ms", "ratio to ours (fwd / fwd+bwd)"):
            table.add_column(col, justify="left" if col == "variant" else "right")
        base_f, base_fb = results["ours (Stack of Block)"]
        counts = {"ours (Stack of Block)": param_count(ours), "x-transformers Encoder": param_count(theirs)}
        for name, (f, fb) in results.items():
            table.add_row(name, f"{counts[name]:,}", f"{f:.1f}", f"{fb:.1f}", f"{f / base_f:.2f} / {fb / base_fb:.2f}")
        console.print(table)
        extra = counts["x-transformers Encoder"] - counts["ours (Stack of Block)"]
        console.print(
            f"parameter difference: +{extra:,} in the Encoder (GLU input-projection bias, {extra // depth:,} per block)"
        )
        console.print(
            f"outputs with copied weights (GLU bias zeroed): max |diff| = {diff:.2e} -> "
            f"{'match' if diff < 1e-4 else 'DIFFER'} (tolerance 1e-4)\n"
        )


if __name__ == "__main__":
    main()
