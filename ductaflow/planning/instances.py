"""From scenario tables to instances and their order (``build_instances``).

Pure functions over tables and the project on disk (read, never written); no pandas.

Instances (``build_instances``)
    Each enabled row is one instance. Built-in template names are ``{stage}``,
    ``{instance}`` (the rendered instance name) and ``{runs}`` (the runs folder
    relative to the project root in POSIX, e.g. ``runs``; absolute when it lies
    outside the project). They are reserved: a column named ``stage`` or ``runs``
    is an error, and the ``instance`` column may not use ``{instance}``. Every
    string cell, also inside JSON list/object cells, is rendered once against the
    row's *raw* typed values: a cell that names another template cell gets that
    cell's template text, not its rendering.

    The config is the base config file (``flows/x.py`` -> ``config/flows/x.json``)
    deep-updated with the row (``a.b`` headers set nested keys). Then every string
    in it, base values included, is read as a possible path:

    - relative and inside the runs folder (``runs/prep/A/out.csv``): made relative
      to the instance folder (``../../prep/A/out.csv``); ``prep/A`` becomes a
      dependency, or must be a folder on disk when no table defines it;
    - relative, containing ``/``, ``\\`` or ``.``, and naming an existing file or
      folder of the project (``data/zones.csv``): made relative to the instance
      folder (``../../../data/zones.csv``), or absolute when the runs folder lies
      outside the project; a file (not a folder) is an input;
    - absolute: unchanged, but still a dependency when inside the runs folder and
      an input when a file of the project;
    - anything else (URLs, ``../`` paths leaving the project, bare words such as
      ``north`` even when a folder of that name exists): unchanged.

    Instance and stage names must be safe single path components on every OS
    (``name_problem``), unique per stage regardless of case, and an instance folder
    that resolves (through a symlink) outside the runs folder is refused. Instances
    come upstream first, otherwise in table order, then row order.
"""

from __future__ import annotations

import difflib
import heapq
import posixpath
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ductaflow.errors import Location, PlanError, TableError, TemplateError
from ductaflow.model import FanIn, Instance, PlanWarning, Row, Table
from ductaflow.planning import checks
from ductaflow.planning.project import DRIVE, PathRef, Project
from ductaflow.planning.reasons import listed, show
from ductaflow.run_folder.files import ConfigFileError, read_config
from ductaflow.run_folder.names import engine_name_problem, fold, name_problem
from ductaflow.tables import templating

RESERVED = ("instance", "flow")
_FLOW_SUFFIXES = (".py", ".ipynb")
_NUMBERS = frozenset({int, float, bool, type(None)})


# --- rows to instances ------------------------------------------------------------------


def build_instances(tables: Sequence[Table], project_root: Path,
                    runs_dir: Path) -> list[Instance]:
    """One instance per enabled row, upstream first (else in table and row order).

    Raises ``TableError``/``TemplateError`` for a bad cell, name or flow and
    ``PlanError`` for a dangling reference or a cycle, naming file, sheet, row, column.
    """
    return build(tables, Project(project_root, runs_dir))


@dataclass
class _Draft:
    """An instance before its references are resolved against all the others."""

    stage: str
    name: str
    flow: str
    config: dict[str, Any]
    row: Row
    base_file: str | None
    refs: list[tuple[str, str]] = field(default_factory=list)  # (runs path, key path)
    inputs: set[str] = field(default_factory=set)
    globs: list[_Glob] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (path, key path)

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.name}"


@dataclass
class Findings:
    """What a plan tells besides its instances: warnings, and the rows left disabled."""

    warnings: list[PlanWarning] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)


def build(tables: Sequence[Table], project: Project,
          findings: Findings | None = None) -> list[Instance]:
    """``build_instances`` on a project already open (the planner shares its caches);
    ``findings`` receives the warnings and the disabled rows."""
    findings = findings if findings is not None else Findings()
    _check_stages(tables)
    flows = _Flows(project)
    drafts: list[_Draft] = []
    seen: dict[tuple[str, str], Row] = {}
    disabled: dict[str, Row] = {}
    for table in tables:
        _check_headers(table)
        nested = _nested_headers(table.headers)
        for row in table.rows:
            if row.enabled:
                if nested:
                    _check_nested(row, nested)
                draft = _draft(row, project, flows)
                _check_unique(draft, seen)
                drafts.append(draft)
            else:
                _note_disabled(row, project, disabled)
    known = {d.key: d for d in drafts}
    stages: dict[str, list[str]] = {}
    for draft in drafts:
        stages.setdefault(draft.stage, []).append(draft.name)
    for stage, names in stages.items():
        project.check_inside(stage, names)
    instances = [_instance(d, known, stages, project) for d in drafts]
    findings.disabled = [key for key in disabled if key not in known]
    findings.warnings += _warnings(tables, drafts, flows, project, disabled)
    return _topological(instances)


def _note_disabled(row: Row, project: Project, disabled: dict[str, Row]) -> None:
    """The key a disabled row would have: a row left out can still be read from."""
    try:
        disabled[f"{row.stage}/{rendered_row(row, project.runs_text)['instance']}"] = row
    except TableError:
        pass  # a disabled row may hold what is not ready yet


def _warnings(tables: Sequence[Table], drafts: Sequence[_Draft], flows: _Flows,
              project: Project, disabled: Mapping[str, Row]) -> list[PlanWarning]:
    """Per table, its columns and cells; per instance, what its config names."""
    flow_of = {id(d.row): d.flow for d in drafts}
    found = []
    for table in tables:
        found += checks.column_warnings(table, flows.bases, flow_of)
        found += checks.cell_warnings(table)
    for draft in drafts:
        for path, keys in draft.missing:
            folder = posixpath.dirname(path)
            message, hint = checks.missing_file(path, project.listing(folder))
            found.append(PlanWarning(message, _origin(draft, keys), hint))
        for runs_path, keys in draft.refs:
            key = "/".join(runs_path.split("/")[:2])
            if key in disabled and key != draft.key:
                found.append(PlanWarning(
                    f"{project.runs_shown(runs_path)} is in {key}, whose row is disabled: "
                    "it reads that instance's last outputs", _origin(draft, keys),
                    f"enable the row ({location(disabled[key])}) to make them again"))
    return list(dict.fromkeys(found))


def base_config_path(flow: str) -> str:
    """The base config of a flow: a ``config/`` folder beside its folder, same layout.

    ``flows/x.py`` -> ``config/flows/x.json`` (docs/tables.md); a project kept in a
    subfolder works the same way: ``examples/flows/x.py`` ->
    ``examples/config/flows/x.json``.
    """
    folder, _, name = flow.rpartition("/")
    stem = next((name[: -len(s)] for s in _FLOW_SUFFIXES if name.endswith(s)), name)
    parent, _, leaf = folder.rpartition("/")
    prefix = f"{parent}/" if parent else ""
    return f"{prefix}config/{leaf}/{stem}.json" if leaf else f"config/{stem}.json"


def location(row: Row, header: str | None = None) -> Location:
    """Where a row, or one of its cells, is: for the error a user reads."""
    column = None if header is None else f"{row.columns.get(header, '?')} ({header})"
    return Location(row.file, row.sheet, row.line, column)


def _check_stages(tables: Sequence[Table]) -> None:
    folded: dict[str, Table] = {}
    for table in tables:
        problem = name_problem(table.stage) or engine_name_problem(table.stage)
        if problem:
            raise TableError(f"stage name {table.stage!r} {problem}",
                             Location(table.file, table.sheet),
                             hint="rename the sheet or file")
        other = folded.setdefault(fold(table.stage), table)
        if other.stage != table.stage:
            raise TableError(f"stages {other.stage!r} ({other.file}) and {table.stage!r} "
                             "differ only in case", Location(table.file, table.sheet))


def _check_headers(table: Table) -> None:
    labels = table.rows[0].columns if table.rows else {}
    for header in table.headers:
        if header in ("stage", "runs"):
            raise TableError(
                f"column {header!r} clashes with the built-in {{{header}}}",
                Location(table.file, table.sheet, 1, f"{labels.get(header, '?')} ({header})"),
                hint="rename the column",
            )
    if table.rows and "instance" not in table.headers:
        raise TableError("no instance column", Location(table.file, table.sheet, 1),
                         hint="add a column 'instance' naming each row, e.g. {scenario}")


def _nested_headers(headers: Sequence[str]) -> list[tuple[str, str]]:
    """(outer, inner) pairs of columns where one sets a key inside the other's value:
    ``a`` and ``a.b``, ``a.b`` and ``a.b.c``."""
    dotted = [h for h in headers if "." in h]
    return [(outer, inner) for outer in headers for inner in dotted
            if inner.startswith(outer + ".")]


def _check_nested(row: Row, nested: Sequence[tuple[str, str]]) -> None:
    """Refuse a row that sets ``a`` to a plain value and ``a.b`` as well, in either
    column order: one of them would be lost (a JSON object in ``a`` merges with
    ``a.b``)."""
    values = row.values
    for outer, inner in nested:
        if outer in values and inner in values and not isinstance(values[outer], dict):
            raise TableError(f"column {outer!r} sets {outer!r} to {show(values[outer])}, "
                             f"and column {inner!r} sets a key inside it",
                             location(row, outer),
                             hint=f"leave one of them blank, or give {outer!r} as a JSON "
                                  "object")


def _check_unique(draft: _Draft, seen: dict[tuple[str, str], Row]) -> None:
    first = seen.setdefault((draft.stage, fold(draft.name)), draft.row)
    if first is not draft.row:
        where = f"row {first.line}" if first.file == draft.row.file else str(location(first))
        raise TableError(f"instance {draft.name!r} is already defined in stage "
                         f"{draft.stage!r} ({where}; names may not differ only in case)",
                         location(draft.row, "instance"))


def rendered_row(row: Row, runs_text: str) -> dict[str, Any]:
    """The row's cells with their templates rendered, the instance's name first: the
    parameters as a results table shows them."""
    values = {**row.values, "stage": row.stage, "runs": runs_text}
    name = _instance_name(row, values)
    values["instance"] = name
    rendered: dict[str, Any] = {"instance": name}
    for header, value in row.values.items():
        kind = type(value)
        if header == "instance":
            continue
        if kind in _NUMBERS or (kind is str and "{" not in value and "}" not in value):
            rendered[header] = value  # nothing to render: most cells
        else:
            rendered[header] = _render(value, values, row, header)
    return rendered


def _draft(row: Row, project: Project, flows: _Flows) -> _Draft:
    rendered = rendered_row(row, project.runs_text)
    name = rendered.pop("instance")
    flow, base, base_file = flows.resolve(row, rendered.get("flow"))
    config = _copy(base)
    for header, value in rendered.items():
        if header in RESERVED:
            continue
        if "." in header or isinstance(value, dict):
            _set_dotted(config, header, value, row)
        else:
            config[header] = value  # rendered: a new list or object already
    draft = _Draft(row.stage, name, flow, config, row, base_file)
    draft.config = _paths(config, draft, project, ())
    return draft


def _instance_name(row: Row, values: Mapping[str, Any]) -> str:
    """The rendered instance name; ``values`` are the row's raw values and the built-ins."""
    raw = row.values.get("instance")
    if raw is None or raw == "":
        raise TableError("the instance name is blank", location(row, "instance"))
    if isinstance(raw, str) and "{instance" in raw:
        try:
            if "instance" in templating.fields(raw):
                raise TemplateError("the instance name cannot use {instance}",
                                    hint="build it from other columns, e.g. {scenario}")
        except TemplateError as error:
            raise TemplateError(error.message, location(row, "instance"),
                                error.hint) from error
    name = str(_render(raw, values, row, "instance"))
    problem = name_problem(name)
    if problem:
        raise TableError(f"instance name {name!r} {problem}", location(row, "instance"),
                         hint="an instance name must be a safe folder name")
    return name


def _render(value: Any, values: Mapping[str, Any], row: Row, header: str) -> Any:
    """Render every string in a cell value (lists and objects too), against raw values.

    Lists and objects come back as new ones, so the result may be changed freely.
    """
    kind = type(value)
    if kind is str or isinstance(value, str):
        if "{" not in value and "}" not in value:
            return value
        try:
            return templating.render(value, values)
        except TemplateError as error:
            raise TemplateError(error.message, location(row, header), error.hint) from error
    if kind is list or isinstance(value, list):
        return [v if type(v) in _NUMBERS else _render(v, values, row, header) for v in value]
    if kind is dict or isinstance(value, dict):
        return {k: v if type(v) in _NUMBERS else _render(v, values, row, header)
                for k, v in value.items()}
    return value


def _copy(value: Any) -> Any:
    """A copy of JSON-like data, cheaper than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _set_dotted(config: dict[str, Any], header: str, value: Any, row: Row) -> None:
    parts = header.split(".")
    if not all(parts):
        raise TableError(f"column {header!r} is not a valid dotted key", location(row, header))
    node = config
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            parent = ".".join(parts[: i + 1])
            raise TableError(f"column {header!r} needs {parent!r} to be an object, but it is "
                             f"{show(child)}", location(row, header))
        node = child
    _merge(node, parts[-1], value)


def _merge(node: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict) and isinstance(node.get(key), dict):
        for k, v in value.items():
            _merge(node[key], k, v)
    else:
        node[key] = value


def _paths(value: Any, draft: _Draft, project: Project, keys: tuple[str, ...]) -> Any:
    """Rewrite the paths in a config for the instance folder; note refs and inputs."""
    kind = type(value)
    if kind is str:
        ref = project.ref(value)
        return value if ref is None else _use(ref, draft, keys, project)
    if kind is dict:
        out = {}
        for key, item in value.items():
            inner = type(item)
            if inner is str:
                ref = project.ref(item)
                out[key] = item if ref is None else _use(ref, draft, (*keys, str(key)), project)
            elif inner in _NUMBERS:
                out[key] = item
            else:
                out[key] = _paths(item, draft, project, (*keys, str(key)))
        return out
    if kind is list:
        return [v if type(v) in _NUMBERS else _paths(v, draft, project, keys) for v in value]
    if isinstance(value, dict):
        return _paths(dict(value), draft, project, keys)
    if isinstance(value, list):
        return _paths(list(value), draft, project, keys)
    if isinstance(value, str):
        return _paths(str(value), draft, project, keys)
    return value


def _use(ref: PathRef, draft: _Draft, keys: tuple[str, ...],
         project: Project) -> str | _Glob:
    """Note what a path in the config refers to; the text the flow receives (or, for a
    glob over instance names, a placeholder until every instance is known)."""
    if ref.runs_path is not None:
        path = ref.runs_path
        if "*" in path or "?" in path or "[" in path:
            glob = _Glob(ref.value, path, ".".join(keys), project.runs_str)
            draft.globs.append(glob)
            return glob
        draft.refs.append((path, ".".join(keys)))
    if ref.input is not None:
        draft.inputs.add(ref.input)
    elif ref.missing is not None:
        draft.missing.append((ref.missing, ".".join(keys)))
    return ref.value


class _Flows:
    """Flow files and their base configs, checked and read once per plan."""

    def __init__(self, project: Project):
        self.project = project
        self.bases: dict[str, tuple[dict[str, Any], str | None]] = {}
        self._defaults: dict[str, tuple[str, dict[str, Any], str | None]] = {}

    def resolve(self, row: Row, value: Any) -> tuple[str, dict[str, Any], str | None]:
        """(flow, base config, base config file) for a row's flow cell (None: default)."""
        if value is None:
            found = self._defaults.get(row.stage)
            if found is None:
                found = self._defaults[row.stage] = self._with_base(self._default(row))
            return found
        return self._with_base(self._given(row, value))

    def _with_base(self, flow: str) -> tuple[str, dict[str, Any], str | None]:
        if flow not in self.bases:
            self.bases[flow] = self._base(flow)
        return (flow, *self.bases[flow])

    def _given(self, row: Row, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise TableError(f"flow {value!r} is not a path", location(row, "flow"))
        path = value.replace("\\", "/")
        norm = posixpath.normpath(path)
        if path.startswith("/") or DRIVE.match(path) or norm == ".." or norm.startswith("../"):
            raise TableError(f"flow {value!r} lies outside the project root",
                             location(row, "flow"), hint="give it relative to the project root")
        for part in norm.split("/"):
            problem = name_problem(part)
            if problem:
                raise TableError(f"flow {value!r}: {part!r} {problem}", location(row, "flow"),
                                 hint="a flow's folders and file must have names safe on "
                                      "every OS")
        info = self.project.stat(norm)
        if info is None or not stat.S_ISREG(info.st_mode):
            raise TableError(f"flow {value!r} does not exist in {self.project.root}",
                             location(row, "flow"))
        return norm

    def _default(self, row: Row) -> str:
        candidates = (f"flows/{row.stage}.py", f"builds/{row.stage}.py")
        for flow in candidates:
            info = self.project.stat(flow)
            if info is not None and stat.S_ISREG(info.st_mode):
                return flow
        raise TableError(f"no flow column, and neither {candidates[0]} nor {candidates[1]} "
                         f"exists in {self.project.root}", location(row),
                         hint="add a 'flow' column or create the default flow")

    def _base(self, flow: str) -> tuple[dict[str, Any], str | None]:
        name = base_config_path(flow)
        if self.project.stat(name) is None:
            return {}, None
        try:
            return read_config(self.project.root / name, shown=name), name
        except ConfigFileError as error:  # a bad base config is bad input of the table
            raise TableError(error.message, error.location) from error


# --- references to instances --------------------------------------------------------


def _instance(draft: _Draft, known: Mapping[str, _Draft], stages: Mapping[str, list[str]],
              project: Project) -> Instance:
    fan_ins = _fan_in(draft, known, stages, project) if draft.globs else ()
    depends: dict[str, None] = {}
    for runs_path, keys in draft.refs:
        parts = runs_path.split("/")
        if len(parts) < 2:
            continue
        key = f"{parts[0]}/{parts[1]}"
        if key in known:
            if key != draft.key:
                depends[key] = None
        elif parts[1] not in project.folders(parts[0]):
            _dangling(draft, runs_path, key, keys, known, project)
    return Instance(
        draft.stage, draft.name, draft.flow, draft.config, tuple(depends),
        tuple(sorted(draft.inputs)) if draft.inputs else (),
        tuple(sorted({p for p, _ in draft.refs})) if draft.refs else (), draft.row,
        fan_ins,
    )


# --- fan-in: a glob over instance names ------------------------------------------------


@dataclass
class _Glob:
    """A config value naming instances with a glob, until every instance is known."""

    value: str  # as the flow would receive it unexpanded (``../../model/*/x.csv``)
    runs_path: str  # relative to the runs folder, glob included
    keys: str  # the dotted config key, for messages
    runs_str: str  # the runs folder, for a glob written as an absolute path

    def item(self, runs_path: str) -> str:
        """One matched path, written as the glob was: relative to the instance folder,
        or absolute."""
        if self.value.startswith("../"):
            return f"../../{runs_path}"
        return f"{self.runs_str}/{runs_path}"


def _fan_in(draft: _Draft, known: Mapping[str, _Draft], stages: Mapping[str, list[str]],
            project: Project) -> tuple[FanIn, ...]:
    """Expand the draft's globs into lists of paths, in table order: each match becomes
    a reference (so a dependency), and the config gets the lists the flow receives."""
    found: dict[int, list[str] | None] = {}
    for glob in draft.globs:
        matched = _matched(glob, draft, known, stages, project)
        found[id(glob)] = matched
        for path in matched if matched is not None else [glob.runs_path]:
            draft.refs.append((path, glob.keys))
    fan_ins: list[FanIn] = []
    draft.config = _expanded(draft.config, found, (), fan_ins)
    return tuple(fan_ins)


def _matched(glob: _Glob, draft: _Draft, known: Mapping[str, _Draft],
             stages: Mapping[str, list[str]], project: Project) -> list[str] | None:
    """The runs paths a glob stands for, in table order (None: not a glob after all,
    an instance whose name holds ``[``)."""
    stage, _, rest = glob.runs_path.partition("/")
    pattern, _, tail = rest.partition("/")
    stage_wild = "*" in stage or "?" in stage or ("[" in stage and stage not in stages)
    name_wild = "*" in pattern or "?" in pattern or (
        "[" in pattern and f"{stage}/{pattern}" not in known
        and pattern not in project.folders(stage))
    tail_wild = "*" in tail or "?" in tail
    if not (stage_wild or name_wild or tail_wild):
        return None  # ``[`` in a name that exists: a literal path
    shown = project.runs_shown(glob.runs_path)
    where = _origin(draft, glob.keys)
    if stage_wild or tail_wild or not name_wild:
        raise PlanError(f"{shown}: only the instance name may be a glob", where,
                        hint=f"name every instance of a stage like "
                             f"{project.runs_text}/<stage>/*/<file>")
    names = [n for n in stages.get(stage, ()) if fnmatchcase(n, pattern)
             and f"{stage}/{n}" != draft.key]
    if not names:
        defined = stages.get(stage)
        hint = (f"stage {stage!r} defines {listed(defined)}" if defined else
                f"no table defines stage {stage!r}; folders on disk do not count")
        raise PlanError(f"{shown} matches no instance", where, hint=hint)
    return [f"{stage}/{n}/{tail}" if tail else f"{stage}/{n}" for n in names]


def _expanded(value: Any, found: Mapping[int, list[str] | None], path: tuple[str | int, ...],
              fan_ins: list[FanIn]) -> Any:
    """The config with each glob replaced by its list of paths; a glob inside a list is
    spliced into it (the flow gets one flat list)."""
    if isinstance(value, _Glob):
        matched = found[id(value)]
        if matched is None:
            return value.value
        fan_ins.append(FanIn(path, value.runs_path, tuple(matched)))
        return [value.item(p) for p in matched]
    if type(value) is dict:
        return {k: _expanded(v, found, (*path, k), fan_ins) for k, v in value.items()}
    if type(value) is not list:
        return value
    out: list[Any] = []
    patterns: list[str] = []
    matched_all: list[str] = []
    for item in value:
        matched = found.get(id(item)) if isinstance(item, _Glob) else None
        if matched is None:
            out.append(_expanded(item, found, (*path, len(out)), fan_ins))
        else:
            out.extend(item.item(p) for p in matched)
            patterns.append(item.runs_path)
            matched_all.extend(matched)
    if patterns:
        fan_ins.append(FanIn(path, ", ".join(patterns), tuple(matched_all)))
    return out


def _origin(draft: _Draft, keys: str) -> Location:
    """Where a config key came from: a column of the row, or the base config file."""
    for header in draft.row.values:
        if keys == header or keys.startswith(header + "."):
            return location(draft.row, header)
    return Location(draft.base_file or draft.row.file, None, None, keys or None)


def _dangling(draft: _Draft, runs_path: str, key: str, keys: str,
              known: Mapping[str, _Draft], project: Project) -> None:
    stage = key.split("/")[0]
    candidates = [*known, *(f"{stage}/{name}" for name in sorted(project.folders(stage)))]
    same_case = [k for k in candidates if k.casefold() == key.casefold()]
    if same_case:
        hint = f"did you mean {same_case[0]}? instance names are case-sensitive"
    else:
        close = difflib.get_close_matches(key, candidates, n=3)
        hint = "did you mean " + " or ".join(close) + "?" if close else None
    raise PlanError(
        f"{project.runs_shown(runs_path)} points into instance {key}, which no table "
        "defines and no folder holds", _origin(draft, keys), hint,
    )


def _topological(instances: list[Instance]) -> list[Instance]:
    """Upstream first; otherwise keep the given order (table order, then row order)."""
    index = {inst.key: i for i, inst in enumerate(instances)}
    waiting = [len(inst.depends_on) for inst in instances]
    users: list[list[int]] = [[] for _ in instances]
    for i, inst in enumerate(instances):
        for dep in inst.depends_on:
            users[index[dep]].append(i)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for user in users[i]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) < len(instances):
        _cycle(instances, index, {instances[i].key for i in set(range(len(instances)))
                                  - set(order)})
    return [instances[i] for i in order]


def _cycle(instances: list[Instance], index: Mapping[str, int], left: set[str]) -> None:
    key = min(left, key=index.__getitem__)
    path: list[str] = []
    while key not in path:
        path.append(key)
        key = next(d for d in instances[index[key]].depends_on if d in left)
    cycle = [*path[path.index(key):], key]
    row = instances[index[cycle[0]]].row
    raise PlanError("dependency cycle: " + " -> ".join(cycle),
                    location(row) if row else None,
                    hint="'a -> b' means a reads from b's folder")
