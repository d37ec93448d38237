"""``plan``: tables in, a ``Plan`` out: every instance, upstream first, with its run or
skip decision and why. Nothing on disk is written; no pandas is imported. The planning
modules are imported when a plan is made: a cached no-op (``plan_cache``) needs only
``Plan``."""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ductaflow.errors import TableError
from ductaflow.model import Decision, Instance, PlanWarning, Table

if TYPE_CHECKING:
    from ductaflow.planning.decisions import LastRun

# --- the public plan ----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Every decided instance, upstream first, with the folders it was planned for.

    ``last_runs`` holds, per instance key, the last finished run read while deciding
    (instances that never finished are absent): a skipped instance's light and times.
    ``partial``: a ``--select`` plan, whose decisions are not every instance the
    tables define. ``warnings``: what in the tables is probably a mistake
    (``planning.checks``); ``disabled``: the keys of the rows left out (``enabled``
    false).
    """

    project_root: Path
    runs_dir: Path
    decisions: tuple[Decision, ...]
    last_runs: Mapping[str, LastRun] = field(default_factory=dict)
    partial: bool = False
    warnings: tuple[PlanWarning, ...] = ()
    disabled: tuple[str, ...] = ()

    @property
    def to_run(self) -> tuple[Decision, ...]:
        """The decisions to run, upstream first."""
        return tuple(d for d in self.decisions if d.run)

    @property
    def to_skip(self) -> tuple[Decision, ...]:
        """The decisions to skip."""
        return tuple(d for d in self.decisions if not d.run)

    @property
    def instances(self) -> tuple[Instance, ...]:
        """Every planned instance, upstream first."""
        return tuple(d.instance for d in self.decisions)

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages, in plan order."""
        return tuple(dict.fromkeys(d.instance.stage for d in self.decisions))

    @property
    def counts(self) -> dict[str, int]:
        """How many instances and stages, to run and to skip: the plan's headline."""
        run = sum(d.run for d in self.decisions)
        return {"instances": len(self.decisions), "stages": len(self.stages),
                "run": run, "skip": len(self.decisions) - run}


def plan(tables: Any, *, project_root: str | os.PathLike[str] = ".",
         runs_dir: str | os.PathLike[str] | None = None, stage: str | None = None,
         force: bool = False, select: Sequence[str] | None = None,
         strict: bool | None = None) -> Plan:
    """Plan a conduct without running anything: what runs, what is skipped, and why.

    ``tables`` is a table path, a list of them, a pandas DataFrame (name its stage
    with ``stage``) or already read ``Table`` objects. ``runs_dir`` defaults to
    ``<project_root>/runs``; relative paths are taken from the current directory.
    ``strict`` makes the plan's warnings an error (default: ``[tool.ductaflow]
    strict`` in the project's ``pyproject.toml``).
    """
    found = planned(tables, project_root=project_root, runs_dir=runs_dir, stage=stage,
                    force=force, select=select, signed=False)[0]
    check_strict(found, strict)
    return found


def check_strict(the_plan: Plan, strict: bool | None) -> None:
    """With ``strict`` (None: the project's setting), a plan with warnings is refused:
    the first warning as the error, and how many more there are."""
    if not the_plan.warnings or strict is False:
        return
    from ductaflow.planning.project import tool_settings

    if strict is None and tool_settings(the_plan.project_root).get("strict") is not True:
        return
    first = the_plan.warnings[0]
    more = len(the_plan.warnings) - 1
    hint = "; ".join(h for h in (first.hint, f"{more} more warnings" if more else "",
                                 "strict: warnings are errors") if h)
    raise TableError(first.message, first.location, hint)


def planned(tables: Any, *, project_root: str | os.PathLike[str] = ".",
            runs_dir: str | os.PathLike[str] | None = None, stage: str | None = None,
            force: bool = False, select: Sequence[str] | None = None,
            signed: bool = True) -> tuple[Plan, dict[str, list[int] | None]]:
    """``plan``, and the signature of every file and folder it read (``plan_cache``);
    without ``signed``, no signatures (``{}``): a plan alone does not keep them."""
    collecting = gc.isenabled()
    gc.disable()  # its passes over every object made planning 100k rows superlinear
    try:
        return _planned(tables, project_root, runs_dir, stage, force, select, signed)
    finally:
        if collecting:
            gc.enable()


def _planned(tables: Any, project_root: str | os.PathLike[str],
             runs_dir: str | os.PathLike[str] | None, stage: str | None, force: bool,
             select: Sequence[str] | None,
             signed: bool) -> tuple[Plan, dict[str, list[int] | None]]:
    from ductaflow.planning.decisions import judged
    from ductaflow.planning.instances import Findings, build
    from ductaflow.planning.project import Project
    from ductaflow.run_folder import records

    root, runs = resolve_folders(project_root, runs_dir)
    project = Project(root, runs)
    if not signed:
        project.records = None  # records are read without an fstat each
    sources = tables if isinstance(tables, (list, tuple)) else [tables]
    for source in sources:
        if isinstance(source, (str, os.PathLike)):
            project.stat(os.path.abspath(source))  # before reading it
    findings = Findings()
    instances = build(_read(tables, stage), project, findings)
    decisions, last_runs = judged(instances, project, force, select)
    the_plan = Plan(project.root, project.runs, tuple(decisions), last_runs,
                    partial=bool(select), warnings=tuple(findings.warnings),
                    disabled=tuple(findings.disabled))
    if not signed:
        return the_plan, {}
    read = {os.path.join(root, path): records.signature(info)
            for path, info in project._stats.items()}
    read.update(project.records)
    return the_plan, read


def resolve_folders(project_root: str | os.PathLike[str] = ".",
                    runs_dir: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """(project root, runs folder) as absolute paths, as ``plan`` takes them."""
    root = Path(project_root).resolve()
    return root, Path(runs_dir).resolve() if runs_dir is not None else root / "runs"


def _read(tables: Any, stage: str | None) -> list[Table]:
    if isinstance(tables, Table):
        return [tables]
    if isinstance(tables, (list, tuple)) and tables and all(
            isinstance(t, Table) for t in tables):
        return list(tables)
    from ductaflow.tables.reading import read_tables

    return read_tables(tables, stage=stage)
