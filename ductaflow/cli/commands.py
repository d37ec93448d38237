"""The ``ductaflow`` command: parse flags, call the public API, render the outcome.

Only ``main`` catches errors: a ``DuctaflowError`` becomes one line on stderr and its
exit code (2 for bad input), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ductaflow.errors import DuctaflowError, FlowError


def main(argv: Sequence[str] | None = None) -> int:
    """The ``ductaflow`` command: one line and exit 2 for bad input, never a traceback."""
    _utf8_console()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except FlowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.output_file:
            print(f"output: {exc.output_file}", file=sys.stderr)
        return exc.exit_code
    except DuctaflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ductaflow ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def build_parser() -> argparse.ArgumentParser:
    """Every command and flag; ``docs/cli.md`` is checked against its ``--help``."""
    parser = _OneLineParser(
        prog="ductaflow",
        description="Run notebook pipelines across scenarios from a spreadsheet.")
    from ductaflow import __version__

    parser.add_argument("--version", action="version", version=f"ductaflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                parser_class=_OneLineParser)
    _add_conduct(sub)
    _add_run(sub)
    _add_debug(sub)
    _add_status(sub)
    _add_results(sub)
    _add_diff(sub)
    _add_report(sub)
    _add_clean(sub)
    _add_init(sub)
    _add_new(sub)
    return parser


def _add_conduct(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("conduct", help="run every scenario table row that is not up to date")
    p.add_argument("tables", nargs="+", metavar="TABLE", help="CSV or XLSX scenario tables")
    p.add_argument("--project-root", default=".", metavar="DIR")
    p.add_argument("--runs-dir", default=None, metavar="DIR")
    p.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                   help="instances run at once (default: number of cores)")
    p.add_argument("--dry-run", action="store_true", help="show what would run and why")
    p.add_argument("--force", action="store_true", help="run every selected instance")
    p.add_argument("--accept", action="store_true",
                   help="record what would run as done, without running it")
    p.add_argument("--select", action="append", default=None, metavar="PATTERN",
                   help="stage/instance glob; repeatable")
    p.add_argument("--fail-fast", action="store_true", help="start nothing new after a failure")
    p.add_argument("--strict", action="store_true", default=None,
                   help="refuse the plan when the tables raise warnings (default: "
                        "[tool.ductaflow] strict in pyproject.toml)")
    p.add_argument("--no-wait", action="store_true",
                   help="refuse instead of waiting when another conduct holds the runs folder")
    p.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                   help="wall-clock limit of one instance")
    p.add_argument("--retries", type=_count, default=0, metavar="N",
                   help="run a failed instance up to N more times (flaky resources)")
    p.add_argument("--mode", choices=("notebook", "script"), default="notebook")
    p.add_argument("--html", action=argparse.BooleanOptionalAction, default=False,
                   help="export each executed notebook to HTML")
    p.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True,
                   help="keep initialized kernels ready ahead of need (Linux; default on)")
    p.add_argument("--preload", action="append", default=None, metavar="MODULE",
                   help="module warm kernels import in advance; repeatable or "
                        "comma-separated (default: "
                        "[tool.ductaflow] preload in pyproject.toml)")
    p.add_argument("--executor", choices=("local", "dask"), default="local",
                   help="where instances run (dask: a cluster, see --scheduler)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address, e.g. tcp://host:8786 (default: a local "
                        "cluster of --jobs workers)")
    p.set_defaults(handler=_conduct)


def _add_clean(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("clean", help="list (and with --yes remove) instance folders no "
                                     "table asks for")
    p.add_argument("tables", nargs="+", metavar="TABLE", help="CSV or XLSX scenario tables")
    p.add_argument("--project-root", default=".", metavar="DIR")
    p.add_argument("--runs-dir", default=None, metavar="DIR")
    p.add_argument("--yes", action="store_true", help="remove them (nothing is removed "
                                                      "without it)")
    p.set_defaults(handler=_clean)


def _clean(args: argparse.Namespace) -> int:
    from ductaflow.reporting.leftovers import clean, describe
    from ductaflow.reporting.progress import display_path

    found = clean([str(t) for t in args.tables], project_root=args.project_root,
                  runs_dir=args.runs_dir, yes=args.yes)
    runs = Path(args.runs_dir) if args.runs_dir else Path(args.project_root) / "runs"
    for line in describe(found, display_path(runs.absolute())):
        print(line)
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run one flow with one config")
    p.add_argument("flow", metavar="FLOW")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="JSON config (default: config/<flow path>.json when it exists)")
    p.add_argument("--output-dir", default=None, metavar="DIR",
                   help="where the flow runs (default: runs/_run/<flow name>)")
    p.add_argument("--mode", choices=("notebook", "script"), default="notebook")
    p.add_argument("--no-execute", action="store_true",
                   help="prepare the folder and a ready notebook, run nothing")
    p.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS")
    p.add_argument("--html", action="store_true", help="also write <flow>.html")
    p.set_defaults(handler=_run)


def _add_debug(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("debug", help="prepare a run folder's notebook to step through")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--flow", default=None, help="the flow file, when it cannot be found")
    p.set_defaults(handler=_debug)


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show the status of every instance on disk")
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR")
    p.set_defaults(handler=_status)


def _add_results(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="results tables: parameters, status, recorded values")
    p.add_argument("stages", nargs="*", metavar="STAGE", help="stages (default: all)")
    p.add_argument("--format", choices=("table", "csv", "xlsx", "json"), default=None,
                   help="default: a table on a terminal, csv when piped or written")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="write to FILE")
    p.add_argument("--runs-dir", default="runs", metavar="DIR")
    p.set_defaults(handler=_results)


def _add_diff(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diff", help="two instances, or an instance and its previous run")
    p.add_argument("a", metavar="A", help="stage/instance")
    p.add_argument("b", nargs="?", default=None, metavar="B",
                   help="stage/instance (default: A's previous run)")
    p.add_argument("--runs-dir", default="runs", metavar="DIR")
    p.set_defaults(handler=_diff)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="rebuild the HTML report from the runs folder")
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR")
    p.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from ductaflow.reporting.inventory import rebuild_report

    print(f"report   {rebuild_report(Path(args.runs_dir))}")
    return 0


def _add_init(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="start a new project: flows/, builds/, config/, scenarios/")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR")
    p.set_defaults(handler=_init)


def _add_new(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("new", help="a new flow or build with the standard header and config")
    p.add_argument("kind", choices=("flow", "build"))
    p.add_argument("name", metavar="NAME")
    p.add_argument("--project-root", default=".", metavar="DIR")
    p.set_defaults(handler=_new)


def _init(args: argparse.Namespace) -> int:
    from ductaflow.cli.scaffold import init

    target = Path(args.dir)
    for path in init(target):
        print(f"created {os.path.relpath(path)}")
    table = os.path.relpath(target / "scenarios" / "scenarios.xlsx")
    where = "" if target.resolve() == Path.cwd().resolve() else f"cd {args.dir} && "
    print(f"next: {where}ductaflow conduct {os.path.relpath(table, target)}")
    return 0


def _new(args: argparse.Namespace) -> int:
    from ductaflow.cli.scaffold import new

    for path in new(args.kind, args.name, Path(args.project_root)):
        print(f"created {os.path.relpath(path)}")
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad flag told in one line (and where to read more), not after
    the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a number of seconds above 0")
    return value


def _run(args: argparse.Namespace) -> int:
    from ductaflow.execution.notebook import resolve_flow, run_notebook
    from ductaflow.execution.script import run_script
    from ductaflow.run_folder.files import localize_paths

    root = Path.cwd()
    flow = resolve_flow(args.flow, root)
    out_dir = Path(args.output_dir) if args.output_dir else root / "runs" / "_run" / flow.stem
    config = localize_paths(_load_config(args.config, flow, root), root, out_dir)
    if args.no_execute:
        nb = run_notebook(flow, config, out_dir, root, no_execute=True)
        print(f"prepared {nb} (nothing executed)")
        return 0
    if args.mode == "script":
        run_script(flow, config, out_dir.absolute(), root, args.timeout, echo=True)
    else:
        run_notebook(flow, config, out_dir, root, args.timeout, export_html=args.html,
                     echo=True)
    return 0


def _load_config(config_file: str | None, flow: Path, root: Path) -> dict:
    """The given JSON config, else the flow's base config (as conduct finds it), else empty."""
    if config_file is None:
        from ductaflow.planning.instances import base_config_path

        try:
            default = root / base_config_path(flow.relative_to(root).as_posix())
        except ValueError:
            return {}
        if not default.is_file():
            return {}
        config_file = str(default)
    from ductaflow.run_folder.files import read_config

    return read_config(Path(config_file), shown=config_file)


def _debug(args: argparse.Namespace) -> int:
    from ductaflow.cli.debug import prepare_debug

    for line in prepare_debug(Path(args.run_dir), args.flow):
        print(line)
    return 0


def _conduct(args: argparse.Namespace) -> int:
    from ductaflow.cli.console import conduct_from_cli

    return conduct_from_cli(args)


def _results(args: argparse.Namespace) -> int:
    from ductaflow.cli.console import results_from_cli

    return results_from_cli(Path(args.runs_dir), args.stages, args.format, args.output)


def _diff(args: argparse.Namespace) -> int:
    from ductaflow.cli.console import diff_from_cli

    return diff_from_cli(Path(args.runs_dir), args.a, args.b)


def _status(args: argparse.Namespace) -> int:
    from ductaflow.cli.console import status_from_cli

    return status_from_cli(Path(args.runs_dir))


def _utf8_console() -> None:
    """Footers carry emoji: never crash on a console that cannot encode them."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and os.name == "nt":
            stream.reconfigure(errors="replace")
