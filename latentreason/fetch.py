"""`latentreason data fetch NAME`: download a benchmark dataset into the cache, checked by sha256.

Hugging Face datasets come through huggingface_hub (its endpoint: HF_ENDPOINT, or `endpoint=`);
GitHub repositories as one archive of their default branch (base URL: LATENTREASON_GITHUB_URL,
default https://github.com). Everything is downloaded into a hidden staging folder beside the
dataset's folder and moved into place only when whole and checked, so a broken download leaves
no half-written file. A machine without a connection is told so, with how to place the files by hand.
"""

from __future__ import annotations

import errno
import http.client
import os
import re
import shutil
import socket
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from latentreason import datasets as ds
from latentreason.console import console
from latentreason.errors import ConfigError, DownloadError

GITHUB = "https://github.com"
SHA256 = re.compile(r"[0-9a-f]{64}")

FETCH_USAGE = """usage: latentreason data fetch NAME [NAME ...] [dir=PATH]

Downloads the papers' benchmark data into PATH/NAME (default: {root}/NAME), records the sha256 of
every file in NAME/manifest.json and checks them when the data is fetched again (a damaged file is
fetched again). Runs read it with task.dataset=NAME; preset=paper uses it when it is there.
Offline: put the files in that folder by hand, then run this command to record their checksums.
Hugging Face downloads honour HF_ENDPOINT and HF_TOKEN; GitHub archives LATENTREASON_GITHUB_URL.

datasets:"""


def usage() -> str:
    lines = [FETCH_USAGE.format(root=ds.root())]
    for d in ds.CATALOGUE.values():
        lines.append(f"  {d.name:<16} {d.title}, for task {d.task}: {d.describe_files()} from {d.url} ({d.size})")
    return "\n".join(lines)


def command(args: list[str]) -> None:
    """`latentreason data fetch NAME [NAME ...] [dir=PATH]`."""
    if not args or any(a in ("-h", "--help", "help") for a in args):
        console.print(usage(), markup=False)
        return
    options = {k: v for k, _, v in (a.partition("=") for a in args if "=" in a)}
    unknown = sorted(set(options) - {"dir"})
    if unknown:
        raise ConfigError(
            f"`latentreason data fetch` has no option {unknown[0]!r}; options: dir=PATH (the folder that "
            f"holds one folder per dataset)"
        )
    names = [a for a in args if "=" not in a]
    for name in names:
        ds.get(name)  # every name checked before anything is downloaded
    for name in names:
        fetch(name, options.get("dir"))


def fetch(
    name: str, root: str | Path | None = None, *, endpoint: str | None = None, github_url: str | None = None
) -> Path:
    """Put dataset `name` into `root/name` (default `datasets.root()`), or check the copy already there."""
    dataset = ds.get(name)
    folder = (Path(root).expanduser() if root else ds.root()) / name
    manifest = ds.read_manifest(folder)
    wanted = list(dataset.files)
    if manifest is not None and manifest.get("name") == name and manifest.get("files"):
        bad = ds.verify(folder, manifest) + ds.missing(dataset, folder)
        if not bad:
            console.print(f"{name}: already in {folder} ({len(manifest['files'])} files, checksums match)")
            return folder
        console.print(
            f"[yellow]{name}: {folder / bad[0]} is missing or does not match its recorded sha256; fetching it again.[/]"
        )
        wanted = [f for f in dataset.files if f in bad] or wanted  # Hugging Face: only the damaged files
    elif not ds.missing(dataset, folder):
        manifest = ds.write_manifest(dataset, folder, source="put in place by hand", revision=None, how="by hand")
        console.print(
            f"{name}: found in {folder} (put in place by hand); recorded the sha256 of its "
            f"{len(manifest['files'])} files"
        )
        return folder
    if dataset.host == "huggingface":
        _from_huggingface(dataset, folder, endpoint, (manifest or {}).get("revision"), wanted)
    else:
        _from_github(dataset, folder, github_url)
    return folder


# --------------------------------------------------------------------------------------------
# Hugging Face
# --------------------------------------------------------------------------------------------


def _from_huggingface(
    dataset: ds.Dataset, folder: Path, endpoint: str | None, revision: str | None, files: list[str]
) -> None:
    from huggingface_hub import (
        constants,
        get_hf_file_metadata,
        hf_hub_download,
        hf_hub_url,
    )

    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    staging = _staging(folder)
    try:
        # One metadata request per file first: sizes to show, one commit for all files, and a quick
        # answer when offline (hf_hub_download itself retries a refused connection for many seconds).
        meta = {}
        for name in files:
            url = hf_hub_url(
                dataset.repo, name, repo_type="dataset", revision=revision or dataset.ref, endpoint=endpoint
            )
            meta[name] = get_hf_file_metadata(url, timeout=20)
        commit = revision or meta[files[0]].commit_hash
        sizes = ", ".join(f"{n} {_megabytes(m.size)}" for n, m in meta.items())
        console.print(
            f"Downloading {dataset.name} from {endpoint}/datasets/{dataset.repo} at {commit} ({sizes}) into {folder}"
        )
        for name in files:
            path = Path(
                hf_hub_download(
                    dataset.repo,
                    name,
                    repo_type="dataset",
                    revision=commit,
                    endpoint=endpoint,
                    local_dir=staging,
                    library_name="latentreason",
                )
            )
            etag = (meta[name].etag or "").strip('"')
            if (
                SHA256.fullmatch(etag) and ds.sha256(path) != etag
            ):  # Hub files stored with LFS/Xet: the etag is their sha256
                raise DownloadError(
                    f"{name} of {dataset.name} arrived damaged (its sha256 differs from the Hub's); "
                    f"nothing was kept. Run `latentreason data fetch {dataset.name}` again"
                )
        folder.mkdir(parents=True, exist_ok=True)
        for name in files:
            os.replace(staging / name, folder / name)
    except DownloadError:
        raise
    except _network_errors() as error:
        raise _explain(error, dataset, folder, endpoint) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = ds.write_manifest(
        dataset, folder, source=f"{endpoint}/datasets/{dataset.repo}", revision=commit, how="huggingface_hub"
    )
    console.print(f"{dataset.name}: {len(manifest['files'])} files in {folder}, sha256 recorded in {ds.MANIFEST}")


# --------------------------------------------------------------------------------------------
# GitHub
# --------------------------------------------------------------------------------------------


def _from_github(dataset: ds.Dataset, folder: Path, base: str | None) -> None:
    base = (base or os.environ.get("LATENTREASON_GITHUB_URL") or GITHUB).rstrip("/")
    url = f"{base}/{dataset.repo}/archive/{dataset.ref}.zip"
    staging = _staging(folder)
    try:
        console.print(f"Downloading {dataset.name} from {url} into {folder}")
        archive = staging / "archive.zip"
        _download(url, archive)
        commit = _unpack(archive, dataset, staging / "data", url)
        old = folder.parent / f".{dataset.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.replace(old)  # two renames: the folder is whole before and after, never half-written
        (staging / "data").replace(folder)
        shutil.rmtree(old, ignore_errors=True)
    except DownloadError:
        raise
    except _network_errors() as error:
        raise _explain(error, dataset, folder, base) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = ds.write_manifest(dataset, folder, source=url, revision=commit, how="archive")
    console.print(f"{dataset.name}: {len(manifest['files'])} files in {folder}, sha256 recorded in {ds.MANIFEST}")


def _download(url: str, dest: Path, timeout: float = 60) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "latentreason"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        expected = response.headers.get("Content-Length")
        shutil.copyfileobj(response, out, 1 << 20)
    if expected is not None and dest.stat().st_size != int(expected):
        raise http.client.IncompleteRead(b"", int(expected) - dest.stat().st_size)


def _unpack(archive: Path, dataset: ds.Dataset, out: Path, url: str) -> str | None:
    """Extract the dataset's folders from a GitHub archive (whose entries sit under one top folder).

    Returns the commit the archive was made from (GitHub writes it as the zip's comment)."""
    with zipfile.ZipFile(archive) as zf:
        kept = 0
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts[1:]  # without the top folder, e.g. ARC-AGI-<commit>/
            if info.is_dir() or not parts or parts[0] not in dataset.files:
                continue
            if any(p in ("..", "") for p in parts) or info.filename.startswith("/"):
                raise DownloadError(f"the archive from {url} holds the unsafe path {info.filename!r}; nothing was kept")
            target = out.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            kept += 1
        comment = zf.comment.decode("ascii", errors="replace").strip()
    if not kept:
        raise DownloadError(
            f"the archive from {url} holds no {dataset.describe_files()}; nothing was kept. Is "
            f"LATENTREASON_GITHUB_URL right?"
        )
    return comment if re.fullmatch(r"[0-9a-f]{40}", comment) else None


# --------------------------------------------------------------------------------------------
# Failures: one line each
# --------------------------------------------------------------------------------------------


def _staging(folder: Path) -> Path:
    staging = folder.parent / f".{folder.name}.download"
    shutil.rmtree(staging, ignore_errors=True)  # what a killed earlier run left
    staging.mkdir(parents=True)
    return staging


def _megabytes(size: int | None) -> str:
    if size is None:
        return "size unknown"
    return f"{size / 1e6:,.1f} MB" if size >= 100_000 else f"{size:,} bytes"


def _network_errors() -> tuple[type[BaseException], ...]:
    """What a download can raise when the network or the server fails (not bugs)."""
    errors: list[type[BaseException]] = [OSError, http.client.HTTPException, zipfile.BadZipFile]
    try:
        from huggingface_hub.errors import HfHubHTTPError

        errors.append(HfHubHTTPError)
    except ImportError:  # pragma: no cover - older huggingface_hub
        pass
    for module in ("httpx2", "httpx"):  # huggingface_hub's HTTP client, by version
        try:
            errors.append(__import__(module).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _is_offline(error: BaseException) -> bool:
    for e in _chain(error):
        if isinstance(e, (ConnectionRefusedError, socket.gaierror)):
            return True
        if type(e).__name__ in (
            "ConnectError",
            "OfflineModeIsEnabled",
            "LocalEntryNotFoundError",
            "NameResolutionError",
        ):
            return True
        if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED):
            return True
        if (
            isinstance(e, urllib.error.URLError)
            and isinstance(e.reason, OSError)
            and e.reason is not e
            and _is_offline(e.reason)
        ):
            return True
    return False


def _status(error: BaseException) -> int | None:
    for e in _chain(error):
        status = getattr(getattr(e, "response", None), "status_code", None) or getattr(e, "code", None)
        if isinstance(status, int):
            return status
    return None


def _explain(error: BaseException, dataset: ds.Dataset, folder: Path, server: str) -> DownloadError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    if _is_offline(error):
        return DownloadError(
            f"This machine is offline: {server} cannot be reached ({reason}). Nothing was downloaded. To "
            f"use {dataset.name} without a download, "
            f"{ds.by_hand(dataset, folder)}"
        )
    if _status(error) == 404:
        return DownloadError(
            f"{dataset.name} was not found at {server} ({reason}); check HF_ENDPOINT / "
            f"LATENTREASON_GITHUB_URL, or {ds.by_hand(dataset, folder)}"
        )
    return DownloadError(
        f"The download of {dataset.name} from {server} broke off ({type(error).__name__}: {reason}); nothing was kept. "
        f"Run `latentreason data fetch {dataset.name}` again, or {ds.by_hand(dataset, folder)}"
    )
