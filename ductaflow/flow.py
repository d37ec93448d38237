"""Helpers called *inside* a flow: read its config, capture its output, unpack names.

A flow must also run where only Python and a copy of the ``ductaflow/`` folder
exist, and every flow imports this module, so it uses the standard library only
and does nothing at import. Everything that touches the process (the working
directory, ``sys.stdout``, ``sys.excepthook``, ``sys.exit``, ``atexit``) happens
only when a script calls :func:`load_cli_config`.
"""

from __future__ import annotations

import argparse
import atexit
import json
import keyword
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ductaflow import environment
from ductaflow.run_folder.files import (
    ConfigFileError,
    OutputWriter,
    config_path,
    debug_output_path,
    footer_line,
    localize_paths,
    output_path,
    read_config,
    write_config,
)

PATH_KEY_NAMES = frozenset({"path", "file", "dir", "folder"})
PATH_KEY_SUFFIXES = ("_path", "_file", "_dir", "_folder")


# --------------------------------------------------------------------------- mode


def is_notebook_execution() -> bool:
    """True inside a Jupyter (or papermill) kernel, false as ``python flow.py``.

    Decided from the running shell, not from ``sys.argv``: a kernel's shell is a
    ``ZMQInteractiveShell`` (or a subclass, e.g. Colab's) and has a ``kernel``.
    A plain IPython terminal is not a notebook: its flows read the command line.
    """
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is None:
        return False
    try:
        shell = get_ipython()
    except Exception:
        return False
    if shell is None:
        return False
    kernel_shell = any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)
    return kernel_shell or getattr(shell, "kernel", None) is not None


# ---------------------------------------------------------------- command line


def load_cli_config(
    default_config_path: str | Path | None = None, description: str = ""
) -> dict[str, Any]:
    """Read a script flow's config from the command line and set up its run folder.

    Flags: ``--config`` (default ``default_config_path``; relative paths are taken
    from the directory the script was started from), ``--output-dir`` (default:
    stay here), ``--no-execute``, ``--debug``. Injects ``_project_root`` (the start
    directory), moves into the output folder, saves ``<flow>_config.json`` there and
    tees all output to ``<flow>_execution_output.txt`` with a footer line at exit,
    unless ``DUCTAFLOW_CAPTURED_BY_PARENT=1`` says the runner does that itself.
    ``--debug`` (stepping through a run that already happened, ``ductaflow debug``)
    leaves the run's own files alone: the output goes to ``<flow>_debug_output.txt``,
    the config is not saved and ``record`` saves nothing.
    A missing or unreadable ``--config`` file exits with status 2.
    """
    started = time.perf_counter()
    args, unknown = _parse_args(default_config_path, description)
    config = _read_config(args.config, explicit=args.config_given)
    flow = _flow_name()
    output_dir = Path(args.output_dir) if args.output_dir else Path.cwd()
    config = localize_paths(config, Path.cwd(), output_dir)  # a base config: as conduct
    config["_project_root"] = config.get("_project_root") or os.getcwd()
    os.environ.setdefault(environment.PROJECT_ROOT, config["_project_root"])  # for a build
    output_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(output_dir)
    if args.debug:
        os.environ[environment.DEBUG_RUN] = "1"
        _start_capture(debug_output_path(Path(), flow), flow, started)
    else:
        write_config(config_path(Path(), flow), config)
        if os.environ.get(environment.CAPTURED_BY_PARENT) != "1":  # else the runner did
            from ductaflow.run_folder import recorded

            recorded.clear(Path(), flow)
            _start_capture(output_path(Path(), flow), flow, started)
    if unknown:
        print(f"note: ignoring unknown arguments: {' '.join(unknown)}", file=sys.stderr)
    if args.no_execute:
        print(f"Prepared {Path.cwd()}: {config_path(Path(), flow)} saved, flow not run "
              "(--no-execute)")
        sys.exit(0)
    return config


def _parse_args(
    default_config_path: str | Path | None, description: str
) -> tuple[argparse.Namespace, list[str]]:
    """Parse our three flags; leave anything else (e.g. an IDE's) alone."""
    parser = argparse.ArgumentParser(description=description or None)
    parser.add_argument("--config", default=None, help="JSON config file")
    parser.add_argument("--output-dir", default=None, help="folder to run in (created)")
    parser.add_argument(
        "--no-execute", action="store_true", help="prepare the folder and config, then stop"
    )
    parser.add_argument("--debug", action="store_true",
                        help="step through a finished run: leave its own files alone")
    args, unknown = parser.parse_known_args(sys.argv[1:])
    args.config_given = args.config is not None
    if args.config is None and default_config_path is not None:
        args.config = str(default_config_path)
    return args, unknown


def _read_config(path: str | None, explicit: bool) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when a default file does not exist."""
    if path is None:
        return {}
    file = Path(path).absolute()
    if not explicit and not file.is_file():
        return {}
    try:
        return read_config(file)
    except ConfigFileError as error:
        _refuse(str(error))


def _refuse(message: str) -> NoReturn:
    """Bad input from the command line: one line on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _flow_name() -> str:
    """The running script's stem: ``flows/data_prep.py`` -> ``data_prep``."""
    stem = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return stem if stem and stem != "-c" else "flow"


# ------------------------------------------------------------- recorded values


def record(values: Mapping[str, Any] | None = None, /, **named: Any) -> None:
    """Hand back named values for the results tables: ``record(npv=1.2e6, note="ok")``.

    Kept in the flow's folder as ``<flow>_results.json``; recording a name again keeps
    the last value. Numbers, text, booleans, dates, lists and dicts of those, and pandas
    tables (saved beside it as ``<flow>_<name>.csv``); NaN and infinity are kept as
    empty. Anything else raises ``RecordError`` here, in the flow. ``values`` takes
    names that are not Python identifiers (``record({"peak load": 812})``). Outside a
    run folder (a notebook opened by hand) the values are checked, not saved.
    """
    from ductaflow.run_folder import recorded

    given = {**dict(values or {}), **named}
    folder = Path.cwd()
    stem = recorded.flow_stem_here(folder)
    if stem is None or os.environ.get(environment.DEBUG_RUN) == "1":
        recorded.check_values(given)
        where = "a debug run" if stem is not None else "not in a run folder"
        print(f"note: {where}, so record({', '.join(given)}) saved nothing")
        return
    recorded.write_values(folder, stem, given)


# --------------------------------------------------------------------- capture


class _Tee:
    """Stands in for ``sys.stdout``/``sys.stderr``: the terminal and the output file.

    Everything a caller may ask of a stream (``isatty``, ``encoding``, ``fileno``,
    ``buffer``...) is answered by the original stream.
    """

    def __init__(self, stream: TextIO, sink: OutputWriter):
        self._stream = stream
        self._sink = sink

    def write(self, text: str) -> int:
        _write_terminal(self._stream, text)
        self._sink.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _write_terminal(stream: TextIO | None, text: str) -> None:
    """Write to the console even when it cannot encode every character."""
    if stream is None:
        return
    try:
        stream.write(text)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, "replace").decode(encoding, "replace"))


@dataclass
class _CaptureState:
    """One captured script run, readable by a runner in the same process.

    ``started`` is a ``time.perf_counter()`` value; ``error`` is the footer's
    failure text (``"ValueError: message"``), empty while nothing failed.
    """

    flow: str
    output_file: Path
    started: float
    sink: OutputWriter
    stdout: Any
    stderr: Any
    excepthook: Any
    exit: Any
    error: str = ""


_CAPTURE: _CaptureState | None = None
_ATEXIT_REGISTERED = False


def current_capture() -> _CaptureState | None:
    """The capture that :func:`load_cli_config` started in this process, if any."""
    return _CAPTURE


def _start_capture(output_file: Path, flow: str, started: float | None = None) -> _CaptureState:
    """Tee stdout and stderr to ``output_file`` (truncated) and write a footer at exit.

    The footer goes to the file only, not to the terminal: a build that runs this
    script as a subprocess captures its terminal, and its own output file must end
    with its own footer, not with the child's.
    """
    global _CAPTURE, _ATEXIT_REGISTERED
    _stop_capture()
    sink = OutputWriter(Path(output_file).absolute())
    _CAPTURE = _CaptureState(
        flow=flow,
        output_file=sink.path,
        started=time.perf_counter() if started is None else started,
        sink=sink,
        stdout=sys.stdout,
        stderr=sys.stderr,
        excepthook=sys.excepthook,
        exit=sys.exit,
    )
    sys.stdout = _Tee(sys.stdout, sink)
    sys.stderr = _Tee(sys.stderr, sink)
    sys.excepthook = _record_exception
    sys.exit = _record_exit
    if not _ATEXIT_REGISTERED:
        atexit.register(_write_footer)
        _ATEXIT_REGISTERED = True
    return _CAPTURE


def _stop_capture(footer: bool = False) -> None:
    """Put the streams and hooks back; close the file, with its footer if asked."""
    global _CAPTURE
    state, _CAPTURE = _CAPTURE, None
    if state is None:
        return
    sys.stdout, sys.stderr = state.stdout, state.stderr
    sys.excepthook, sys.exit = state.excepthook, state.exit
    seconds = time.perf_counter() - state.started
    state.sink.close(footer_line(state.flow, seconds, state.error or None) if footer else "")


def describe_exception(exc_type: type[BaseException], exc: BaseException | None) -> str:
    """``ValueError: first line of the message``, or just the name when it has none."""
    lines = str(exc).strip().splitlines() if exc is not None else []
    return f"{exc_type.__name__}: {lines[0]}" if lines else exc_type.__name__


def _record_exception(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """``sys.excepthook`` while capturing: note the failure, print the traceback."""
    state = _CAPTURE
    if state is not None:
        state.error = describe_exception(exc_type, exc)
    (state.excepthook if state is not None else sys.__excepthook__)(exc_type, exc, tb)


def _record_exit(status: Any = None) -> None:
    """``sys.exit`` while capturing: note a nonzero status for the footer.

    ``sys.exit()``/``sys.exit(0)`` end a flow early without error, as in papermill.
    A bare ``raise SystemExit(1)`` bypasses this and is reported as completed in a
    directly run script; a runner that captures the output knows the exit code.
    """
    state = _CAPTURE
    if state is not None and status not in (None, 0):
        state.error = describe_exception(SystemExit, SystemExit(status))
    if state is not None:
        state.exit(status)
    raise SystemExit(status)


def _write_footer() -> None:
    """At interpreter exit: the footer goes last, after everything printed."""
    _stop_capture(footer=True)


# --------------------------------------------------------------------- unpack


def unpack_config(
    config: dict[str, Any],
    name: str = "",
    local_vars: dict[str, Any] | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """The names a flow gets from its config: ``vars().update(unpack_config(config))``.

    Top-level keys keep their value; the keys of a nested dict also become names
    (one level; a top-level key of the same name wins, then the first nested one).
    String values that look like paths become ``pathlib.Path`` (see
    :func:`is_path_like`); keys starting ``_`` are engine keys, passed unchanged.
    Keys that are not Python names are left out with a note. ``local_vars`` is
    accepted for the first ductaflow's call shape and never changed.
    """
    del local_vars  # the caller updates its own namespace with the result
    names: dict[str, Any] = {}
    skipped: list[str] = []
    for key, value in _flatten_one_level(config):
        if not _is_name(key):
            skipped.append(str(key))
        elif key not in names:
            names[key] = value if key.startswith("_") else _as_path(key, value)
    if verbose:
        _print_unpacked(name, names, skipped)
    return names


def is_path_like(key: str, value: Any) -> bool:
    """Whether a config value is handed to the flow as a ``Path``.

    A non-empty, single-line string whose key is ``path``/``file``/``dir``/``folder``
    or ends with ``_path``/``_file``/``_dir``/``_folder``, or whose text contains
    ``/`` or ``\\`` and is not a URL (no ``://``).
    """
    if not isinstance(value, str) or not value or "\n" in value or "://" in value:
        return False
    path_key = key.lower() in PATH_KEY_NAMES or key.lower().endswith(PATH_KEY_SUFFIXES)
    return path_key or "/" in value or "\\" in value


def _as_path(key: str, value: Any) -> Any:
    return Path(value) if is_path_like(key, value) else value


def _flatten_one_level(config: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Top-level pairs first (they win), then the pairs of each nested dict."""
    pairs = list(config.items())
    for key, value in config.items():
        if isinstance(value, dict) and not str(key).startswith("_"):
            pairs.extend(value.items())
    return pairs


def _is_name(key: Any) -> bool:
    return isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)


def _print_unpacked(name: str, names: dict[str, Any], skipped: list[str]) -> None:
    prefix = f"{name}: " if name else ""
    shown = [f"{key}={_short(value)}" for key, value in names.items() if not key.startswith("_")]
    line = f"{prefix}unpacked {len(shown)} values"
    line += f": {', '.join(shown)}" if shown else ""
    print(line)
    if skipped:
        print(f"{prefix}note: left out keys that are not Python names: {', '.join(skipped)}")


def _short(value: Any, width: int = 60) -> str:
    """A value as a flow author would type it, cut to ``width`` characters."""
    text = f"Path({value.as_posix()!r})" if isinstance(value, Path) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# -------------------------------------------------------------------- summary


def display_config_summary(config: dict[str, Any], name: str = "") -> None:
    """Print the config as an aligned ``key = value`` listing, engine keys last.

    Values are shown as JSON (strings quoted, ``true``/``null``) so that ``"007"``
    and ``7`` look different, the way they were written in the config file.
    """
    print(f"{name} config:" if name else "config:")
    user = {key: value for key, value in config.items() if not str(key).startswith("_")}
    engine = {key: value for key, value in config.items() if str(key).startswith("_")}
    lines = _summary_lines(user, "  ")
    if engine:
        lines += ["  engine:", *_summary_lines(engine, "    ")]
    print("\n".join(lines) if lines else "  (empty)")


def _summary_lines(config: dict[str, Any], indent: str) -> list[str]:
    width = max((len(str(key)) for key in config), default=0)
    lines = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            lines += [f"{indent}{key}:", *_summary_lines(value, indent + "  ")]
        else:
            lines.append(f"{indent}{str(key).ljust(width)} = {_json(value)}")
    return lines


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
