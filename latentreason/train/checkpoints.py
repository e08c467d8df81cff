"""Reading checkpoints safely, and the random-number state a resumed run needs (writing: `checkpoint_io`).

Every checkpoint is read with `torch.load(..., weights_only=True)`: a checkpoint is data, never
code. Before that, the CRC-32 of every record of the archive is checked. A file that does not load (truncated by a full disk, damaged in a copy, not a checkpoint at
all) is reported with what failed and the newest other checkpoint of the same run that does load,
so that the user can go on from there.
"""

from __future__ import annotations

import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentreason.errors import ConfigError

REQUIRED_KEYS = ("state_dict", "hyper_parameters")


def _problem(path: Path) -> tuple[dict | None, str | None]:
    """(the checkpoint, None) if `path` loads as a latentreason checkpoint, else (None, what failed).

    torch.load does not check the CRC-32 of the archive's records, so a flipped byte inside a
    tensor would load silently; zipfile's testzip checks every record first.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except zipfile.BadZipFile as error:
        return None, f"it is not a complete checkpoint archive ({error}); was it truncated?"
    except OSError as error:
        return None, f"{type(error).__name__}: {error}"
    if broken is not None:
        return None, f"the record {broken!r} fails its CRC check: the file changed after it was written"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to unpickle means the file is damaged or foreign
        first = (str(error).strip().splitlines() or [""])[0]
        return None, f"{type(error).__name__}: {first}" if first else type(error).__name__
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in REQUIRED_KEYS):
        return None, "it is not a latentreason checkpoint (no state_dict or hyper_parameters)"
    if "config" not in checkpoint["hyper_parameters"]:
        return None, "it is not a latentreason checkpoint (its hyper_parameters hold no config)"
    return checkpoint, None


def run_dir_of(path: str | Path) -> Path:
    """The run folder a checkpoint belongs to: <run>/final.ckpt or <run>/checkpoints/*.ckpt."""
    path = Path(path)
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def run_checkpoints(path: str | Path) -> list[Path]:
    """The other checkpoints of the run `path` belongs to, newest first: checkpoints/*.ckpt and final.ckpt."""
    path = Path(path)
    run_dir = run_dir_of(path)
    found = [*(run_dir / "checkpoints").glob("*.ckpt"), run_dir / "final.ckpt"]
    others = [p for p in found if p.is_file() and p.resolve() != path.resolve()]
    return sorted(others, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def previous_good(path: str | Path) -> tuple[Path, int] | None:
    """The newest other checkpoint of the same run that loads, with its step; None if there is none."""
    for candidate in run_checkpoints(path):
        checkpoint, problem = _problem(candidate)
        if problem is None:
            return candidate, int(checkpoint.get("global_step", 0))
    return None


def read_checkpoint(path: str | Path, option: str = "ckpt") -> dict:
    """Load a checkpoint written by `latentreason run`, or fail with one line naming a good one to use.

    `option` is how the user passes a checkpoint to the command at hand (`ckpt` or `resume`), so
    the suggestion can be pasted as it is.
    """
    path = Path(path)
    if not path.is_file():
        others = run_checkpoints(path) if path.parent.is_dir() else []
        hint = (
            f" Checkpoints of that run: {', '.join(str(p) for p in others)}."
            if others
            else " Runs write theirs to runs/<run>/checkpoints/last.ckpt and runs/<run>/final.ckpt."
        )
        raise FileNotFoundError(f"Checkpoint {path} does not exist.{hint}")
    checkpoint, problem = _problem(path)
    if problem is None:
        return checkpoint
    good = previous_good(path)
    if good is not None:
        advice = f" The newest checkpoint of this run that loads is {good[0]} (step {good[1]}): use {option}={good[0]}."
    else:
        advice = " No other checkpoint of this run loads; start the run again without it."
    raise ConfigError(f"Checkpoint {path} is damaged or incomplete and cannot be used ({problem}).{advice}")


# -- random-number state -------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Every global random-number state, in types that `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of the random draws of training step `step` on process `rank` (64 bits, well mixed)."""
    return int(np.random.SeedSequence([int(seed), int(step), int(rank)]).generate_state(1, np.uint64)[0])
