"""Checkpoints: which are kept, that they load with weights_only, atomic writes, damaged files named with a good one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import TINY_RUN, cli_in_process
from latentreason.train.checkpoint_io import AtomicCheckpointIO
from latentreason.train.checkpoints import read_checkpoint

TINY = [*TINY_RUN, "trainer.max_steps=6", "trainer.checkpoint_every=2", "trainer.keep_checkpoints=2"]


def latentreason(*args, cache, in_process: bool = False):
    """The console script (or, for a command's message alone, `cli_in_process`); returns the result and its text."""
    env = {"LATENTREASON_CACHE": str(cache)}
    if in_process:
        result = cli_in_process(*args, env=env)
    else:
        command = [sys.executable, "-m", "latentreason.cli", *args]
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    return result, " ".join((result.stdout + result.stderr).split())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    result, text = latentreason(*TINY, f"output_dir={root}", "run_name=tiny", cache=root / "cache")
    assert result.returncode == 0, text
    return root


@pytest.fixture
def killed_run(trained, tmp_path):
    """A copy of the run as a killed run leaves it: checkpoints, no final.ckpt."""
    run = tmp_path / "run"
    shutil.copytree(trained / "tiny", run)
    (run / "final.ckpt").unlink()
    return run


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_keeps_last_and_the_newest_step_checkpoints(trained):
    names = sorted(p.name for p in (trained / "tiny" / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step-000004.ckpt", "step-000006.ckpt"]  # step 2 was removed (keep_checkpoints=2)


def test_every_checkpoint_loads_with_weights_only_and_holds_the_training_state(trained):
    for path in [*(trained / "tiny" / "checkpoints").glob("*.ckpt"), trained / "tiny" / "final.ckpt"]:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        assert {"state_dict", "optimizer_states", "lr_schedulers", "loops", "carry", "rng", "train_metrics"} <= set(
            checkpoint
        ), path
        assert "model.puzzle.table" in checkpoint["state_dict"]
        assert read_checkpoint(path)["global_step"] == checkpoint["global_step"]


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_truncated_checkpoint_is_named_with_the_previous_good_one(trained, killed_run, command):
    last = killed_run / "checkpoints" / "last.ckpt"
    truncate(last)
    if command == "eval":
        result, text = latentreason("eval", f"ckpt={last}", cache=trained / "cache", in_process=True)
    else:
        result, text = latentreason(
            *TINY,
            "trainer.max_steps=8",
            f"output_dir={killed_run.parent}",
            "run_name=run",
            f"resume={last}",
            cache=trained / "cache",
            in_process=True,
        )
    assert result.returncode == 2, text
    assert "Traceback" not in text
    option = "ckpt" if command == "eval" else "resume"
    good = killed_run / "checkpoints" / "step-000006.ckpt"
    assert f"Checkpoint {last} is damaged" in text and "truncated" in text
    assert f"{option}={good}" in text and "(step 6)" in text


def test_when_the_two_newest_are_damaged_the_third_is_offered(trained, killed_run):
    checkpoints = killed_run / "checkpoints"
    truncate(checkpoints / "last.ckpt", keep=0.1)
    truncate(checkpoints / "step-000006.ckpt", keep=0.9)
    result, text = latentreason("eval", f"ckpt={checkpoints / 'last.ckpt'}", cache=trained / "cache", in_process=True)
    assert result.returncode == 2 and "Traceback" not in text, text
    assert f"ckpt={checkpoints / 'step-000004.ckpt'}" in text and "(step 4)" in text


def test_a_flipped_byte_is_caught_by_the_crc_check(trained, tmp_path):
    path = tmp_path / "flipped.ckpt"
    shutil.copy(trained / "tiny" / "final.ckpt", path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside a tensor's bytes: torch.load alone would load it silently
    path.write_bytes(bytes(data))
    result, text = latentreason("eval", f"ckpt={path}", cache=trained / "cache", in_process=True)
    assert result.returncode == 2 and "Traceback" not in text, text
    assert "fails its CRC check" in text and "No other checkpoint of this run loads" in text


def test_a_file_that_is_not_a_checkpoint(trained, tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint")
    result, text = latentreason("eval", f"ckpt={path}", cache=trained / "cache")
    assert result.returncode == 2 and "Traceback" not in text, text
    assert f"Checkpoint {path} is damaged" in text


def test_an_interrupted_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "weights": torch.arange(1000.0)}, path)
    before = path.read_bytes()

    def dies_half_way(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError):
        io.save_checkpoint({"global_step": 2, "weights": torch.zeros(1000)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left behind
