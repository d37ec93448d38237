"""``python tests/orphans.py MODE DELAY_MS PROJECT...``: kill -9 conductors mid-start and
list what outlived them.

A helper of ``test_faults_processes.py``, run as a process of its own because it makes
itself a child subreaper (Linux): whatever a killed conductor started, however deep,
is re-parented here instead of to init, so it can be found and counted, and killed
afterwards. For each project it starts ``ductaflow conduct act.csv --mode MODE``,
waits until the instance has started (its ``started.json``), waits that project's
share of ``DELAY_MS`` (spread evenly over the projects), kills the conductor with -9
and, ``GRACE`` seconds later, prints one JSON line: the processes still alive that
descend from it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
GRACE = 1.2


def descendants(root: int) -> list[int]:
    """Live (not zombie) processes whose parent chain reaches ``root``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found = []
    for pid in parents:
        seen = pid
        while seen in parents and seen not in (0, 1):
            seen = parents[seen]
            if seen == root:
                found.append(pid)
                break
    return found


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def reaper() -> None:
    """Reap orphans as init would, so a process whose parent died is not taken for
    alive while it is a zombie here."""
    while True:
        reap()
        time.sleep(0.01)


def trial(mode: str, project: Path, delay: float, flags: list[str]) -> dict:
    started = project / "runs" / "act" / "a" / ".ductaflow" / "started.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    conductor = subprocess.Popen([sys.executable, "-m", "ductaflow", "conduct", "act.csv",
                                  "--mode", mode, *flags], cwd=project, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(delay)
    conductor.kill()
    conductor.wait()
    time.sleep(GRACE)
    reap()
    left = descendants(os.getpid())
    names = {}
    for pid in left:
        try:
            names[pid] = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(
                b"\0", b" ").decode(errors="replace")[:200]
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.1)
    reap()
    return {"project": str(project), "delay_ms": round(delay * 1000), "started":
            started.exists(), "survivors": list(names.values())}


def main(argv: list[str]) -> int:
    mode, spread, projects = argv[0], float(argv[1]) / 1000, [Path(p) for p in argv[2:]]
    flags = mode.split("+")[1:]
    mode = mode.split("+")[0]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(json.dumps({"error": "no subreaper"}))
        return 1
    threading.Thread(target=reaper, daemon=True).start()
    for i, project in enumerate(projects):
        delay = spread * i / max(len(projects) - 1, 1)
        print(json.dumps(trial(mode, project, delay, flags)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
