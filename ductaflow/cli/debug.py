"""``ductaflow debug RUN_DIR``: the exact notebook of a run, and how to step through it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ductaflow import environment
from ductaflow.errors import UsageError
from ductaflow.execution.notebook import debug_flow, read_saved_config
from ductaflow.run_folder.files import (
    CONFIG_SUFFIX,
    config_path,
    debug_output_path,
    output_path,
    stem_of_config,
)


def prepare_debug(run_dir: Path, flow: str | None = None) -> list[str]:
    """Write ``<flow>_debug.ipynb`` into ``run_dir``; return the lines telling how to use it."""
    if not run_dir.is_dir():
        raise UsageError(f"no such run folder: {run_dir}")
    stem = _saved_stem(run_dir)
    root, flow_path = _find_flow(run_dir, stem, flow)
    notebook = debug_flow(flow_path, run_dir, project_root=root)
    config = config_path(run_dir, stem)
    script = _workspace(flow_path, root).replace("${workspaceFolder}/", "")
    return [
        *_last_outcome(run_dir, stem),
        f"notebook  {_rel(notebook)}  (the last run's config injected, nothing executed;",
        "          the run's own notebook, output and config are untouched)",
        "",
        "Jupyter:  open it, then run the cells one by one (the kernel starts in the run folder):",
        f"  jupyter lab {_rel(notebook)}",
        *_jupyter_hint(),
        "",
        "Terminal: step through the flow as a script with pdb (--debug: its output goes",
        f"  to {debug_output_path(Path(), stem)}; the run's own files are untouched):",
        f"  python -m pdb {script} --config {_rel(config)} --output-dir {_rel(run_dir)}"
        " --debug",
        "",
        "VS Code:  open the notebook and use 'Debug Cell', or add this entry to",
        "  .vscode/launch.json (it runs the flow as a script, with --debug):",
        *("  " + line for line in _launch_entry(flow_path, root, config, run_dir)),
    ]


def _last_outcome(run_dir: Path, stem: str) -> list[str]:
    """The footer of the last run, when there is one: what failed, and how."""
    try:
        lines = output_path(run_dir, stem).read_text(
            encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    last = next((line for line in reversed(lines) if line.strip()), "")
    return [f"last run  {last}", ""] if last else []


def _jupyter_hint() -> list[str]:
    import importlib.util

    if importlib.util.find_spec("jupyterlab") is None:
        return ["  (JupyterLab is not installed here: pip install jupyterlab)"]
    return []


def _saved_stem(run_dir: Path) -> str:
    """The flow name from the one ``<flow>_config.json`` a run leaves."""
    stems = sorted(s for s in (stem_of_config(p.name) for p in run_dir.iterdir()) if s)
    if len(stems) != 1:
        found = ", ".join(stems) or "none"
        raise UsageError(f"expected one saved *{CONFIG_SUFFIX} in {run_dir}, found {found}")
    return stems[0]


def _find_flow(run_dir: Path, stem: str, flow: str | None) -> tuple[Path, Path]:
    """The project root and flow file: given, recorded by the conductor, or by name."""
    config = read_saved_config(run_dir, stem)
    root = Path(config.get("_project_root") or os.environ.get(environment.PROJECT_ROOT)
                or Path.cwd())
    if flow:
        return root, Path(flow).absolute()
    record = _recorded_flow(run_dir)
    candidates = [root / record] if record else []
    for folder in ("flows", "builds"):
        candidates += [root / folder / f"{stem}.py", root / folder / f"{stem}.ipynb"]
    for candidate in candidates:
        if candidate.is_file():
            return root, candidate
    raise UsageError(f"cannot find the flow {stem!r} of {run_dir}: pass --flow FILE")


def _recorded_flow(run_dir: Path) -> str | None:
    try:
        from ductaflow.run_folder.records import read_record
    except ImportError:  # pragma: no cover - state lands with the planner
        return None
    record = read_record(run_dir)
    return record.get("flow") if record else None


def _launch_entry(flow: Path, root: Path, config: Path, run_dir: Path) -> list[str]:
    entry = {
        "name": f"ductaflow: {run_dir.name}",
        "type": "debugpy",
        "request": "launch",
        "program": _workspace(flow, root),
        "args": ["--config", _workspace(config, root), "--output-dir", _workspace(run_dir, root),
                 "--debug"],
        "cwd": "${workspaceFolder}",
        "console": "integratedTerminal",
        "justMyCode": True,
    }
    return json.dumps(entry, indent=2).splitlines()


def _workspace(path: Path, root: Path) -> str:
    try:
        return "${workspaceFolder}/" + path.absolute().relative_to(root).as_posix()
    except ValueError:
        return path.absolute().as_posix()


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
