"""Experiment trackers through Lightning's loggers: what a CPU run logs can be read back.

One tiny run logs to metrics.csv and to TensorBoard at once; the TensorBoard event files must
hold the same training losses, learning rates and held-out metrics as metrics.csv, and the full
config as hyperparameters. wandb (offline) and mlflow (a local file store) are checked when
installed (`pip install 'latentreason[wandb]'`, `'latentreason[mlflow]'`).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import yaml

from conftest import TINY_RUN

TINY = [*TINY_RUN, "trainer.max_steps=4", "trainer.checkpoint_every=0"]


def train(root, name, *extra):
    env = {**os.environ, "LATENTREASON_CACHE": str(root / "cache"), "WANDB_MODE": "offline"}
    args = [*TINY, f"output_dir={root}", f"run_name={name}", *extra]
    result = subprocess.run(
        [sys.executable, "-m", "latentreason.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root / name


def csv_scalars(run_dir) -> dict[str, dict[int, float]]:
    """tag -> {step: value} from metrics.csv."""
    out: dict[str, dict[int, float]] = {}
    with open(run_dir / "metrics.csv", newline="") as file:
        for row in csv.DictReader(file):
            for key, value in row.items():
                if key not in ("step", "epoch") and value:
                    out.setdefault(key, {})[int(row["step"])] = float(value)
    return out


def needs_tensorboard() -> None:
    """tensorboard is in the test extra: missing in CI is a failure, elsewhere a skip with the fix."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("tensorboard is missing in CI: the test extra installs it")
        pytest.skip("the tensorboard extra is not installed: pip install 'latentreason[tensorboard]'")


def test_csv_and_tensorboard_log_the_same_scalars_and_the_config(tmp_path):
    needs_tensorboard()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = train(tmp_path, "both", "trainer.logger=[csv,tensorboard]")
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    logged = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}
    expected = csv_scalars(run_dir)
    assert {"train/loss", "lr", "test/exact_accuracy", "test/token_accuracy"} <= set(expected)
    assert set(expected) <= set(logged)
    for tag, by_step in expected.items():
        assert logged[tag] == pytest.approx(by_step, rel=1e-6), tag
    assert len(expected["train/loss"]) == 4
    hparams = yaml.safe_load((run_dir / "tensorboard" / "hparams.yaml").read_text())
    assert hparams["config"]["core"]["hidden_size"] == 32 and hparams["config"]["trainer"]["logger"] == [
        "csv",
        "tensorboard",
    ]


def test_no_csv_when_the_logger_is_tensorboard_only(tmp_path):
    needs_tensorboard()
    run_dir = train(tmp_path, "tb", "trainer.logger=tensorboard")
    assert not (run_dir / "metrics.csv").exists()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_an_unknown_logger_is_one_line(tmp_path):
    env = {**os.environ, "LATENTREASON_CACHE": str(tmp_path / "cache")}
    args = [*TINY, f"output_dir={tmp_path}", "trainer.logger=[csv,tensorbord]"]
    result = subprocess.run(
        [sys.executable, "-m", "latentreason.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "trainer.logger='tensorbord' is not a logger" in " ".join(result.stdout.split())


def test_mlflow_local_store_holds_the_metrics_and_the_config(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install 'latentreason[mlflow]'")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as the run does: MLflow 3 prefers a database
    from mlflow.tracking import MlflowClient

    run_dir = train(tmp_path, "ml", "trainer.logger=[csv,mlflow]", "trainer.max_steps=2")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("latentreason")
    (run,) = client.search_runs([experiment.experiment_id])
    expected = csv_scalars(run_dir)
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/loss")}
    assert history == pytest.approx(expected["train/loss"], rel=1e-6)
    assert run.data.params["config/core/hidden_size"] == "32"


def test_wandb_offline_run_is_written_with_no_account(tmp_path):
    pytest.importorskip("wandb", reason="the wandb extra is not installed: pip install 'latentreason[wandb]'")
    run_dir = train(tmp_path, "wb", "trainer.logger=[csv,wandb]", "trainer.max_steps=2")
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    (records,) = offline.glob("*.wandb")  # what `wandb sync` uploads: the config and every logged row
    data = records.read_bytes()
    assert b"hidden_size" in data and b"train/loss" in data and b"test/exact_accuracy" in data
