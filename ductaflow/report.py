"""The HTML status report: traffic lights per instance, links, and what went wrong.

Rendered by a jinja2 template shipped in the package, with autoescape on and strict
undefined, so table content can never inject script into the page. Pure: builds the
page's data from results and files on disk, returns a string.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ductaflow.model import RunResult
from ductaflow.status import is_warning_line

TAIL_LINES = 15
REFRESH_S = 5


def generate_status_report(results: Sequence[RunResult], runs_dir: str | os.PathLike, *,
                           running: bool = False, elapsed_s: float | None = None) -> str:
    """The report's HTML for ``results`` (what ``conduct`` returns); links are relative
    to ``runs_dir``, where the caller is expected to write it."""
    runs = Path(runs_dir)
    rows = [_row(result, runs) for result in results]
    stages: dict[str, list[dict]] = {}
    for row in rows:
        stages.setdefault(row["stage"], []).append(row)
    context = {
        "stages": stages,
        "lights": Counter(row["light"] for row in rows),
        "actions": Counter(row["action"] for row in rows),
        "total": len(rows),
        "running": running,
        "refresh_s": REFRESH_S,
        "elapsed": f"{elapsed_s:.1f} s" if elapsed_s is not None else "",
        "generated": datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S"),
    }
    return _environment().get_template("report.html.j2").render(**context)


def _row(result: RunResult, runs: Path) -> dict[str, Any]:
    folder = runs / result.run_dir
    stem = result.flow.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    light = result.status.value if result.status else "none"
    links = []
    for label, name in (("notebook", f"{stem}.html"), ("notebook", f"{stem}.ipynb"),
                        ("output", f"{stem}_execution_output.txt"),
                        ("config", f"{stem}_config.json")):
        if (folder / name).is_file() and not any(lbl == label for lbl, _ in links):
            links.append((label, f"{result.run_dir}/{name}"))
    tail = _tail(folder / f"{stem}_execution_output.txt") if light in ("error", "warning") else []
    return {"stage": result.stage, "instance": result.instance, "action": result.action.value,
            "light": light, "reason": result.reason, "error": result.error,
            "duration": f"{result.duration_s:.1f} s", "links": links, "tail": tail}


def _tail(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read()[-20000:].splitlines()[-TAIL_LINES:]
    except OSError:
        return []
    return [{"text": line, "warn": is_warning_line(line)} for line in lines]


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("ductaflow", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined)
