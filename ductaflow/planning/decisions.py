"""Run or skip: a decision, with its reasons, for each instance (``decide``).

Reads the runs folder's records, never writes. The wording of each reason is in
``planning.reasons``.

Decisions (``decide``)
    Reasons, in this order: ``forced``, ``new``, ``last run incomplete``, ``last
    run failed``, ``config changed: k old -> new, ...``, ``code changed: f, ...``,
    ``input changed: p, ...``, ``inputs changed: + p, - p, ...`` (the paths a fan-in
    glob stands for, as a set: reordered rows change nothing), ``missing output: p,
    ...``, ``upstream ran: k, ...``.
    Without a valid record only ``forced`` and ``new``/``last run incomplete``
    apply. Values in ``config changed`` are shown as JSON, except strings, shown
    bare unless empty, padded or looking like another JSON value; ``(unset)`` marks
    a missing key; values over 40 characters are cut with ``…``. Lists in a reason
    stop after five items (``… (+N more)``). A path referenced inside the instance's
    own folder counts for ``missing output`` too.

    ``select`` takes ``stage/instance`` glob patterns (``fnmatchcase``); a pattern
    without ``/`` (or ending in ``/``) matches a whole stage. Only selected instances
    and the upstream they need are decided; ``force`` forces the selected ones only.
"""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, NamedTuple

from ductaflow.errors import UsageError
from ductaflow.model import Decision, FanIn, Instance
from ductaflow.planning.project import Project
from ductaflow.planning.reasons import UPSTREAM_RAN, config_changes, listed, unchanged_reads
from ductaflow.run_folder import records

# --- run or skip ----------------------------------------------------------------------


def decide(instances: Sequence[Instance], project_root: Path, runs_dir: Path, *,
           force: bool = False, select: Sequence[str] | None = None) -> list[Decision]:
    """Run or skip each instance (docs/concepts.md, "Decision and reason"), in order."""
    return _decide(instances, Project(project_root, runs_dir), force, select)


def _decide(instances: Sequence[Instance], project: Project, force: bool,
            select: Sequence[str] | None) -> list[Decision]:
    return judged(instances, project, force, select)[0]


def judged(instances: Sequence[Instance], project: Project, force: bool,
            select: Sequence[str] | None) -> tuple[list[Decision], dict[str, LastRun]]:
    """The decisions, and the last run of every decided instance that has one."""
    chosen, targets = _select(instances, select)
    judge = _Judge(instances, project, targets if force else set())
    decisions = [judge.decide(inst) for inst in instances if inst.key in chosen]
    return decisions, {k: last for k, last in judge.last_runs.items() if last is not None}


class LastRun(NamedTuple):
    """What a plan read of an instance's last finished run, so no one reads it again."""

    run_id: str
    status: str
    duration_s: float
    started_at: str
    ended_at: str

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> LastRun:
        """The fields a plan keeps of a record (a valid one: ``records.read_record``)."""
        return cls(record["run_id"], record["status"], float(record["duration_s"]),
                   record["started_at"], record["ended_at"])


class _Judge:
    """Decides instances upstream first, remembering the last runs read and what runs."""

    def __init__(self, instances: Sequence[Instance], project: Project, forced: set[str]):
        self.project = project
        self.forced = forced
        self.outputs: dict[str, set[str]] = {}
        for inst in instances:
            for path in inst.references:
                parts = path.split("/", 2)
                if len(parts) >= 2:
                    self.outputs.setdefault(f"{parts[0]}/{parts[1]}", set()).add(path)
        self.last_runs: dict[str, LastRun | None] = {}
        self.ran: set[str] = set()

    def decide(self, inst: Instance) -> Decision:
        key = inst.key
        record = records.read_record(self.project.in_runs(inst.run_dir), self.project.records)
        self.last_runs[key] = None if record is None else LastRun.of(record)
        reasons, cut = self.reasons(inst, key, record)
        if reasons:
            self.ran.add(key)
            return Decision(inst, True, tuple(reasons))
        return Decision(inst, False, (), unchanged_reads(cut) if cut else "")

    def reasons(self, inst: Instance, key: str,
                record: dict | None) -> tuple[list[str], list[str]]:
        """Why it runs (none: it is up to date), and the upstream that ran since but
        whose outputs it reads are unchanged (early cutoff)."""
        reasons = ["forced"] if key in self.forced else []
        if record is None:
            folder = self.project.in_runs(inst.run_dir)
            killed = records.is_started(folder) or records.has_record_file(folder)
            return [*reasons, "last run incomplete" if killed else "new"], []
        if record["status"] == "error":
            reasons.append("last run failed")
        config, saved = inst.config, record["config"]
        if inst.fan_ins:
            config, saved = _fan_ins_set_aside(inst.fan_ins, config, saved)
        changed, ran, cut = self.upstream_changes(inst, record)
        checks = (
            ("config changed", config_changes(config, saved)),
            ("code changed", _code_changes(inst, record, self.project)),
            ("input changed", _input_changes(inst, record, self.project)),
            ("inputs changed", _fan_in_changes(inst, record["config"], self.project)),
            ("upstream output changed", changed),
            ("missing output", self.missing_outputs(key)),
            (UPSTREAM_RAN, ran),
        )
        reasons += [f"{label}: {listed(items)}" for label, items in checks if items]
        return reasons, cut

    def missing_outputs(self, key: str) -> list[str]:
        """Paths some instance references inside this one's folder that are gone."""
        paths = self.outputs.get(key)
        if not paths:
            return []
        project = self.project
        return [project.runs_shown(p) for p in sorted(paths)
                if project.stat(project.in_runs(p)) is None]

    def upstream_changes(self, inst: Instance, record: Mapping[str, Any]
                         ) -> tuple[list[str], list[str], list[str]]:
        """(upstream outputs it read that changed, upstream that runs now, upstream
        that ran since but left what it reads unchanged).

        An upstream that runs now may still write the same bytes: the worker looks
        again before it starts this one (``execution.instance``). A record from before
        reads were fingerprinted compares upstream runs only."""
        seen = record["upstream"]
        saved = record.get("upstream_files")
        reads = inst.upstream_reads if isinstance(saved, dict) else {}
        changed: list[str] = []
        ran: list[str] = []
        cut: list[str] = []
        for dep in inst.depends_on:
            upstream = self.last_runs.get(dep)
            paths = reads.pop(dep, ())
            if dep in self.ran or upstream is None:
                ran.append(dep)
                continue
            if not isinstance(saved, dict):
                if seen.get(dep) != upstream.run_id:
                    ran.append(dep)
                continue
            moved = self.moved(paths, saved)
            if moved:
                changed += moved
            elif seen.get(dep) != upstream.run_id:
                cut.append(dep)
        for paths in reads.values():  # folders no table defines: read all the same
            changed += self.moved(paths, saved)
        return changed, ran, cut

    def moved(self, paths: Sequence[str], saved: Mapping[str, Any]) -> list[str]:
        """The paths that no longer hold what the last run read (shown from the root)."""
        project = self.project
        return [project.runs_shown(p) for p in paths
                if p not in saved or not project.same_as_read(p, saved[p])]


def _code_changes(inst: Instance, record: Mapping[str, Any], project: Project) -> list[str]:
    code = record["code"]
    flow = inst.flow
    if len(code) == 1 and flow in code:  # a flow, not a build: the common case
        return [] if code[flow] == project.sha256(flow) else [flow]
    flows = [flow, *sorted(f for f in code if f != flow)]
    return [f for f in flows if code.get(f) != project.sha256(f)]


def _input_changes(inst: Instance, record: Mapping[str, Any], project: Project) -> list[str]:
    saved = record["inputs"]
    return [p for p in inst.inputs if _input_changed(p, saved.get(p), project)]


def _input_changed(path: str, saved: Any, project: Project) -> bool:
    info = project.stat(path)
    if info is None or not isinstance(saved, dict):
        return True
    if info.st_size != saved.get("size"):
        return True
    if info.st_mtime_ns == saved.get("mtime_ns"):
        return False
    return project.sha256(path) != saved.get("sha256")


def _fan_in_changes(inst: Instance, saved: Any, project: Project) -> list[str]:
    """``+ path`` / ``- path`` for each path a fan-in list gained or lost since the run
    (its order does not count: a table's rows reordered rerun nothing)."""
    changes = []
    for fan_in in inst.fan_ins:
        old = _strings(_at(saved, fan_in.path))
        new = _strings(_at(inst.config, fan_in.path))
        changes += [f"+ {_shown(p, project)}" for p in new if p not in old]
        changes += [f"- {_shown(p, project)}" for p in old if p not in new]
    return changes


def _fan_ins_set_aside(fan_ins: Sequence[FanIn], config: Any, saved: Any) -> tuple[Any, Any]:
    """Both configs with each fan-in's list left out (where the saved config has it):
    its changes are ``inputs changed``, not ``config changed``."""
    for fan_in in fan_ins:
        if _at(saved, fan_in.path) is not _MISSING:
            config = _replaced(config, fan_in.path)
            saved = _replaced(saved, fan_in.path)
    return config, saved


_MISSING: Any = object()


def _at(value: Any, path: Sequence[str | int]) -> Any:
    """The value at a path of keys and list indices, ``_MISSING`` when there is none."""
    for step in path:
        if isinstance(value, dict) and isinstance(step, str) and step in value:
            value = value[step]
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return _MISSING
    return value


def _replaced(value: Any, path: Sequence[str | int]) -> Any:
    """A copy of ``value`` (along ``path`` only) with the value at ``path`` made None."""
    if not path:
        return None
    step, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[step] = _replaced(copy[step], rest)
    return copy


def _strings(value: Any) -> dict[str, None]:
    """Every string in a config value, in order, once."""
    if value is _MISSING:
        return {}
    if isinstance(value, str):
        return {value: None}
    found: dict[str, None] = {}
    for item in value.values() if isinstance(value, dict) else \
            value if isinstance(value, list) else ():
        found.update(_strings(item))
    return found


def _shown(text: str, project: Project) -> str:
    """A path of a fan-in as a user sees it from the project root."""
    if text.startswith("../../"):
        return project.runs_shown(posixpath.normpath(text[6:]))
    prefix = project.runs_str + "/"
    return project.runs_shown(text[len(prefix):]) if text.startswith(prefix) else text


def _select(instances: Sequence[Instance],
            patterns: Sequence[str] | None) -> tuple[set[str], set[str]]:
    """(instances to decide, selected instances): the selection and its upstream."""
    everything = {inst.key for inst in instances}
    if not patterns:
        return everything, everything
    targets: set[str] = set()
    for pattern in patterns:
        matched = {inst.key for inst in instances if _matches(inst, pattern)}
        if not matched:
            raise UsageError(f"--select {pattern!r} matches no instance",
                             hint=_select_hint(pattern, instances))
        targets |= matched
    by_key = {inst.key: inst for inst in instances}
    chosen, todo = set(), list(targets)
    while todo:
        key = todo.pop()
        if key not in chosen:
            chosen.add(key)
            todo.extend(by_key[key].depends_on if key in by_key else ())
    return chosen, targets


def _matches(inst: Instance, pattern: str) -> bool:
    stage_only = pattern.rstrip("/")
    if "/" not in stage_only:
        return fnmatchcase(inst.stage, stage_only)
    return fnmatchcase(inst.key, pattern)


def _select_hint(pattern: str, instances: Sequence[Instance]) -> str:
    names = list(dict.fromkeys([i.stage for i in instances] + [i.key for i in instances]))
    close = difflib.get_close_matches(pattern, names, n=3)
    if close:
        return "did you mean " + " or ".join(close) + "?"
    return "patterns look like stage/instance, e.g. prep/* or */north"
