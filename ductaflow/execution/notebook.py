"""Run one flow as a notebook through papermill, capturing everything it prints.

``run_notebook`` is the single-instance engine: the conductor, builds and the CLI all
call it. papermill parameterizes and executes; jupytext converts ``.py`` flows;
nbclient's ``timeout_func`` turns papermill's per-cell timeout into a per-instance
deadline; a kernel manager subclass starts kernels on IPC transport (POSIX) in the
execution folder without papermill's process-wide ``chdir`` (nteract/papermill#473);
the ``engine`` module's papermill engine keeps the notebook's outputs bounded.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ductaflow import environment
from ductaflow.errors import FlowError, FlowTimeoutError, KernelDiedError, UsageError
from ductaflow.execution.kernels import kernel_manager_class
from ductaflow.run_folder import fingerprints, recorded
from ductaflow.run_folder.files import (
    OutputWriter,
    config_path,
    debug_notebook_path,
    engine_links_removed,
    footer_line,
    html_path,
    notebook_path,
    output_path,
    read_config,
    unlinked,
    write_config,
)

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_notebook(
    notebook_file: str | os.PathLike,
    config: Mapping[str, Any] | None = None,
    execution_dir: str | os.PathLike | None = None,
    project_root: str | os.PathLike | None = None,
    timeout: float | None = None,
    export_html: bool = False,
    no_execute: bool = False,
    kernel_name: str = "python3",
    *,
    echo: bool = False,
    code: dict[str, str] | None = None,
) -> Path:
    """Execute one flow in ``execution_dir`` and return the executed notebook's path.

    Raises a ``FlowError`` (``FlowTimeoutError``, ``KernelDiedError``) when the flow
    fails; its notebook, output file and config stay on disk. With ``echo`` the
    flow's output is also shown on this process's stdout as it is printed. ``code``,
    when given, receives the code that ran (``ran_code``), for the instance's record.
    """
    __tracebackhide__ = True  # a build's traceback shows its own line, not ductaflow's
    root = resolve_project_root(project_root)
    flow = resolve_flow(notebook_file, root)
    run_dir = Path(execution_dir if execution_dir is not None else Path.cwd()).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    stem = flow.stem
    engine_links_removed(run_dir, stem)
    full_config = {**dict(config or {}), "_project_root": str(root)}
    write_config(config_path(run_dir, stem), full_config)
    recorded.clear(run_dir, stem)
    started_ns = time.time_ns()
    flow_code = fingerprints.code_fingerprint(root, [_relative_posix(flow, root)])
    nb = load_flow_notebook(flow, kernel_name)
    out_nb = notebook_path(run_dir, stem)
    if no_execute:
        _prepare_only(nb, out_nb, full_config, kernel_name)
        return out_nb
    started = time.monotonic()
    modules = {"of": (str(root), os.environ.get(environment.RUNS_DIR))}
    with OutputWriter(output_path(run_dir, stem), echo=echo) as writer:
        try:
            _execute(nb, out_nb, full_config, run_dir, kernel_name, timeout, writer, stem,
                     modules, root)
        except FlowError as exc:
            exc.where = _where_in_flow(flow, root, out_nb, exc)
            if exc.where:
                writer.write_line(f"at {exc.where}", echo=False)
            footer = footer_line(stem, time.monotonic() - started, exc.summary)
            writer.write_line(footer, echo=False)
            ran = ran_code(flow_code, root, modules.get("found"), started_ns, code)
            _after_run(flow, run_dir, out_nb, export_html, "error", root, ran)
            print(footer, flush=True)
            raise
        footer = footer_line(stem, time.monotonic() - started)
        writer.write_line(footer, echo=False)
    ran = ran_code(flow_code, root, modules.get("found"), started_ns, code)
    _after_run(flow, run_dir, out_nb, export_html, _light(output_path(run_dir, stem)), root,
               ran)
    print(footer, flush=True)
    return out_nb


def ran_code(flow_code: dict[str, str], root: Path, modules: list[str] | None,
             started_ns: int, into: dict[str, str] | None) -> dict[str, str]:
    """The code one run ran: the flow as it was when the run started, and each project
    module it imported (``fingerprints.module_fingerprints``); also put ``into``."""
    code = {**flow_code, **fingerprints.module_fingerprints(root, modules or (), started_ns)}
    if into is not None:
        into.update(code)
    return code


def run_step_flow(
    notebook_file: str | os.PathLike,
    step_name: str,
    instance_name: str,
    config: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Path:
    """Run a flow in ``runs/<step_name>/<instance_name>/`` (the first ductaflow's call shape)."""
    execution_dir = Path("runs") / step_name / instance_name
    return run_notebook(notebook_file, config=config, execution_dir=execution_dir, **kwargs)


def debug_flow(
    flow_path: str | os.PathLike,
    execution_dir: str | os.PathLike,
    config: Mapping[str, Any] | None = None,
    project_root: str | os.PathLike | None = None,
) -> Path:
    """Write ``<flow>_debug.ipynb`` with the exact config into ``execution_dir``.

    With no ``config``, the one saved in that folder by the last run is reused. The
    run's own notebook, output and config are left as they are: a failed run's
    traceback is what a user debugs against.
    """
    run_dir = Path(execution_dir).absolute()
    root = resolve_project_root(project_root)
    flow = resolve_flow(flow_path, root)
    if config is None:
        config = read_saved_config(run_dir, flow.stem)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not config_path(run_dir, flow.stem).exists():
            write_config(config_path(run_dir, flow.stem), {**config, "_project_root": str(root)})
    full = {**{k: v for k, v in config.items() if k != "_project_root"},
            "_project_root": str(root)}
    target = debug_notebook_path(run_dir, flow.stem)
    _prepare_only(load_flow_notebook(flow), target, full, "python3")
    return target


def read_saved_config(run_dir: Path, stem: str) -> dict[str, Any]:
    """The config a flow last ran with in ``run_dir``; a clear error when there is none."""
    path = config_path(run_dir, stem)
    if not path.exists():
        raise UsageError(f"no saved config {path}: run the flow there first")
    return read_config(path)


def resolve_project_root(project_root: str | os.PathLike | None) -> Path:
    """The explicit root, else the conductor's (inherited by builds), else the cwd."""
    if project_root is None:
        project_root = os.environ.get(environment.PROJECT_ROOT) or Path.cwd()
    return Path(project_root).absolute()


def resolve_flow(notebook_file: str | os.PathLike, root: Path) -> Path:
    """Find the flow as given, else relative to the project root (as builds name flows)."""
    path = Path(notebook_file)
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, root / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.absolute()
    raise UsageError(f"flow not found: {notebook_file}")


def load_flow_notebook(flow: Path, kernel_name: str = "python3") -> Any:
    """Read a jupytext ``.py`` or an ``.ipynb`` flow and name its kernel and language."""
    import jupytext

    return name_kernel(jupytext.read(flow), kernel_name)


def name_kernel(nb: Any, kernel_name: str = "python3") -> Any:
    """Name the notebook's kernel and language, as papermill needs to start it."""
    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    nb.metadata.pop("jupytext", None)
    return nb


def _prepare_only(nb: Any, out_nb: Path, config: dict, kernel_name: str) -> None:
    import papermill

    papermill.execute_notebook(nb, str(out_nb), parameters={"config": config},
                               prepare_only=True, kernel_name=kernel_name,
                               language="python", progress_bar=False)


def _execute(nb: Any, out_nb: Path, config: dict, run_dir: Path, kernel_name: str,
             timeout: float | None, writer: OutputWriter, stem: str,
             modules: dict[str, Any], root: Path) -> None:
    """Run the notebook; translate papermill's and nbclient's failures into ours."""
    __tracebackhide__ = True
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from ductaflow.execution.papermill_engine import ENGINE_NAME

    deadline = None if timeout is None else time.monotonic() + timeout
    logging.getLogger("papermill").addHandler(logging.NullHandler())
    scratch = tempfile.mkdtemp(prefix="df-", dir="/tmp" if os.name == "posix" else None)
    kernel_log = Path(scratch) / "kernel.log"
    try:
        papermill.execute_notebook(
            nb, str(out_nb), parameters={"config": config}, kernel_name=kernel_name,
            engine_name=ENGINE_NAME, output_file_name=writer.path.name,
            request_save_on_cell_execute=False, save_to=str(out_nb),
            language="python", progress_bar=False, stdout_file=writer, stderr_file=writer,
            start_timeout=60, resources={"metadata": {"path": str(run_dir)}},
            kernel_manager_class=kernel_manager_class(
                scratch if os.name == "posix" else None, kernel_log, root),
            timeout_func=None if deadline is None else _remaining(deadline),
            # A flow printing fast can leave IOPub draining past nbclient's 4 s: that
            # is no timeout, and its outputs still arrive.
            raise_on_iopub_timeout=False, modules=modules,
        )
    except papermill.PapermillExecutionError as exc:
        traceback_text = _ANSI.sub("", "\n".join(exc.traceback))
        writer.write_text(traceback_text)
        # The flow's traceback is in its output file: a build that ran it sees one
        # FlowError, not papermill's chain of internals.
        raise FlowError(
            f"{stem} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}",
            flow=stem, ename=exc.ename, evalue=exc.evalue, cell=exc.exec_count,
            output_file=str(writer.path), traceback_text=traceback_text) from None
    except CellTimeoutError as exc:
        writer.write_text(f"Timeout: stopped after {timeout} s")
        raise FlowTimeoutError(f"{stem} timed out after {timeout} s", flow=stem,
                               ename="Timeout", evalue=f"stopped after {timeout} s",
                               output_file=str(writer.path)) from exc
    except DeadKernelError as exc:
        tail = _tail(kernel_log)
        writer.write_text("KernelDied: the kernel died while running the flow"
                          + (f"\n{tail}" if tail else ""))
        raise KernelDiedError(f"{stem}: the kernel died ({exc})", flow=stem,
                              ename="KernelDied", evalue="the kernel died",
                              output_file=str(writer.path)) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


_CELL_LINE = re.compile(r"Cell In\[(\d+)\], line (\d+)")


def _where_in_flow(flow: Path, root: Path, out_nb: Path, exc: FlowError) -> str:
    """``flows/model.py:42`` for the traceback's last ``Cell In[4], line 8``: the line of
    the file the user edits, not of the notebook papermill ran."""
    found = _CELL_LINE.findall(exc.traceback_text)
    if not found or flow.suffix != ".py":
        return ""
    count, line = int(found[-1][0]), int(found[-1][1])
    try:
        import nbformat

        cells = nbformat.read(out_nb, as_version=4).cells
        text = flow.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return ""
    source = next((c.source for c in cells if c.get("execution_count") == count), "")
    at = text.find(source) if source.strip() else -1
    if at < 0:
        return ""
    return f"{_relative_posix(flow, root)}:{text.count(chr(10), 0, at) + line}"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _remaining(deadline: float):
    """nbclient asks this at each cell's start: the instance's remaining time."""

    def timeout_for(cell: Any) -> float:
        return max(deadline - time.monotonic(), 0.01)

    return timeout_for


def _light(output_file: Path) -> str:
    from ductaflow.run_folder.lights import scan_output

    return scan_output(output_file).value


def _after_run(flow: Path, run_dir: Path, out_nb: Path, export_html: bool, status: str,
               root: Path, code: dict[str, str]) -> None:
    """Export HTML (also for a failed run: that is when it is read) and note the flow."""
    if export_html and out_nb.exists():
        export_notebook_html(out_nb)
    _note_in_manifest(flow, run_dir, status, root, code)


def export_notebook_html(notebook: Path) -> Path:
    """Write ``<flow>.html`` beside the executed notebook."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    target = unlinked(html_path(notebook.parent, notebook.stem))
    target.write_text(body, encoding="utf-8")
    return target


def _note_in_manifest(flow: Path, run_dir: Path, status: str, root: Path,
                      code: dict[str, str]) -> None:
    """Inside a build run by the conductor, record each flow it ran for its record.

    The conductor points ``DUCTAFLOW_FLOWS_MANIFEST`` at the build's instance
    bookkeeping; a flow run from anywhere else writes nothing.
    """
    manifest = os.environ.get(environment.FLOWS_MANIFEST)
    if not manifest:
        return
    from ductaflow.run_folder.records import append_flows_manifest

    instance_dir = Path(manifest).parent.parent
    if run_dir == instance_dir.absolute():
        return  # the instance's own flow, not one its build ran
    append_flows_manifest(instance_dir, {
        "flow": _relative_posix(flow, root),
        "execution_dir": _relative_posix(run_dir, instance_dir),
        "status": status,
        "output_file": _relative_posix(output_path(run_dir, flow.stem), instance_dir),
        "code": code,
    })


def _relative_posix(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive on Windows
        return path.as_posix()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the ductaflow command")
