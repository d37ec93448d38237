"""The files a conduct keeps current in the runs folder: results CSV and HTML report.

Both are rewritten atomically after every instance, so a reader never sees half a
file and a killed conductor leaves the previous version intact.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ductaflow import state
from ductaflow.model import RunResult

RESULTS_CSV = "conductor_results.csv"
REPORT_HTML = "conductor_status_report.html"
COLUMNS = ("stage", "instance", "action", "status", "reason", "duration_s", "run_dir", "flow",
           "error", "started_at", "ended_at")
_FORMULA_START = ("=", "+", "-", "@")


def write_results(results: Sequence[RunResult], the_plan: Any, *, running: bool,
                  started_at: float) -> None:
    runs_dir: Path = the_plan.runs_dir
    state.atomic_write_text(runs_dir / RESULTS_CSV, results_csv(results, the_plan.project_root,
                                                               runs_dir))
    from ductaflow.report import generate_status_report

    html = generate_status_report(results, runs_dir, running=running,
                                  elapsed_s=time.time() - started_at)
    state.atomic_write_text(runs_dir / REPORT_HTML, html)


def results_csv(results: Sequence[RunResult], project_root: Path, runs_dir: Path) -> str:
    """One row per instance; ``run_dir`` relative to the project root, like table paths."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for result in results:
        row = {
            "stage": result.stage, "instance": result.instance, "action": result.action.value,
            "status": result.status.value if result.status else "", "reason": result.reason,
            "duration_s": f"{result.duration_s:.2f}",
            "run_dir": _relative(runs_dir / result.run_dir, project_root),
            "flow": result.flow, "error": result.error, "started_at": result.started_at,
            "ended_at": result.ended_at,
        }
        writer.writerow([_inert(str(row[c])) for c in COLUMNS])
    return buffer.getvalue()


def _inert(text: str) -> str:
    """A cell a spreadsheet would run as a formula is written as text instead."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return path.as_posix()
