"""The papers' benchmark datasets: where each comes from, where it lives on this machine, its checksums.

`latentreason data fetch NAME` (see `latentreason.fetch`) downloads a dataset into `folder(NAME)`
and records a manifest (sha256 and size of every file); tasks read it with `task.dataset=NAME`.
Files put in place by hand (an offline machine) are used as they are; `data fetch` then records
their checksums without downloading anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from latentreason.atomic import write_atomically
from latentreason.errors import ConfigError

MANIFEST = "manifest.json"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where latentreason caches data: `cache_dir`, else $LATENTREASON_CACHE, else ~/.cache/latentreason."""
    return Path(cache_dir or os.environ.get("LATENTREASON_CACHE") or "~/.cache/latentreason").expanduser()


@dataclass(frozen=True)
class Dataset:
    """One benchmark dataset and its public source.

    `host` is "huggingface" (a dataset repository; `files` are downloaded one by one) or "github"
    (a repository's archive; `files` are the folders kept from it, as the reference's git submodules
    lay them out). `train` and `eval` name, for ARC, the folders of training and evaluation tasks
    (globs, relative to the dataset's folder).
    """

    name: str
    title: str
    host: str
    repo: str
    files: tuple[str, ...]
    size: str
    task: str
    train: tuple[str, ...] = ()
    eval: tuple[str, ...] = ()
    ref: str = "main"

    @property
    def url(self) -> str:
        """Where people can see the source in a browser."""
        if self.host == "huggingface":
            return f"https://huggingface.co/datasets/{self.repo}"
        return f"https://github.com/{self.repo}"

    def describe_files(self) -> str:
        if self.host == "huggingface":
            return " and ".join(self.files)
        return " and ".join(f"the folder {f}/" for f in self.files)


CATALOGUE: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "sudoku-extreme",
            "Sudoku-Extreme (HRM, TRM)",
            "huggingface",
            "sapientinc/sudoku-extreme",
            ("train.csv", "test.csv"),
            "about 0.8 GB: millions of training puzzles, 422,786 test puzzles",
            "sudoku",
        ),
        Dataset(
            "maze-30x30-hard",
            "Maze-Hard, 30x30 (HRM, TRM)",
            "huggingface",
            "sapientinc/maze-30x30-hard-1k",
            ("train.csv", "test.csv"),
            "a few MB: 1,000 training and 1,000 test mazes",
            "maze",
        ),
        Dataset(
            "arc-agi-1",
            "ARC-AGI-1",
            "github",
            "fchollet/ARC-AGI",
            ("data",),
            "400 training and 400 evaluation tasks, a few MB",
            "arc",
            train=("data/training",),
            eval=("data/evaluation",),
            ref="HEAD",
        ),
        Dataset(
            "arc-agi-2",
            "ARC-AGI-2",
            "github",
            "arcprize/ARC-AGI-2",
            ("data",),
            "1,000 training and 120 evaluation tasks, tens of MB",
            "arc",
            train=("data/training",),
            eval=("data/evaluation",),
            ref="HEAD",
        ),
        Dataset(
            "concept-arc",
            "ConceptARC (added to ARC-AGI-1's training tasks by HRM)",
            "github",
            "victorvikram/ConceptARC",
            ("corpus",),
            "160 tasks in 16 concept groups, a few MB",
            "arc",
            train=("corpus/*",),
            ref="HEAD",
        ),
    )
}


def get(name: str) -> Dataset:
    from latentreason.registry import close_matches

    if name not in CATALOGUE:
        raise ConfigError(
            f"Unknown dataset {name!r}; datasets: {', '.join(CATALOGUE)}.{close_matches(name, CATALOGUE)}"
        )
    return CATALOGUE[name]


def root(cache_dir: str | Path | None = None) -> Path:
    """The folder holding one folder per dataset: $LATENTREASON_DATASETS, else <cache>/datasets."""
    if os.environ.get("LATENTREASON_DATASETS"):
        return Path(os.environ["LATENTREASON_DATASETS"]).expanduser()
    return cache_root(cache_dir) / "datasets"


def resolve(value: str, cache_dir: str | Path | None = None) -> tuple[Dataset, Path]:
    """The dataset `task.dataset` names and its folder: a name (looked up under `root`), or a folder's path.

    A folder is recognised by its manifest, else by its name (`/data/sudoku-extreme`).
    """
    value = str(value)
    if "/" not in value and os.sep not in value and not value.startswith("~"):
        return get(value), root(cache_dir) / value
    folder = Path(value).expanduser()
    manifest = read_manifest(folder)
    name = manifest.get("name") if manifest else folder.name
    if name not in CATALOGUE:
        raise ConfigError(
            f"task.dataset={value!r}: a dataset folder must be named after its dataset "
            f"({', '.join(CATALOGUE)}) or hold a {MANIFEST} written by `latentreason data fetch`"
        )
    return CATALOGUE[name], folder


def missing(dataset: Dataset, folder: Path) -> list[str]:
    """The files or folders of `dataset` that `folder` lacks (empty: present)."""
    return [f for f in dataset.files if not (folder / f).is_file() and not (folder / f).is_dir()]


def by_hand(dataset: Dataset, folder: Path) -> str:
    """How to supply a dataset without `data fetch` downloading it (one sentence)."""
    if dataset.host == "huggingface":
        where = f"download {dataset.describe_files()} from {dataset.url}/tree/main"
    else:
        where = f"take {dataset.describe_files()} of {dataset.url} (git clone, or Code > Download ZIP)"
    them = "them" if len(dataset.files) > 1 else "it"
    return (
        f"{where} where you are online, copy {them} into {folder}, "
        f"then run `latentreason data fetch {dataset.name}` to record their checksums"
    )


def locate(value: str, cache_dir: str | Path | None = None) -> tuple[Dataset, Path]:
    """The dataset `task.dataset` names, checked to be on this machine (else one line on how to get it)."""
    dataset, folder = resolve(value, cache_dir)
    lacking = missing(dataset, folder)
    if lacking:
        raise ConfigError(
            f"task.dataset={value}: {', '.join(lacking)} not found in {folder}. Get it with `latentreason "
            f"data fetch {dataset.name}`"
            f" (online), or {by_hand(dataset, folder)}"
        )
    bad = [
        name
        for name, entry in (read_manifest(folder) or {}).get("files", {}).items()
        if _size(folder / name) != entry.get("size")
    ]
    if bad:
        raise ConfigError(
            f"{folder / bad[0]} is not the file `latentreason data fetch` recorded (missing or another "
            f"size); run `latentreason data fetch {dataset.name}` to check and repair it"
        )
    return dataset, folder


def is_present(name: str, cache_dir: str | Path | None = None) -> bool:
    dataset, folder = resolve(name, cache_dir)
    return not missing(dataset, folder)


# --------------------------------------------------------------------------------------------
# Manifest: what was fetched, from where, with each file's sha256 and size
# --------------------------------------------------------------------------------------------


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_files(dataset: Dataset, folder: Path) -> list[str]:
    """The files of the dataset inside `folder`, relative and sorted (folders listed recursively)."""
    names = []
    for entry in dataset.files:
        path = folder / entry
        if path.is_dir():
            names += sorted(str(p.relative_to(folder)) for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            names.append(entry)
    return names


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a damaged manifest is as good as none: the files get checked again


def write_manifest(dataset: Dataset, folder: Path, source: str, revision: str | None, how: str) -> dict:
    """Record every file's sha256 and size (written atomically, so a manifest is whole or absent)."""
    files = {
        name: {"sha256": sha256(folder / name), "size": (folder / name).stat().st_size}
        for name in data_files(dataset, folder)
    }
    manifest = {
        "name": dataset.name,
        "source": source,
        "revision": revision,
        "how": how,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
    }
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    write_atomically(folder / MANIFEST, lambda handle: handle.write(text.encode()))
    return manifest


def verify(folder: Path, manifest: dict) -> list[str]:
    """The recorded files that are missing or whose sha256 differs from the manifest's."""
    bad = []
    for name, entry in manifest.get("files", {}).items():
        path = folder / name
        if _size(path) != entry.get("size") or sha256(path) != entry.get("sha256"):
            bad.append(name)
    return bad


# --------------------------------------------------------------------------------------------
# preset=paper: the paper's data when it is here, else a note and the recipe's generated data
# --------------------------------------------------------------------------------------------


def paper_overrides(config, preset: str) -> list[str]:
    """The overrides a recipe's `paper_data` asks for under preset=paper, when its datasets are here.

    A recipe says `paper_data: {datasets: [sudoku-extreme], overrides: [task.dataset=sudoku-extreme, ...]}`.
    When a dataset is missing, one line says how to get it and the recipe runs on its own data.
    """
    from latentreason.console import console

    paper = config.get("paper_data") if preset == "paper" else None
    task = config.get("task") or {}
    if not paper or any(task.get(key) for key in ("dataset", "train_file", "test_file", "train_path")):
        return []  # no paper data, or the command line names the data
    names = [str(n) for n in paper.get("datasets", [])]
    cache_dir = task.get("cache_dir")
    lacking = [n for n in names if not is_present(n, cache_dir)]
    if not lacking:
        return [str(o) for o in paper.get("overrides", [])]
    instead = (
        "trains on generated data instead"
        if get(lacking[0]).task in ("sudoku", "maze")
        else "needs task.train_path until then"
    )
    message = (
        f"preset=paper uses {', '.join(names)} when it is on this machine: `latentreason data "
        f"fetch {' '.join(lacking)}` gets it (into {root(cache_dir)}); this run {instead}."
    )
    if message not in _said:  # once per process: a sweep or the docs build composes many configs
        _said.add(message)
        console.print(f"[yellow]{message}[/]")
    return []


_said: set[str] = set()
