"""Import the official reference code (sapientinc/HRM, TinyRecursiveModels) for parity tests.

The code lives beside the checkout in ../shared/reference (present in CI, where its
absence fails the tests), or wherever LATENTREASON_REFERENCE points; elsewhere the tests skip; it is imported from there, never copied. Both code bases name their
top-level packages `models`, `dataset`..., so each is imported with its own folder first on sys.path and its
modules are taken out of sys.modules afterwards (the imported objects keep working).

What the reference needs to run on CPU is provided here, without editing its files: a stand-in
`flash_attn_interface` whose `flash_attn_func` is torch's scaled_dot_product_attention with
FlashAttention's (batch, length, heads, head_dim) layout.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from latentreason.peers import flash_attn_standin


def reference_root() -> Path:
    """../shared/reference beside the checkout, or $LATENTREASON_REFERENCE."""
    override = os.environ.get("LATENTREASON_REFERENCE")
    return Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def _stand_ins() -> dict[str, types.ModuleType]:
    """Modules the reference imports that are absent here and irrelevant to what is compared.

    flash_attn_interface: attention (above). numba: TRM's ARC evaluator compiles one cropping
    function with `@njit`; run as plain Python it computes the same. argdantic: the ARC data
    builder's command-line parser, which the evaluator's imports pull in but never call.
    """
    flash = types.ModuleType("flash_attn_interface")
    flash.flash_attn_func = flash_attn_standin().flash_attn_func  # the one `latentreason bench` gives the reference
    out = {"flash_attn_interface": flash}
    if importlib.util.find_spec("numba") is None:
        numba = types.ModuleType("numba")
        numba.njit = lambda function=None, **_: function if function is not None else (lambda f: f)
        out["numba"] = numba
    if importlib.util.find_spec("argdantic") is None:
        argdantic = types.ModuleType("argdantic")

        class ArgParser:
            def command(self, *args, **kwargs):
                return lambda function: function

        argdantic.ArgParser = ArgParser
        out["argdantic"] = argdantic
    return out


_loaded: dict[tuple[str, tuple[str, ...]], dict[str, types.ModuleType]] = {}


def load(code: str, *modules: str) -> dict[str, types.ModuleType]:
    """Import `modules` (e.g. "models.hrm.hrm_act_v1") of the reference `code` ("hrm" or "trm").

    Skips the calling test with a one-line reason when the reference or what it needs is absent.
    """
    key = (code, modules)
    if key in _loaded:
        return _loaded[key]
    root = reference_root() / code
    if not root.is_dir():
        if os.environ.get("CI"):  # CI has ../shared beside the checkout: a missing reference is a failure there
            pytest.fail(f"reference code not found at {root} in CI")
        pytest.skip(f"reference code not found at {root} (it lives beside the checkout in ../shared/reference)")
    for needed in ("pydantic", "einops"):
        pytest.importorskip(needed, reason=f"the reference code needs {needed} (pip install -e '.[test]')")
    stand_ins = _stand_ins()
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    packages = ("models", "dataset", "evaluators", "utils")  # the reference's top-level packages

    def theirs(name: str) -> bool:
        return name.split(".")[0] in packages

    ours = {name: m for name, m in sys.modules.items() if theirs(name)}
    for name in ours:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        loaded = {name: importlib.import_module(name) for name in modules}
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if theirs(n)]:
            del sys.modules[name]
        sys.modules.update(ours)
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    _loaded[key] = loaded
    return loaded


def all_close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float = 0.0) -> None:
    """assert_close with a message that says how far apart the two are."""
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)
