"""Traffic lights from what a flow printed (docs/concepts.md, "Status and action").

Red comes from how the run ended (the engine knows; the footer says so), orange from
the product's warning scan of the captured lines, green otherwise. A build is the
worst of its own output and of every flow it ran: those named by its ``flows.jsonl``
manifest when it has one, else every output file found in its sub-folders.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ductaflow.model import Status
from ductaflow.run_folder import records
from ductaflow.run_folder.files import OUTPUT_SUFFIX, is_footer

WARNING_WIDTH = 15
_RANK = {Status.SUCCESS: 0, Status.WARNING: 1, Status.ERROR: 2}


def is_warning_line(line: str) -> bool:
    """The product's rule, exactly: a warning marker wholly inside the first 15 characters."""
    head = line[:WARNING_WIDTH]
    return "warning:" in head.lower() or "⚠" in head


_PIECE = 1 << 16


def scan_output(path: Path) -> Status:
    """The light of one captured output file: its footer for red, its lines for orange."""
    warned, last = _scan(path)
    if last is None or last.startswith("❌ Failed "):
        return Status.ERROR
    return Status.WARNING if warned else Status.SUCCESS


def finished_output(path: Path) -> bool:
    """Whether an output file ends with its footer: the flow finished, well or badly."""
    return is_footer(_scan(path)[1] or "")


def _scan(path: Path) -> tuple[bool, str | None]:
    """(a non-footer line warns, the last non-blank line); None when unreadable.

    Reads in bounded pieces: only a line's first characters matter for the warning
    rule, and output with no newline for 50 MB must not sit whole in memory.
    """
    warned = False
    last = ""
    at_line_start = True
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for piece in iter(lambda: handle.readline(_PIECE), ""):
                if at_line_start:
                    if not warned and not is_footer(piece) and is_warning_line(piece):
                        warned = True
                    if piece.strip():
                        last = piece
                at_line_start = piece.endswith("\n")
    except OSError:
        return False, None
    return warned, last


def worst(statuses: Iterable[Status]) -> Status:
    """Red over orange over green: a build's light from its flows'."""
    return max(statuses, key=_RANK.__getitem__, default=Status.SUCCESS)


def own_outputs(run_dir: Path) -> list[Path]:
    """The output files of the instance's own flow: those directly in its folder."""
    try:
        names = sorted(os.listdir(run_dir))
    except OSError:
        return []
    return [run_dir / n for n in names if n.endswith(OUTPUT_SUFFIX) and (run_dir / n).is_file()]


def output_files(run_dir: Path) -> list[Path]:
    """Every captured output in an instance folder, a build's child flows included."""
    found = []
    for folder, dirs, files in os.walk(run_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in sorted(files) if f.endswith(OUTPUT_SUFFIX)]
    return found


def flow_statuses(run_dir: Path) -> list[Status]:
    """The lights of every flow a build ran, from its manifest, else from its sub-folders."""
    manifest = records.read_flows_manifest(run_dir)
    if not manifest:
        own = set(own_outputs(run_dir))
        return [scan_output(f) for f in output_files(run_dir) if f not in own]
    statuses = []
    for entry in manifest:
        if entry.get("status") == "error":
            statuses.append(Status.ERROR)
        output = entry.get("output_file")
        if isinstance(output, str):
            statuses.append(scan_output(run_dir / output))
    return statuses


def instance_status(run_dir: str | os.PathLike) -> Status:
    """An instance folder's light from its logs alone; a build's includes its flows.

    Red when there is no output, or the instance's own output lacks its footer (the
    run was killed, or is still going on).
    """
    folder = Path(run_dir)
    own = own_outputs(folder)
    if not own:
        return Status.ERROR
    statuses = [scan_output(f) for f in own]
    statuses += [Status.ERROR for f in own if not finished_output(f)]
    return worst(statuses + flow_statuses(folder))


def analyze_execution_logs(run_dir: str | os.PathLike) -> str:
    """``"success"``, ``"warning"`` or ``"error"`` for one instance folder, a build's too."""
    return instance_status(run_dir).value
