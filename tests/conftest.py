"""Shared helpers: tiny models built from the real config cards."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import torch

from latentreason.config import load_config
from latentreason.model import build_model

# torch.compile's kernels go to a folder of this test session (subprocesses inherit it): a cache
# left half-written by another process (a killed compile, a concurrent one) cannot break a test.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    _inductor_cache = tempfile.TemporaryDirectory(prefix="latentreason-inductor-")  # removed when the session ends
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = _inductor_cache.name

# The test models are tiny: one thread is faster than two for them, and steadier on a shared machine.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

TINY = [
    "core.hidden_size=32",
    "core.num_heads=2",
    "core.H_layers=1",
    "core.L_layers=1",
    "core.mlp_multiple=16",
    "halt.max_steps=4",
    "trainer.global_batch_size=8",
]


def shared_file(*parts: str) -> Path:
    """A file of ../shared/data; skipped outside CI when absent, a failure in CI."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI")
        pytest.skip(f"{path} is not present on this machine (it lives beside the repo, in ../shared/data)")
    return path


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A run made in-process sets torch's thread count (trainer.threads=1 in TINY_RUN) for the whole
    process; without this, every later test would compute on one thread."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def cli_in_process(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`latentreason ARGS` in this process, output captured, as subprocess.run would report it.

    For tests of what a command does: a fresh interpreter adds an import of torch (about 5 s) and
    nothing else. The console script itself (exit codes, no traceback) is tested through
    subprocesses in test_bad_input, test_cli and test_ddp. `env` is set for the call only;
    COLUMNS there sets the console's width.
    """
    from latentreason.cli import main
    from latentreason.console import console

    env = {k: str(v) for k, v in (env or {}).items()}
    width = int(env["COLUMNS"]) if "COLUMNS" in env else None  # None: the console's own choice
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env),
        mock.patch.object(console, "_width", width),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


# A tiny HRM run on 9x9 Sudoku through the command line, in seconds; tests add what they vary.
TINY_RUN = [
    "recipe=hrm_sudoku",
    "preset=cpu",
    "core.hidden_size=32",
    "core.num_heads=2",
    "core.mlp_multiple=16",
    "halt.max_steps=2",
    "task.box=3",
    "task.min_givens=45",
    "task.max_givens=55",
    "task.train_puzzles=20",
    "task.augmentations=2",
    "task.test_puzzles=10",
    "trainer.global_batch_size=8",
    "trainer.eval_every=0",
    "trainer.log_every=1",
    "trainer.progress=false",
    "trainer.threads=1",
]


def random_batch(n: int, seed: int) -> dict:
    """n random 81-token examples (inputs 1..10, labels 2..10) with puzzle id 0."""
    g = torch.Generator().manual_seed(seed)
    return {
        "inputs": torch.randint(1, 11, (n, 81), generator=g),
        "labels": torch.randint(2, 11, (n, 81), generator=g),
        "puzzle_ids": torch.zeros(n, dtype=torch.long),
    }


def tiny_config(*overrides: str):
    return load_config(["recipe=hrm_sudoku", "preset=paper", *TINY, *overrides])


def tiny_model(*overrides: str, seed: int = 0, seq_len: int = 81, vocab: int = 11):
    torch.manual_seed(seed)
    return build_model(tiny_config(*overrides), vocab, seq_len, 1)
