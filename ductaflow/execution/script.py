"""Run one flow as a plain Python script in a fresh process (``--mode script``).

No kernel: the flow runs as ``python FLOW --config ... --output-dir ...`` through a
tiny runner (``python -m ductaflow.execution.script``) that knows exactly how it ended and
notes it in a file of its own, while this process reads the child's stdout and stderr
and writes them, as they come, to ``<flow>_execution_output.txt``. Reading the pipe
here, rather than teeing inside the child, also captures what C libraries and
subprocesses print. The flow runs in a process group of its own, which ends with it.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import runpy
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ductaflow import environment
from ductaflow.errors import FlowError, FlowTimeoutError, KernelDiedError
from ductaflow.execution import processes
from ductaflow.run_folder import fingerprints, recorded
from ductaflow.run_folder.files import (
    OutputWriter,
    config_path,
    engine_links_removed,
    footer_line,
    is_footer,
    output_path,
    write_config,
)

_CHUNK = 1 << 16
#: How long the output of a finished flow is still read: what its children printed
#: before they were stopped. A pipe held open past this by a process that left the
#: flow's group is no longer waited for.
DRAIN_S = 2.0


def run_script(
    flow: Path,
    config: Mapping[str, Any] | None,
    execution_dir: Path,
    project_root: Path,
    timeout: float | None = None,
    echo: bool = False,
    code: dict[str, str] | None = None,
) -> Path:
    """Run ``flow`` as a script in ``execution_dir``; return the output file's path.

    Raises ``FlowError`` (``FlowTimeoutError``, ``KernelDiedError``) like
    ``run_notebook``; the output file always ends with the footer line. ``code``, when
    given, receives the code that ran (as ``run_notebook``'s does).
    """
    execution_dir.mkdir(parents=True, exist_ok=True)
    stem = flow.stem
    engine_links_removed(execution_dir, stem)
    cfg = config_path(execution_dir, stem)
    write_config(cfg, {**dict(config or {}), "_project_root": str(project_root)})
    recorded.clear(execution_dir, stem)
    command = [sys.executable, "-u", "-m", "ductaflow.execution.script", str(flow),
               "--config", str(cfg), "--output-dir", str(execution_dir)]
    handle, notes_file = tempfile.mkstemp(prefix="df-notes-", suffix=".json")
    os.close(handle)
    env = {**os.environ, environment.CAPTURED_BY_PARENT: "1", "PYTHONIOENCODING": "utf-8",
           "PYTHONUNBUFFERED": "1", environment.NOTES_FILE: notes_file,
           environment.PROJECT_ROOT: str(project_root)}
    started_ns = time.time_ns()
    flow_code = fingerprints.code_fingerprint(project_root, [_relative(flow, project_root)])
    started = time.monotonic()
    notes: dict[str, Any] = {}
    try:
        with OutputWriter(output_path(execution_dir, stem), echo=echo) as writer:
            proc = processes.start(command, cwd=project_root, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                _follow(proc, writer, timeout)
            finally:
                processes.unregister(proc)
            notes = _noted(notes_file)
            return _conclude(proc, writer, str(notes.get("footer", "")), stem, timeout,
                             time.monotonic() - started)
    except FlowError as exc:
        exc.where = str(notes.get("where", ""))
        raise
    finally:
        if code is not None:
            code.update(flow_code)
            code.update(fingerprints.module_fingerprints(
                project_root, _modules(notes), started_ns))
        with contextlib.suppress(OSError):
            os.remove(notes_file)


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive on Windows
        return path.as_posix()


def _noted(path: str) -> dict[str, Any]:
    """What the runner wrote down for its parent: the ``footer``, the ``modules`` the
    flow imported, ``where`` it failed. A file beside the output, not a mark in it: any
    bytes a flow prints are data, and a flow may close its stdout."""
    try:
        found = json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _modules(notes: Mapping[str, Any]) -> list[str]:
    """The project modules the runner wrote down; none when it could not."""
    found = notes.get("modules")
    return [m for m in found if isinstance(m, str)] if isinstance(found, list) else []


def _follow(proc: subprocess.Popen, writer: OutputWriter, timeout: float | None) -> None:
    """Copy the child's output to the writer as it comes, until the flow has ended.

    The flow ends when its runner exits (or at the deadline): then whatever it
    started is stopped with it (``processes.end_after``), so a child that kept the
    pipe open neither outlives the instance nor keeps it "running". The output is read
    in a thread of its own, in bounded chunks: a flood without newlines never sits
    whole in memory.
    """
    assert proc.stdout is not None
    reader = threading.Thread(target=_copy, args=(proc.stdout, writer), daemon=True)
    reader.start()
    timer = None
    if timeout is not None:
        timer = threading.Timer(timeout, _stop, args=(proc,))
        timer.daemon = True
        timer.start()
    try:
        processes.end_after(proc)
    finally:
        if timer is not None:
            timer.cancel()
    reader.join(DRAIN_S)


def _copy(stream: Any, writer: OutputWriter) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with contextlib.suppress(OSError, ValueError):
        for raw in iter(lambda: stream.readline(_CHUNK), b""):
            writer.write(decoder.decode(raw).replace("\r\n", "\n"))
    writer.write(decoder.decode(b"", final=True))


def _stop(proc: subprocess.Popen) -> None:
    """Stop the flow's whole process group (it may have started its own children)."""
    proc.timed_out = True  # type: ignore[attr-defined]
    processes.kill_tree(proc)


def _conclude(proc: subprocess.Popen, writer: OutputWriter, footer: str, stem: str,
              timeout: float | None, elapsed: float) -> Path:
    """Turn the exit into a result; write the footer when the runner could not."""
    if getattr(proc, "timed_out", False):
        summary = f"Timeout: stopped after {timeout} s"
        writer.write_line(summary)
        writer.write_line(footer_line(stem, elapsed, summary), echo=False)
        raise FlowTimeoutError(f"{stem} timed out after {timeout} s", flow=stem,
                               ename="Timeout", evalue=f"stopped after {timeout} s",
                               output_file=str(writer.path))
    if not is_footer(footer):
        summary = f"ProcessDied: {_ended(proc.returncode)}"
        writer.write_line(footer_line(stem, elapsed, summary), echo=False)
        raise KernelDiedError(f"{stem}: the process died ({summary})", flow=stem,
                              ename="ProcessDied", evalue=_ended(proc.returncode),
                              output_file=str(writer.path))
    writer.write_line(footer)
    if footer.startswith("❌"):  # the runner's word, whatever the exit code after it
        summary = footer.split(" | ", 2)[-1]
        ename, _, evalue = summary.partition(": ")
        raise FlowError(f"{stem} failed: {summary}", flow=stem, ename=ename, evalue=evalue,
                        output_file=str(writer.path))
    return writer.path


def _ended(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _run_as_main(argv: list[str]) -> int:
    """The runner inside the child: run the flow as ``__main__``, note how it ended.

    ``sys.exit()``, ``sys.exit(0)`` and ``raise SystemExit`` end a flow early without
    error; any other exit code or an exception is a failure (docs/concepts.md). When
    the worker is gone by the end (killed while this started), nobody will stop what
    the flow started: stop it here.
    """
    processes.watch_parent()
    try:
        return _run_flow(argv)
    finally:
        if processes.parent_gone():
            processes.end_own_group()


def _run_flow(argv: list[str]) -> int:
    flow = Path(argv[0])
    sys.argv = [str(flow), *argv[1:]]
    sys.path.insert(0, str(flow.parent))
    notes_file = os.environ.pop(environment.NOTES_FILE, None)
    root = os.getcwd()  # the project root: the flow may move elsewhere
    started = time.monotonic()
    error = None
    where = ""
    try:
        runpy.run_path(str(flow), run_name="__main__")
    except SystemExit as exc:
        error = _exit_error(exc.code)
    except BaseException as exc:  # noqa: BLE001 - any failure of user code is a result
        error = f"{type(exc).__name__}: {exc}"
        where = _where_in_flow(exc, flow, root)
        with contextlib.suppress(Exception):  # the flow may have closed stderr
            _print_traceback(exc)
            if where:
                print(f"at {where}", file=sys.stderr)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    if notes_file:
        footer = footer_line(flow.stem, time.monotonic() - started, error)
        _write_notes(notes_file, root, where, footer)
    return 0 if error is None else 1


def _write_notes(path: str, root: str, where: str, footer: str) -> None:
    """Note how the flow ended, the project modules it imported (for its record) and
    where it failed."""
    try:
        found = fingerprints.project_modules(root, os.environ.get(environment.RUNS_DIR))
    except Exception:  # noqa: BLE001 - without them the record only misses some code
        found = []
    with contextlib.suppress(OSError):
        Path(path).write_text(json.dumps({"footer": footer, "modules": found, "where": where}),
                              encoding="utf-8")


_OURS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _print_traceback(exc: BaseException) -> None:
    """The flow's traceback as Python prints it, without the runner's own frames
    (runpy, ductaflow) above the flow's: they say nothing about the flow."""
    shown = traceback.TracebackException.from_exception(exc)
    frames = [frame for frame in shown.stack if "runpy" not in frame.filename
              and not os.path.abspath(frame.filename).startswith(_OURS + os.sep)]
    shown.stack = traceback.StackSummary.from_list(frames)
    print("".join(shown.format()), end="", file=sys.stderr)


def _where_in_flow(exc: BaseException, flow: Path, root: str) -> str:
    """``flows/model.py:42``: the flow's own line the traceback last passed through."""
    target = os.path.realpath(flow)
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
             if os.path.realpath(frame.filename) == target]
    if not lines:
        return ""
    try:
        shown = Path(os.path.relpath(target, root)).as_posix()
    except ValueError:
        shown = Path(target).as_posix()
    return f"{shown}:{lines[-1]}"


def _exit_error(code: object) -> str | None:
    if code is None or code == 0:
        return None
    if not isinstance(code, int):
        with contextlib.suppress(Exception):
            print(code, file=sys.stderr)
    return f"SystemExit: {code}"


if __name__ == "__main__":
    raise SystemExit(_run_as_main(sys.argv[1:]))
