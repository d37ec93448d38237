"""What produced an instance: host, Python, key package versions, the project's commit.

``collect`` is called once per instance run and saved in its record as
``provenance``; the report shows it when a user expands the instance. It is cheap:
host, Python and package versions (from ``importlib.metadata``, no imports) are read
once per process; git is asked with one ``git status --porcelain=v2 --branch`` (a few
milliseconds) whose answer is kept ``GIT_TTL_S`` seconds, so a long-lived worker (Dask)
still sees a work tree that became dirty.
"""

from __future__ import annotations

import copy
import functools
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions explain a result, in the order the report shows them.
PACKAGES = ("ductaflow", "papermill", "nbclient", "ipykernel", "jupytext", "pandas",
            "numpy", "openpyxl", "matplotlib", "distributed")
GIT_TIMEOUT_S = 5.0
GIT_TTL_S = 10.0
#: Variables that would point git at another repository than the project's.
_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
            "GIT_COMMON_DIR")


def collect(project_root: str | os.PathLike) -> dict[str, Any]:
    """Host, platform, Python, package versions and (in a git repository) the commit.

    ``{"host", "platform", "python", "packages": {name: version}, "git": {"commit",
    "branch", "dirty"}}``; ``git`` is left out when git is absent or the project root
    is not in a repository. Never raises.
    """
    found = copy.deepcopy(_environment())
    git = _cached_git(str(Path(project_root).absolute()))
    if git:
        found["git"] = dict(git)
    return found


@functools.lru_cache(maxsize=1)
def _environment() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "packages": package_versions(),
    }


_GIT_CACHE: dict[str, tuple[float, dict[str, Any] | None]] = {}


def _cached_git(project_root: str) -> dict[str, Any] | None:
    now = time.monotonic()
    cached = _GIT_CACHE.get(project_root)
    if cached is None or now - cached[0] > GIT_TTL_S:
        cached = (now, git_state(project_root))
        _GIT_CACHE[project_root] = cached
    return cached[1]


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """``{name: version}`` of the installed distributions among ``names``."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_state(project_root: str | os.PathLike) -> dict[str, Any] | None:
    """``{"commit", "branch", "dirty"}`` of the repository holding ``project_root``.

    ``dirty`` means a tracked file differs from the commit (untracked files, such as
    a runs folder nobody ignored, do not count). None without git or a repository.
    """
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV}
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain=v2", "--branch",
             "--untracked-files=no"],
            cwd=project_root, env=env, capture_output=True, text=True,
            encoding="utf-8", errors="replace", timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if done.returncode != 0:
        return None
    return parse_git_status(done.stdout)


def parse_git_status(text: str) -> dict[str, Any] | None:
    """The commit, branch and dirty flag from ``git status --porcelain=v2 --branch``."""
    commit = branch = None
    dirty = False
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.split(" ", 2)[2].strip()
        elif line.startswith("# branch.head "):
            branch = line.split(" ", 2)[2].strip()
        elif line and not line.startswith("#"):
            dirty = True
    if commit is None:
        return None
    found: dict[str, Any] = {"commit": "" if commit == "(initial)" else commit,
                             "dirty": dirty}
    if branch and branch != "(detached)":
        found["branch"] = branch
    return found
