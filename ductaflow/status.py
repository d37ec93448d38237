"""Traffic lights from what a flow printed (SPEC.md, Status).

Red comes from how the run ended (the engine knows; the footer says so), orange from
the product's warning scan of the captured lines, green otherwise. A build is the
worst of its own output and of every flow it ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ductaflow.model import Status
from ductaflow.outputs import is_footer

OUTPUT_SUFFIX = "_execution_output.txt"
_RANK = {Status.SUCCESS: 0, Status.WARNING: 1, Status.ERROR: 2}


def is_warning_line(line: str) -> bool:
    """SPEC.md's rule, exactly: a warning marker wholly inside the first 15 characters."""
    head = line[:15]
    return "warning:" in head.lower() or "⚠" in head


def scan_output(path: Path) -> Status:
    """The light of one captured output file: its footer for red, its lines for orange."""
    warned = False
    last = ""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    last = line
                if not is_footer(line) and is_warning_line(line):
                    warned = True
    except OSError:
        return Status.ERROR
    if last.startswith("❌ Failed "):
        return Status.ERROR
    return Status.WARNING if warned else Status.SUCCESS


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default=Status.SUCCESS)


def output_files(run_dir: Path) -> list[Path]:
    """Every captured output in an instance folder, a build's child flows included."""
    found = []
    for folder, dirs, files in os.walk(run_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in sorted(files) if f.endswith(OUTPUT_SUFFIX)]
    return found


def analyze_execution_logs(run_dir: str | os.PathLike) -> str:
    """``"success"``, ``"warning"`` or ``"error"`` for one instance folder, a build's too."""
    files = output_files(Path(run_dir))
    if not files:
        return Status.ERROR.value
    return worst(scan_output(f) for f in files).value
