"""Helpers shared by the fault-injection suite (``test_faults_*.py``); no tests here.

Every conductor a fault test starts carries a tag in its environment (``DF_FAULT_TAG``),
inherited by everything it starts (fork server, workers, kernels, script flows), so a
test can find every process of that conductor in ``/proc`` and prove none survives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pytest

from .conftest import DATA, REPO

TAG = "DF_FAULT_TAG"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc and process limits (Linux)")


def make_project(root: Path, tables: Mapping[str, str],
                 flows: Mapping[str, str] | None = None) -> Path:
    """``root`` with ``flows/<name>.py`` copied from ``tests/data/<fixture>.py`` and
    ``scenarios/<stage>.csv`` for each table; returns ``root``."""
    for folder in ("flows", "scenarios", "data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, fixture in (flows or {"act": "fault_act"}).items():
        shutil.copy(DATA / f"{fixture}.py", root / "flows" / f"{name}.py")
    for stage, text in tables.items():
        (root / "scenarios" / f"{stage}.csv").write_text(text, encoding="utf-8")
    return root


def tables(root: Path) -> list[str]:
    return sorted(f"scenarios/{p.name}" for p in (root / "scenarios").glob("*.csv"))


def environment(root: Path, tag: str | None = None, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "DF_RUN_LOG": str(root / "ran.log"),
            TAG: tag or uuid.uuid4().hex, **extra}


def start_conduct(root: Path, *args: str, env: Mapping[str, str] | None = None,
                  **popen: object) -> subprocess.Popen:
    """``ductaflow conduct`` in a session of its own (a terminal's foreground group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ductaflow", "conduct", *args], cwd=root,
        env=dict(env or environment(root)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, encoding="utf-8", errors="replace", start_new_session=True, **popen)


def conduct_cli(root: Path, *args: str, env: Mapping[str, str] | None = None,
                timeout: float = 120, **popen: object) -> subprocess.CompletedProcess:
    """Run ``ductaflow conduct`` to the end; the process is killed on a test timeout."""
    proc = start_conduct(root, *args, env=env, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def ran_log(root: Path) -> list[str]:
    """The ``start``/``end`` lines flows appended to ``ran.log``, in order."""
    path = root / "ran.log"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def started(root: Path) -> list[str]:
    return sorted(line.split(" ", 1)[1] for line in ran_log(root) if line.startswith("start "))


def ended(root: Path) -> list[str]:
    return sorted(line.split(" ", 1)[1] for line in ran_log(root) if line.startswith("end "))


def wait_for(predicate: Callable[[], object], timeout: float = 60, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def tagged_pids(tag: str) -> list[int]:
    """Live processes whose environment holds ``DF_FAULT_TAG=<tag>`` (zombies excluded)."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if needle not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
        except OSError:
            continue
        found.append(int(entry))
    return found


def peak_rss_kib(pid: int) -> int:
    """``VmHWM``: the most memory a process has held at any moment so far."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def snapshot(root: Path, skip: Iterable[str] = ()) -> dict[str, tuple]:
    """Every file and folder under ``root``: (kind, size, mtime_ns), by relative path."""
    skipped = tuple(skip)
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel.startswith(skipped):
                continue
            info = path.lstat()
            kind = "dir" if path.is_dir() else "link" if path.is_symlink() else "file"
            found[rel] = (kind, 0 if kind == "dir" else info.st_size, info.st_mtime_ns)
    return found


def one_line_error(stderr: str) -> str:
    """The single ``error: ...`` line a bad input must produce, and nothing else."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]
