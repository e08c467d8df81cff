"""A plain (non-editable) install ships the config cards and recipes with the package."""

import os
import subprocess
import sys

from conftest import REPO


def test_wheel_install_lists_components_from_another_directory(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    for package in (REPO / "latentreason").rglob("__init__.py"):  # every subpackage is listed in pyproject.toml
        shipped = target / package.relative_to(REPO)
        assert shipped.is_file(), (
            f"{package.parent.relative_to(REPO)} is not shipped: add it to [tool.setuptools] packages"
        )
    assert (target / "latentreason" / "_cards" / "core" / "hrm.yaml").is_file()
    assert (target / "latentreason" / "_recipes" / "hrm_sudoku.yaml").is_file()

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    listing = subprocess.run(
        [sys.executable, "-m", "latentreason.cli", "list"],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    for name in ("hrm", "one_step", "q_act", "hrm_sudoku"):
        assert name in listing.stdout
    # and it is the installed copy that answered, not the checkout
    where = subprocess.run(
        [sys.executable, "-c", "import latentreason; print(latentreason.__file__)"],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
    )
    assert str(target) in where.stdout
