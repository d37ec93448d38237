"""Every file name in a runs folder, the config files flows run with, and the footer.

The one owner of the names a runs folder holds (docs/concepts.md, "Run folder"):
what a flow leaves in its instance folder, the engine's bookkeeping beside it, and
the files a conduct keeps at the top of the runs folder.
Every other module builds these names through here, so a name changes in one place.

Standard library only: flows running as plain scripts use it too.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ductaflow.errors import Location, UsageError

#: Most bytes of captured output kept per run; a flow printing gigabytes must not
#: fill the disk or the report. The footer is written past the cap.
OUTPUT_CAP_BYTES = 50 * 1024 * 1024

# --- what a flow leaves in its instance folder: <flow> is the flow file's stem -------

CONFIG_SUFFIX = "_config.json"
OUTPUT_SUFFIX = "_execution_output.txt"
RESULTS_SUFFIX = "_results.json"
DEBUG_NOTEBOOK_SUFFIX = "_debug.ipynb"
DEBUG_OUTPUT_SUFFIX = "_debug_output.txt"

# --- the engine's bookkeeping inside each instance folder (records.py reads them) ----

STATE_DIR = ".ductaflow"
STARTED = f"{STATE_DIR}/started.json"
RECORD = f"{STATE_DIR}/record.json"
HISTORY = f"{STATE_DIR}/history.json"
FLOWS_MANIFEST = f"{STATE_DIR}/flows.jsonl"
DASK_ATTEMPT_LOCK = f"{STATE_DIR}/dask_attempt.lock"
DASK_ATTEMPT_FILE = f"{STATE_DIR}/dask_attempt.json"

# --- what a conduct keeps at the top of the runs folder ------------------------------

RESULTS_CSV = "conductor_results.csv"
RESULTS_XLSX = "conductor_results.xlsx"
REPORT_HTML = "conductor_status_report.html"
#: Where each instance's row sits in the report, to reuse it while the instance stands.
REPORT_INDEX = ".conductor.report.json"
LOCK = ".conductor.lock"
PLAN_CACHE = ".conductor.plan.json"
#: The whole cached plan, read only when a decision itself is asked for.
PLAN_DETAIL = ".conductor.plan.detail.json"
GENERATION = ".conductor.generation"
#: Per stage, the instances its tables defined at its last conduct, rows as typed.
STAGE_ROSTERS = ".conductor.stages"


def stage_csv_path(runs_dir: Path, stage: str) -> Path:
    """``conductor_results_<stage>.csv``: a stage's results table (parameters, status,
    recorded values)."""
    return runs_dir / f"conductor_results_{stage}.csv"


def config_path(run_dir: Path, stem: str) -> Path:
    """``<flow>_config.json``: the config the flow ran with."""
    return run_dir / f"{stem}{CONFIG_SUFFIX}"


def notebook_path(run_dir: Path, stem: str) -> Path:
    """``<flow>.ipynb``: the executed notebook (notebook mode)."""
    return run_dir / f"{stem}.ipynb"


def html_path(run_dir: Path, stem: str) -> Path:
    """``<flow>.html``: the notebook exported to HTML, when asked for."""
    return run_dir / f"{stem}.html"


def output_path(run_dir: Path, stem: str) -> Path:
    """``<flow>_execution_output.txt``: everything the flow printed, and the footer."""
    return run_dir / f"{stem}{OUTPUT_SUFFIX}"


def results_path(run_dir: Path, stem: str) -> Path:
    """``<flow>_results.json``: the values the flow recorded (``ductaflow.record``)."""
    return run_dir / f"{stem}{RESULTS_SUFFIX}"


def debug_notebook_path(run_dir: Path, stem: str) -> Path:
    """``<flow>_debug.ipynb``: the flow with the run's config, ready to step through."""
    return run_dir / f"{stem}{DEBUG_NOTEBOOK_SUFFIX}"


def debug_output_path(run_dir: Path, stem: str) -> Path:
    """``<flow>_debug_output.txt``: what a debug run of the flow printed (the run's own
    output file is left as the run left it)."""
    return run_dir / f"{stem}{DEBUG_OUTPUT_SUFFIX}"


def run_files(run_dir: Path, stem: str) -> tuple[Path, ...]:
    """The files one run of a flow rewrites: output, notebook, HTML export, results."""
    return (output_path(run_dir, stem), notebook_path(run_dir, stem), html_path(run_dir, stem),
            results_path(run_dir, stem))


def attempt_path(path: Path, attempt: int) -> Path:
    """Where a failed attempt's file is kept so the next attempt does not overwrite it:
    ``model_execution_output.txt`` -> ``model_execution_output.attempt1.txt``."""
    base, dot, suffix = path.name.rpartition(".")
    return path.with_name(f"{base}.attempt{attempt}{dot}{suffix}")


_ATTEMPT = re.compile(r"\.attempt\d+(\.|$)")


def engine_files(names: Iterable[str], folders: Iterable[str] = ()) -> set[str]:
    """Which entries of one folder the engine wrote, not a flow: its bookkeeping
    folder, captured output, executed notebooks and HTML exports (beside their saved
    config), set-aside attempts, what ``ductaflow debug`` leaves. They change with
    every run, whatever the flow made, so a fingerprint of what a folder holds leaves
    them out."""
    names = list(names)
    stems = {stem_of_config(name) for name in names}
    own = {STATE_DIR} & set(folders)
    for name in names:
        base, _, suffix = name.rpartition(".")
        if (name.endswith((OUTPUT_SUFFIX, DEBUG_OUTPUT_SUFFIX, DEBUG_NOTEBOOK_SUFFIX))
                or _ATTEMPT.search(name) or (suffix in ("ipynb", "html") and base in stems)):
            own.add(name)
    return own


def stem_of_output(name: str) -> str | None:
    """The flow's stem from an output file's name, None for any other file."""
    return name[: -len(OUTPUT_SUFFIX)] if name.endswith(OUTPUT_SUFFIX) else None


def stem_of_config(name: str) -> str | None:
    """The flow's stem from a saved config's name, None for any other file."""
    return name[: -len(CONFIG_SUFFIX)] if name.endswith(CONFIG_SUFFIX) else None


# --- config files -------------------------------------------------------------------


class ConfigFileError(UsageError):
    """A config file that is missing, unreadable, not JSON, or not a JSON object."""


def read_config(path: Path, shown: str | None = None) -> dict[str, Any]:
    """The JSON object in a config file: UTF-8, with or without a BOM (Notepad adds one).

    Every config ductaflow reads goes through here (a base config, ``--config``, a
    run's saved config), so all of them accept the same files and refuse the rest
    with one line naming the file (``shown``, else the path).
    """
    where = Location(shown or str(path))
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigFileError("config file not found", where) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"cannot read the config file: {_one_line(exc)}", where) from exc
    try:
        config = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise ConfigFileError(f"invalid JSON: {_one_line(exc)}", where) from exc
    if not isinstance(config, dict):
        raise ConfigFileError(f"a config must hold a JSON object, not {type(config).__name__}",
                              where)
    return config


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (no number can be infinite or not a number)")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def localize_paths(config: dict[str, Any], project_root: Path, run_dir: Path) -> dict[str, Any]:
    """A base config made ready for a flow that runs alone in ``run_dir``, as
    ``conduct`` makes it for an instance: each relative path value (with ``/``, ``\\``
    or ``.``) naming an existing file or folder of the project becomes relative to
    ``run_dir`` (absolute when it cannot be). A config a run saved (it has
    ``_project_root``) is already made ready: it comes back as it is."""
    if "_project_root" in config:
        return config
    root, here = Path(project_root).absolute(), Path(run_dir).absolute()

    def ready(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ready(v) for k, v in value.items()}
        if isinstance(value, list):
            return [ready(v) for v in value]
        if not isinstance(value, str) or not any(c in value for c in "/\\."):
            return value
        path = value.replace("\\", "/")
        if path.startswith("/") or ":" in path or path.startswith("../") or path == "..":
            return value
        target = root / path
        if not target.exists():
            return value
        try:
            return Path(os.path.relpath(target, here)).as_posix()
        except ValueError:  # another drive
            return target.as_posix()

    return {k: v if k.startswith("_") else ready(v) for k, v in config.items()}


def write_config(path: Path, config: dict[str, Any]) -> None:
    """Save a config as people read it: sorted keys, indented, UTF-8."""
    text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    unlinked(path).write_text(text + "\n", encoding="utf-8")


# --- links where the engine keeps its own files ---------------------------------------


def unlinked(path: Path) -> Path:
    """``path``, with a link found there removed (its target left as it is).

    ductaflow writes nothing outside the runs folder, whatever inside it is a link: a
    flow or a user may leave one where the engine keeps a file of its own (the
    output, the config, ``.ductaflow``), and writing there would write through it.
    Atomic writes replace a link by themselves; every other write, and every folder
    the engine writes into, comes here first.
    """
    if path.is_symlink():
        path.unlink()
    return path


def real_folder(path: Path) -> Path:
    """``path`` as a folder of the runs folder's own: a link there is removed first."""
    unlinked(path).mkdir(parents=True, exist_ok=True)
    return path


def engine_links_removed(run_dir: Path, stem: str) -> None:
    """Before a run writes in ``run_dir``: no link where its files go (the config,
    output, notebook, HTML, results, debug files, the bookkeeping folder and what it
    holds)."""
    for path in (config_path(run_dir, stem), *run_files(run_dir, stem),
                 debug_notebook_path(run_dir, stem), debug_output_path(run_dir, stem)):
        unlinked(path)
    state = run_dir / STATE_DIR
    if state.is_symlink():
        state.unlink()
    elif state.is_dir():
        for entry in os.scandir(state):
            if entry.is_symlink():
                os.unlink(entry.path)


# --- the footer -----------------------------------------------------------------------


def footer_line(stem: str, seconds: float, error: str | None = None) -> str:
    """The footer every output file ends with, which users grep for across all runs
    (docs/concepts.md, "Run folder")."""
    if error is None:
        return f"✅ Completed {stem} | Time: {seconds:.2f}s"
    error = " ".join(error.split())
    return f"❌ Failed {stem} | Time: {seconds:.2f}s | {error}"


def append_footer(path: Path, stem: str, seconds: float, error: str) -> None:
    """End an output file whose run was stopped from outside (Ctrl-C) with the failed
    footer, as a run that ended by itself does, so ``grep "❌ Failed"`` finds it."""
    try:
        with open(path, "a+b") as handle:
            handle.seek(0, os.SEEK_END)
            newline = b""
            if handle.tell():
                handle.seek(-1, os.SEEK_END)
                newline = b"" if handle.read(1) == b"\n" else b"\n"
            handle.write(newline + (footer_line(stem, seconds, error) + "\n").encode("utf-8"))
    except OSError:
        pass  # the folder is gone: nothing to end


def is_footer(line: str) -> bool:
    """Whether a captured line is the footer (which never counts for the warning scan)."""
    return line.startswith(("✅ Completed ", "❌ Failed "))


class OutputWriter:
    """The one capped, live sink for everything a flow prints: ``<flow>_execution_output.txt``.

    Used by the notebook runner (papermill calls ``write`` once per kernel stream
    message), by the script runner (the child's pipe) and inside a script flow run by
    hand (``load_cli_config`` tees stdout and stderr here). Every write is flushed, so
    the file grows as the flow prints and ``tail -f`` shows progress; writes may come
    from several threads, or from a signal handler mid-write. After ``cap`` bytes (cut
    on a character boundary) one note is written and the rest dropped; ``write_line``
    (the footer) still lands past the cap. A full disk drops output, never the flow:
    the terminal still has it, and the record's write then fails with a clear error.
    With ``echo`` the same text also goes to this process's stdout.
    """

    def __init__(self, path: Path, echo: bool = False, cap: int = OUTPUT_CAP_BYTES,
                 mode: str = "w"):
        self.path = path
        self.echo = echo
        self.cap = cap
        self.written = 0
        self.truncated = False
        self.at_line_start = True
        self._lock = threading.RLock()
        self._file: Any = open(unlinked(path), mode + "b")  # noqa: SIM115 - closed by close()

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, text: str) -> int:
        """Write what the flow printed, up to the cap; returns ``len(text)`` as a stream."""
        if not text:
            return 0
        if self.echo:
            _echo(text)
        with self._lock:
            for start in range(0, len(text), _SLICE):  # bounded copies of a huge message
                if self.truncated or self._file is None:
                    break
                self._capped(text[start:start + _SLICE].encode("utf-8", "replace"))
        return len(text)

    def _capped(self, data: bytes) -> None:
        room = self.cap - self.written
        if len(data) <= room:
            self._emit(data)
            self.written += len(data)
            return
        self._emit(data[:room].decode("utf-8", "ignore").encode("utf-8"))
        note = f"... output truncated at {_size(self.cap)} ...\n"
        self._emit((note if self.at_line_start else "\n" + note).encode())
        self.written = self.cap
        self.truncated = True

    def write_text(self, text: str) -> None:
        """Write a block of text (a traceback) on lines of its own, past any cap."""
        self.write_line(text.rstrip("\n"))

    def write_line(self, line: str, echo: bool | None = None) -> None:
        """Write one whole line past any cap, starting a new one if the flow left one open."""
        with self._lock:
            prefix = "" if self.at_line_start else "\n"
            if echo if echo is not None else self.echo:
                _echo(prefix + line + "\n")
            if self._file is not None:
                self._emit((prefix + line + "\n").encode("utf-8", "replace"))

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        try:
            self._file.write(data)
            self._file.flush()
        except OSError:
            return  # a full disk: see the class docstring
        self.at_line_start = data.endswith(b"\n")

    def flush(self) -> None:
        """Nothing to do: every write is flushed (file-like API for papermill)."""

    def close(self, last_line: str = "") -> None:
        """Write ``last_line`` (the footer) when given, then stop writing for good."""
        with self._lock:
            if self._file is None:
                return
            if last_line:
                self.write_line(last_line, echo=False)
            self._file.close()
            self._file = None


_SLICE = 1 << 20


def _size(cap: int) -> str:
    megabytes, rest = divmod(cap, 1024 * 1024)
    return f"{megabytes} MB" if megabytes and not rest else f"{cap} bytes"


def _echo(text: str) -> None:
    stream = sys.stdout
    try:
        stream.write(text)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, errors="replace").decode(encoding))
    stream.flush()
