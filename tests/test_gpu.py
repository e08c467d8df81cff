"""GPU-only checks: they run where CUDA is present and skip elsewhere (benchmarks/gpu_check.py measures speed)."""

from __future__ import annotations

import pytest
import torch

from conftest import random_batch, tiny_config, tiny_model
from latentreason.model import build_model

needs_gpu = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (bf16 autocast and kernels as trained on GPUs)"
)


@needs_gpu
def test_bf16_logits_stay_close_to_fp32_on_the_gpu():
    model = tiny_model().cuda().eval()
    batch = {k: v.cuda() for k, v in random_batch(16, seed=0).items()}
    with torch.no_grad():
        x = model.embed(batch["inputs"])
        want, _ = model.heads(model.segment(model.initial_state(16, "cuda"), x))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            x16 = model.embed(batch["inputs"])
            got, _ = model.heads(model.segment(model.initial_state(16, "cuda"), x16))
    scale = want.abs().mean()
    assert (got.float() - want).abs().mean() < 0.05 * scale
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.95


@needs_gpu
def test_a_compiled_core_matches_eager_on_the_gpu():
    eager = tiny_model().cuda().eval()
    compiled = build_model(tiny_config(), 11, 81, 1, compile=True).cuda().eval()
    compiled.load_state_dict(eager.state_dict())
    batch = random_batch(8, seed=1)["inputs"].cuda()
    with torch.no_grad():
        x = eager.embed(batch)
        want = eager.segment(eager.initial_state(8, "cuda"), x)
        got = compiled.segment(compiled.initial_state(8, "cuda"), x)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-3, atol=1e-3)
