"""Shared fixtures: small real projects on tmp_path, flows written from tests/data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder with flows/, builds/ and config/ to fill in."""
    for folder in ("flows", "builds", "config/flows", "config/builds", "data"):
        (tmp_path / folder).mkdir(parents=True)
    return tmp_path


def add_flow(project: Path, name: str, source: str | None = None, folder: str = "flows") -> Path:
    """Copy ``tests/data/<name>.py`` (or write ``source``) to ``<project>/<folder>/``."""
    target = project / folder / f"{name}.py"
    if source is None:
        shutil.copy(DATA / f"{name}.py", target)
    else:
        target.write_text(source, encoding="utf-8")
    return target


def run_cli(*args: str, cwd: Path, timeout: float = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real ``ductaflow`` command line in a subprocess."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "ductaflow", *args], cwd=cwd,
                          capture_output=True, text=True, encoding="utf-8",
                          timeout=timeout, env=full_env)
