"""`latentreason data fetch` against a local server that serves the real endpoints' paths (tests/hub.py).

The download code is the real one (huggingface_hub for the Hub, urllib for GitHub archives);
only the endpoint points at 127.0.0.1. The files are small but in the real formats.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hub import COMMIT, Hub, closed_port_url, github_archive

from latentreason import cli, datasets, fetch
from latentreason.errors import ConfigError, DownloadError
from latentreason.tasks import sudoku_data as sd


def sudoku_csv(count: int, seed: int) -> bytes:
    """A Sudoku-Extreme CSV: header source,q,a,rating; '.' for blanks; rating = the row's index."""
    rng = np.random.default_rng(seed)
    rows = ["source,q,a,rating"]
    for i in range(count):
        puzzle, solution, _ = sd.generate_puzzle(rng, 3, 40, 50)
        rows.append(f"puzzles{i % 3}_test,{sd.grid_to_string(puzzle)},{sd.grid_to_string(solution)},{i}")
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture(scope="module")
def sudoku_files():
    return {"train.csv": sudoku_csv(12, 0), "test.csv": sudoku_csv(6, 1)}


@pytest.fixture
def hub(sudoku_files, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # not the user's cache
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("LATENTREASON_DATASETS", raising=False)
    with Hub() as server:
        for name, content in sudoku_files.items():
            server.hf[("sapientinc/sudoku-extreme", name)] = content
        yield server


def leftovers(root):
    """Files and folders under `root` other than finished datasets: staging folders, partial files."""
    return [p for p in root.rglob("*") if p.name.startswith(".") or p.suffix in (".incomplete", ".tmp", ".lock")]


def test_huggingface_download_records_checksums_and_is_reused_offline(hub, sudoku_files, tmp_path, capsys):
    root = tmp_path / "datasets"
    folder = fetch.fetch("sudoku-extreme", root, endpoint=hub.url)
    assert folder == root / "sudoku-extreme"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["revision"] == COMMIT and manifest["name"] == "sudoku-extreme"
    for name, content in sudoku_files.items():
        assert (folder / name).read_bytes() == content
        assert manifest["files"][name] == {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
    assert {path for method, path in hub.requests if method == "GET"} == {
        f"/datasets/sapientinc/sudoku-extreme/resolve/{COMMIT}/{n}" for n in sudoku_files
    }
    assert leftovers(root) == []

    # Reuse: nothing listens at the endpoint now, and the checked copy is returned.
    capsys.readouterr()
    assert fetch.fetch("sudoku-extreme", root, endpoint=closed_port_url()) == folder
    assert "checksums match" in capsys.readouterr().out


def test_a_damaged_file_is_detected_and_fetched_again(hub, sudoku_files, tmp_path, capsys):
    root = tmp_path / "datasets"
    folder = fetch.fetch("sudoku-extreme", root, endpoint=hub.url)
    damaged = bytearray(sudoku_files["train.csv"])
    damaged[100] ^= 1  # same size: only the sha256 can tell
    (folder / "train.csv").write_bytes(bytes(damaged))
    hub.requests.clear()
    capsys.readouterr()
    fetch.fetch("sudoku-extreme", root, endpoint=hub.url)
    assert "does not match its recorded sha256" in capsys.readouterr().out
    assert (folder / "train.csv").read_bytes() == sudoku_files["train.csv"]
    gets = [path for method, path in hub.requests if method == "GET"]
    assert gets == [
        f"/datasets/sapientinc/sudoku-extreme/resolve/{COMMIT}/train.csv"
    ]  # only the damaged file, at the recorded commit
    assert datasets.verify(folder, datasets.read_manifest(folder)) == []


def test_a_connection_dropped_mid_file_leaves_no_partial_file(hub, sudoku_files, tmp_path):
    root = tmp_path / "datasets"
    hub.break_next[f"/datasets/sapientinc/sudoku-extreme/resolve/{COMMIT}/test.csv"] = (
        len(sudoku_files["test.csv"]) // 2
    )
    with pytest.raises(DownloadError) as caught:
        fetch.fetch("sudoku-extreme", root, endpoint=hub.url)
    message = str(caught.value)
    assert "\n" not in message and "broke off" in message and "nothing was kept" in message
    assert "latentreason data fetch sudoku-extreme" in message
    assert not (root / "sudoku-extreme").exists()  # train.csv had arrived whole, but nothing is half-kept
    assert leftovers(root) == []


def test_offline_says_so_and_how_to_place_the_files_by_hand(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LATENTREASON_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", closed_port_url())
    monkeypatch.setenv("LATENTREASON_GITHUB_URL", closed_port_url())
    for name, files in (("sudoku-extreme", "train.csv and test.csv"), ("arc-agi-1", "the folder data/")):
        assert cli.main(["data", "fetch", name]) == 2
        out = capsys.readouterr().out.strip().splitlines()[-1]
        assert out.startswith("error: This machine is offline") and files in out
        assert str(tmp_path / "datasets" / name) in out and f"latentreason data fetch {name}" in out
    assert leftovers(tmp_path / "datasets") == []


def test_files_put_in_place_by_hand_get_their_checksums_recorded(tmp_path, sudoku_files, capsys):
    folder = tmp_path / "sudoku-extreme"
    folder.mkdir()
    for name, content in sudoku_files.items():
        (folder / name).write_bytes(content)
    fetch.fetch("sudoku-extreme", tmp_path, endpoint=closed_port_url())  # no download needed
    assert "put in place by hand" in capsys.readouterr().out
    assert (
        datasets.read_manifest(folder)["files"]["test.csv"]["sha256"]
        == hashlib.sha256(sudoku_files["test.csv"]).hexdigest()
    )


def arc_task(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    grid = lambda: rng.integers(0, 10, (3, 4)).tolist()
    return {
        "train": [{"input": grid(), "output": grid()} for _ in range(2)],
        "test": [{"input": grid(), "output": grid()}],
    }


def test_github_archive_keeps_the_data_folders_with_checksums(tmp_path, monkeypatch):
    files = {
        "data/training/aaaa0001.json": arc_task(1),
        "data/evaluation/bbbb0002.json": arc_task(2),
        "apps/index.html": "<html>",
    }
    with Hub() as hub:
        hub.archives["fchollet/ARC-AGI"] = github_archive("fchollet/ARC-AGI", files)
        folder = fetch.fetch("arc-agi-1", tmp_path, github_url=hub.url)
        assert hub.requests == [("GET", "/fchollet/ARC-AGI/archive/HEAD.zip")]
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.json") if p.name != "manifest.json") == [
        "data/evaluation/bbbb0002.json",
        "data/training/aaaa0001.json",
    ]
    assert not (folder / "apps").exists()
    manifest = datasets.read_manifest(folder)
    assert manifest["revision"] == COMMIT and set(manifest["files"]) == {
        "data/training/aaaa0001.json",
        "data/evaluation/bbbb0002.json",
    }
    assert json.loads((folder / "data/training/aaaa0001.json").read_text()) == arc_task(1)

    archive = github_archive("fchollet/ARC-AGI", files)
    with Hub() as hub:  # a dropped archive download keeps the good copy and leaves nothing else
        hub.archives["fchollet/ARC-AGI"] = archive
        hub.break_next["/fchollet/ARC-AGI/archive/HEAD.zip"] = len(archive) // 2
        (folder / "data/training/aaaa0001.json").write_text("{}")  # damaged: fetched again
        with pytest.raises(DownloadError, match="broke off"):
            fetch.fetch("arc-agi-1", tmp_path, github_url=hub.url)
    assert (folder / "data/training/aaaa0001.json").read_text() == "{}" and leftovers(tmp_path) == []


def test_fetch_help_lists_the_datasets_and_data_help_prints_usage(capsys):
    assert cli.main(["data", "fetch", "--help"]) == 0
    out = capsys.readouterr().out
    for dataset in datasets.CATALOGUE.values():
        assert dataset.name in out and dataset.url in out
    assert cli.main(["data", "--help"]) == 0
    assert "latentreason data fetch NAME" in capsys.readouterr().out
    assert cli.main(["data", "fetch", "sudoku-extrme"]) == 2
    assert "Did you mean 'sudoku-extreme'" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Tasks reading the fetched files: task.dataset=NAME, and preset=paper
# --------------------------------------------------------------------------------------------


def _rows(split) -> list[str]:
    return [sd.grid_to_string(sd.decode(row.numpy().astype(np.uint8))) for row in split["inputs"]]


def test_sudoku_reads_the_fetched_dataset_as_the_reference_builds_it(hub, sudoku_files, tmp_path):
    from latentreason import registry

    fetch.fetch("sudoku-extreme", tmp_path / "datasets", endpoint=hub.url)
    csv = {
        name: [line.split(",") for line in content.decode().splitlines()[1:]] for name, content in sudoku_files.items()
    }

    def build(**kw):
        card = {
            "name": "sudoku",
            "dataset": "sudoku-extreme",
            "train_puzzles": 5,
            "augmentations": 2,
            "test_puzzles": None,
            "cache_dir": str(tmp_path),
            **kw,
        }
        return registry.build("task", card).splits()

    splits = build()
    originals = _rows(splits["train"])[::3]  # each puzzle, then its 2 augmentations
    assert len(splits["train"]["inputs"]) == 15 and len(set(originals)) == 5
    assert set(originals) <= {q for _, q, _, _ in csv["train.csv"]}
    assert _rows(splits["test"]) == [q for _, q, _, _ in csv["test.csv"]]  # the whole test file, in order
    assert set(_rows(build(seed=1)["train"])[::3]) != set(originals)  # the subsample follows task.seed

    hard = build(min_difficulty=4, train_puzzles=None)  # ratings are the row numbers 0..11 (train), 0..5 (test)
    assert set(_rows(hard["train"])[::3]) == {q for _, q, _, r in csv["train.csv"] if int(r) >= 4}
    assert _rows(hard["test"]) == [q for _, q, _, r in csv["test.csv"] if int(r) >= 4]
    with pytest.raises(ConfigError, match="min_difficulty=8 or more"):
        build(min_difficulty=8)  # no test puzzle is rated 8 or more


def test_preset_paper_uses_the_fetched_data_or_says_how_to_get_it(hub, tmp_path, monkeypatch, capsys):
    from latentreason.config import load_config

    monkeypatch.setenv("LATENTREASON_CACHE", str(tmp_path))
    config = load_config(["recipe=hrm_sudoku", "preset=paper"])
    assert config.task.dataset is None and config.task.test_puzzles == 1000
    assert "`latentreason data fetch sudoku-extreme` gets it" in capsys.readouterr().out
    fetch.fetch("sudoku-extreme", endpoint=hub.url)  # into $LATENTREASON_CACHE/datasets
    config = load_config(["recipe=hrm_sudoku", "preset=paper"])
    assert config.task.dataset == "sudoku-extreme" and config.task.test_puzzles is None
    assert (
        load_config(["recipe=hrm_sudoku", "preset=paper", "task.test_puzzles=4"]).task.test_puzzles == 4
    )  # the command line wins


def test_arc_reads_arc_agi_1_with_concept_arc_as_hrm_builds_it(tmp_path):
    from latentreason import registry

    root = tmp_path / "datasets"
    layout = {
        "arc-agi-1/data/training/t1.json": 1,
        "arc-agi-1/data/training/t2.json": 2,
        "arc-agi-1/data/evaluation/e1.json": 3,
        "concept-arc/corpus/Center/Center1.json": 4,
        "concept-arc/corpus/Copy/Copy1.json": 5,
    }
    for path, seed in layout.items():  # put in place by hand: no manifest needed
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(json.dumps(arc_task(seed)))
    task = registry.build(
        "task", {"name": "arc", "dataset": ["arc-agi-1", "concept-arc"], "augmentations": 1, "cache_dir": str(tmp_path)}
    )
    splits = task.splits()
    trained = {name.split("|")[0] for name in splits["train"]["names"]}
    assert trained == {"t1", "t2", "e1", "Center1", "Copy1"}  # evaluation tasks give their demonstrations
    held_out = {splits["train"]["names"][p].split("|")[0] for p in splits["test"]["puzzle_ids"].tolist()}
    assert held_out == {"e1"}
    with pytest.raises(ConfigError, match="latentreason data fetch arc-agi-2"):
        registry.build("task", {"name": "arc", "dataset": "arc-agi-2", "cache_dir": str(tmp_path)}).splits()


def test_maze_reads_the_fetched_dataset_with_the_dihedral_augmentations(tmp_path):
    from latentreason import registry
    from latentreason.tasks import maze_data as md

    rng = np.random.default_rng(0)
    folder = tmp_path / "datasets" / "maze-30x30-hard"
    folder.mkdir(parents=True)
    for name, count in (("train.csv", 3), ("test.csv", 2)):
        rows = ["source,q,a,rating"]
        for _ in range(count):
            question, answer, length = md.make_example(30, rng, min_path_length=20)
            rows.append(f"maze,{md.decode_row(question.ravel())},{md.decode_row(answer.ravel())},{length}")
        (folder / name).write_text("\n".join(rows) + "\n")
    card = {
        "name": "maze",
        "dataset": "maze-30x30-hard",
        "train_mazes": None,
        "test_mazes": None,
        "cache_dir": str(tmp_path),
    }
    plain = registry.build("task", card).splits()
    assert len(plain["train"]["inputs"]) == 3 and len(plain["test"]["inputs"]) == 2
    augmented = registry.build("task", {**card, "augment": True, "train_mazes": 2}).splits()["train"]
    assert len(augmented["inputs"]) == 2 * 8
    first = augmented["inputs"][0].numpy().reshape(30, 30)
    transforms = {tuple(np.rot90(g, k).ravel()) for g in (first, first.T) for k in range(4)}
    assert {
        tuple(row) for row in augmented["inputs"][:8].numpy().tolist()
    } == transforms  # the 8 symmetries of one maze
