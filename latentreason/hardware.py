"""Where a run executes and how: device, precision and whether torch.compile is used.

One rule each, read from the `trainer` settings, shared by training, `bench` and loading a checkpoint.
"""

from __future__ import annotations

import os
import shutil

import torch

# trainer.compile=auto compiles a run of at least this many steps. Compiling costs 30-40 s on 2
# CPU cores and makes a Sudoku CPU-preset step 1.11-1.29x faster (docs/performance.md), which a run
# of 1,000 steps at 0.2-0.5 s a step repays; short runs (tests, smoke runs) stay eager.
COMPILE_PAYS_AFTER_STEPS = 1000


def on_gpu(trainer) -> bool:
    """Whether a run's trainer settings put it on the GPU: there is one, and trainer.accelerator allows it."""
    return torch.cuda.is_available() and trainer.get("accelerator", "auto") in ("auto", "gpu", "cuda")


def precision_of(trainer) -> str:
    """trainer.precision with `auto` resolved: bf16-mixed on a GPU, 32-true on a CPU."""
    precision = str(trainer.get("precision", "auto"))
    return ("bf16-mixed" if on_gpu(trainer) else "32-true") if precision == "auto" else precision


def can_compile(trainer) -> bool:
    """Whether torch.compile's code generator can build kernels here: Triton on a GPU, a C++ compiler on a CPU."""
    if on_gpu(trainer):
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    compilers = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    return any(c and shutil.which(c) for c in compilers)


def compile_enabled(trainer) -> bool:
    """trainer.compile resolved: true/false as given; `auto` compiles long runs where a compiler exists."""
    setting = trainer.get("compile", False)
    if setting == "auto":
        return int(trainer.get("max_steps", 0)) >= COMPILE_PAYS_AFTER_STEPS and can_compile(trainer)
    return bool(setting)
