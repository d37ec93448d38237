"""From scenario tables to instances, their order, and a run/skip decision for each.

Pure functions over tables and the runs folder (read, never written); no pandas.

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

Decisions (``decide``)
    Reasons, in this order: ``forced``, ``new``, ``last run incomplete``, ``last
    run failed``, ``config changed: k old -> new, ...``, ``code changed: f, ...``,
    ``input changed: p, ...``, ``missing output: p, ...``, ``upstream ran: k, ...``.
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
import gc
import heapq
import json
import os
import posixpath
import re
import stat
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, NamedTuple

from ductaflow.errors import Location, PlanError, TableError, TemplateError, UsageError
from ductaflow.model import Decision, Instance, Row, Table
from ductaflow.run_folder import records
from ductaflow.run_folder.files import ConfigFileError, read_config
from ductaflow.tables import templating

RESERVED = ("instance", "flow")
MAX_NAME = 100
SHOWN_ITEMS = 5
SHOWN_CHARS = 40
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{p}{i}" for p in ("COM", "LPT") for i in [*range(1, 10), "¹", "²", "³"]]
)
_BAD_CHARS = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DRIVE = re.compile(r"^[A-Za-z]:")
_JSON_LIKE = re.compile(r"^(true|false|null|-?\d+(\.\d+)?([eE][-+]?\d+)?)$")
_FLOW_SUFFIXES = (".py", ".ipynb")
_NUMBERS = frozenset({int, float, bool, type(None)})
_UNSEEN: Any = object()


# --- names --------------------------------------------------------------------------


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe single path component on every OS, or None."""
    if not name:
        return "is empty"
    if name in (".", ".."):
        return f"{name!r} is not a folder name"
    bad = _BAD_CHARS.search(name)
    if bad:
        return f"contains {bad.group()!r}"
    if name != name.strip(" "):
        return "starts or ends with a space"
    if name.endswith("."):
        return "ends with a dot"
    if name.split(".")[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        return "is a reserved device name on Windows"
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    return None


def fold(name: str) -> str:
    """The one folder a name becomes where folders ignore case (Windows, macOS) and
    Unicode normalization (macOS): ``café`` in NFC and NFD is one folder there."""
    return unicodedata.normalize("NFC", name.casefold())


# --- the project on disk, read once per plan ----------------------------------------------


@dataclass(frozen=True)
class _PathRef:
    """What a string in a config turned out to be, once, for the whole plan."""

    value: str
    runs_path: str | None = None  # inside the runs folder, relative to it
    input: str | None = None  # a project file, project-relative


class _Project:
    """Project root and runs folder, with per-plan caches of everything read on disk."""

    def __init__(self, project_root: Path, runs_dir: Path):
        self.root = Path(project_root).resolve()
        self.runs = Path(runs_dir).resolve()
        if self.runs == self.root or self.runs in self.root.parents:
            raise UsageError(f"the runs folder {self.runs} must lie below the project root, "
                             "not be it or contain it")
        self.runs_str = str(self.runs)
        self.runs_rel = _relative(self.runs, self.root)
        self.runs_text = self.runs_rel or self.runs.as_posix()
        depth = 2 + (self.runs_rel.count("/") + 1 if self.runs_rel else 0)
        self.up_to_root = "../" * depth if self.runs_rel else None
        self._stats: dict[str, os.stat_result | None] = {}
        self._hashes: dict[str, str] = {}
        self._names: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._refs: dict[str, _PathRef | None] = {}
        self.records: dict[str, list[int] | None] = {}  # record path -> its signature

    def stat(self, path: str) -> os.stat_result | None:
        """``os.stat`` of an absolute or project-relative path, None when missing."""
        if path not in self._stats:
            try:
                self._stats[path] = os.stat(os.path.join(self.root, path))
            except (OSError, ValueError):
                self._stats[path] = None
        return self._stats[path]

    def sha256(self, path: str) -> str:
        """sha256 of a project-relative file, ``""`` when unreadable."""
        if path not in self._hashes:
            self.stat(path)  # before reading: a later change then shows in its signature
            try:
                self._hashes[path] = records.file_sha256(self.root / path)
            except OSError:
                self._hashes[path] = ""
        return self._hashes[path]

    def folders(self, stage: str) -> frozenset[str]:
        """Names of the instance folders of ``stage`` on disk, case-sensitive."""
        return self._scan(stage)[0]

    def _scan(self, stage: str) -> tuple[frozenset[str], frozenset[str]]:
        """(folder names, names that are symlinks) in ``<runs>/<stage>``, read once."""
        if stage not in self._names:
            self.stat(str(self.runs / stage))  # its mtime moves when a folder comes or goes
            try:
                with os.scandir(self.runs / stage) as entries:
                    found = [(e.name, e.is_symlink()) for e in entries if e.is_dir()]
            except OSError:
                found = []
            self._names[stage] = (frozenset(n for n, _ in found),
                                  frozenset(n for n, link in found if link))
        return self._names[stage]

    def in_runs(self, runs_path: str) -> str:
        """The absolute path (text) of a path relative to the runs folder."""
        return f"{self.runs_str}/{runs_path}"

    def runs_shown(self, runs_path: str) -> str:
        """A path inside the runs folder as a user sees it from the project root."""
        base = self.runs_text
        return f"{base}/{runs_path}" if runs_path else base

    def ref(self, text: str) -> _PathRef | None:
        """``text`` as a path (rewritten for the instance folder), or None."""
        if "/" not in text and "\\" not in text and "." not in text:
            return None  # a bare word: never a path, and not worth remembering
        found = self._refs.get(text, _UNSEEN)
        if found is _UNSEEN:
            found = self._refs[text] = self._classify(text)
        return found

    def _classify(self, text: str) -> _PathRef | None:
        if len(text) > 4096 or "\n" in text or _URL.match(text):
            return None
        path = text.replace("\\", "/")
        if path.startswith("/") or _DRIVE.match(path):
            return self._absolute(text, path)
        norm = posixpath.normpath(path)
        if norm in (".", "..") or norm.startswith("../"):
            return None
        runs = self.runs_rel
        if runs is not None and (norm == runs or norm.startswith(runs + "/")):
            inside = norm[len(runs) + 1:]
            return _PathRef(posixpath.join("../..", inside) if inside else "../..", inside)
        info = self.stat(norm)
        if info is None:
            return None
        value = self.up_to_root + norm if self.up_to_root else (self.root / norm).as_posix()
        return _PathRef(value, input=norm if stat.S_ISREG(info.st_mode) else None)

    def _absolute(self, text: str, path: str) -> _PathRef | None:
        absolute = Path(os.path.normpath(path))
        inside = _relative(absolute, self.runs)
        if inside is not None:
            return _PathRef(text, "" if inside == "." else inside)
        project = _relative(absolute, self.root)
        if project is None or project == ".":
            return None
        info = self.stat(project)
        is_file = info is not None and stat.S_ISREG(info.st_mode)
        return _PathRef(text, input=project if is_file else None)

    def check_inside(self, stage: str, names: Iterable[str]) -> None:
        """Refuse instance folders that resolve outside the runs folder (symlinks)."""
        real_runs = os.path.realpath(self.runs)
        links = self._scan(stage)[1]
        for folder in [self.runs / stage, *(self.runs / stage / n for n in names if n in links)]:
            real = os.path.realpath(folder)
            if real != real_runs and not real.startswith(real_runs.rstrip(os.sep) + os.sep):
                raise PlanError(f"instance folder {folder} resolves outside the runs "
                                f"folder ({real})")


def _relative(path: Path, base: Path) -> str | None:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return None


# --- rows to instances ------------------------------------------------------------------


def build_instances(tables: Sequence[Table], project_root: Path,
                    runs_dir: Path) -> list[Instance]:
    """One instance per enabled row, upstream first (else in table and row order).

    Raises ``TableError``/``TemplateError`` for a bad cell, name or flow and
    ``PlanError`` for a dangling reference or a cycle, naming file, sheet, row, column.
    """
    return _build(tables, _Project(project_root, runs_dir))


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

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.name}"


def _build(tables: Sequence[Table], project: _Project) -> list[Instance]:
    _check_stages(tables)
    flows = _Flows(project)
    drafts: list[_Draft] = []
    seen: dict[tuple[str, str], Row] = {}
    for table in tables:
        _check_headers(table)
        for row in table.rows:
            if row.enabled:
                draft = _draft(row, project, flows)
                _check_unique(draft, seen)
                drafts.append(draft)
    known = {d.key: d for d in drafts}
    stages: dict[str, list[str]] = {}
    for draft in drafts:
        stages.setdefault(draft.stage, []).append(draft.name)
    for stage, names in stages.items():
        project.check_inside(stage, names)
    instances = [_instance(d, known, project) for d in drafts]
    return _topological(instances)


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


def _location(row: Row, header: str | None = None) -> Location:
    column = None if header is None else f"{row.columns.get(header, '?')} ({header})"
    return Location(row.file, row.sheet, row.line, column)


def _check_stages(tables: Sequence[Table]) -> None:
    folded: dict[str, Table] = {}
    for table in tables:
        problem = name_problem(table.stage)
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


def _check_unique(draft: _Draft, seen: dict[tuple[str, str], Row]) -> None:
    first = seen.setdefault((draft.stage, fold(draft.name)), draft.row)
    if first is not draft.row:
        where = f"row {first.line}" if first.file == draft.row.file else str(_location(first))
        raise TableError(f"instance {draft.name!r} is already defined in stage "
                         f"{draft.stage!r} ({where}; names may not differ only in case)",
                         _location(draft.row, "instance"))


def _draft(row: Row, project: _Project, flows: _Flows) -> _Draft:
    values = {**row.values, "stage": row.stage, "runs": project.runs_text}
    name = _instance_name(row, values)
    values["instance"] = name
    rendered = {}
    for header, value in row.values.items():
        kind = type(value)
        if header == "instance":
            continue
        if kind in _NUMBERS or (kind is str and "{" not in value and "}" not in value):
            rendered[header] = value  # nothing to render: most cells
        else:
            rendered[header] = _render(value, values, row, header)
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
        raise TableError("the instance name is blank", _location(row, "instance"))
    if isinstance(raw, str) and "{instance" in raw:
        try:
            if "instance" in templating.fields(raw):
                raise TemplateError("the instance name cannot use {instance}",
                                    hint="build it from other columns, e.g. {scenario}")
        except TemplateError as error:
            raise TemplateError(error.message, _location(row, "instance"),
                                error.hint) from error
    name = str(_render(raw, values, row, "instance"))
    problem = name_problem(name)
    if problem:
        raise TableError(f"instance name {name!r} {problem}", _location(row, "instance"),
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
            raise TemplateError(error.message, _location(row, header), error.hint) from error
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
        raise TableError(f"column {header!r} is not a valid dotted key", _location(row, header))
    node = config
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            parent = ".".join(parts[: i + 1])
            raise TableError(f"column {header!r} needs {parent!r} to be an object, but it is "
                             f"{_show(child)}", _location(row, header))
        node = child
    _merge(node, parts[-1], value)


def _merge(node: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict) and isinstance(node.get(key), dict):
        for k, v in value.items():
            _merge(node[key], k, v)
    else:
        node[key] = value


def _paths(value: Any, draft: _Draft, project: _Project, keys: tuple[str, ...]) -> Any:
    """Rewrite the paths in a config for the instance folder; note refs and inputs."""
    kind = type(value)
    if kind is str:
        ref = project.ref(value)
        return value if ref is None else _use(ref, draft, keys)
    if kind is dict:
        out = {}
        for key, item in value.items():
            inner = type(item)
            if inner is str:
                ref = project.ref(item)
                out[key] = item if ref is None else _use(ref, draft, (*keys, str(key)))
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


def _use(ref: _PathRef, draft: _Draft, keys: tuple[str, ...]) -> str:
    """Note what a path in the config refers to; the text the flow receives."""
    if ref.runs_path is not None:
        draft.refs.append((ref.runs_path, ".".join(keys)))
    if ref.input is not None:
        draft.inputs.add(ref.input)
    return ref.value


class _Flows:
    """Flow files and their base configs, checked and read once per plan."""

    def __init__(self, project: _Project):
        self.project = project
        self._bases: dict[str, tuple[dict[str, Any], str | None]] = {}
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
        if flow not in self._bases:
            self._bases[flow] = self._base(flow)
        return (flow, *self._bases[flow])

    def _given(self, row: Row, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise TableError(f"flow {value!r} is not a path", _location(row, "flow"))
        path = value.replace("\\", "/")
        norm = posixpath.normpath(path)
        if path.startswith("/") or _DRIVE.match(path) or norm == ".." or norm.startswith("../"):
            raise TableError(f"flow {value!r} lies outside the project root",
                             _location(row, "flow"), hint="give it relative to the project root")
        for part in norm.split("/"):
            problem = name_problem(part)
            if problem:
                raise TableError(f"flow {value!r}: {part!r} {problem}", _location(row, "flow"),
                                 hint="a flow's folders and file must have names safe on "
                                      "every OS")
        info = self.project.stat(norm)
        if info is None or not stat.S_ISREG(info.st_mode):
            raise TableError(f"flow {value!r} does not exist in {self.project.root}",
                             _location(row, "flow"))
        return norm

    def _default(self, row: Row) -> str:
        candidates = (f"flows/{row.stage}.py", f"builds/{row.stage}.py")
        for flow in candidates:
            info = self.project.stat(flow)
            if info is not None and stat.S_ISREG(info.st_mode):
                return flow
        raise TableError(f"no flow column, and neither {candidates[0]} nor {candidates[1]} "
                         f"exists in {self.project.root}", _location(row),
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


def _instance(draft: _Draft, known: Mapping[str, _Draft], project: _Project) -> Instance:
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
    )


def _origin(draft: _Draft, keys: str) -> Location:
    """Where a config key came from: a column of the row, or the base config file."""
    for header in draft.row.values:
        if keys == header or keys.startswith(header + "."):
            return _location(draft.row, header)
    return Location(draft.base_file or draft.row.file, None, None, keys or None)


def _dangling(draft: _Draft, runs_path: str, key: str, keys: str,
              known: Mapping[str, _Draft], project: _Project) -> None:
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
                    _location(row) if row else None,
                    hint="'a -> b' means a reads from b's folder")


# --- run or skip ----------------------------------------------------------------------


def decide(instances: Sequence[Instance], project_root: Path, runs_dir: Path, *,
           force: bool = False, select: Sequence[str] | None = None) -> list[Decision]:
    """Run or skip each instance (docs/concepts.md, "Decision and reason"), in order."""
    return _decide(instances, _Project(project_root, runs_dir), force, select)


def _decide(instances: Sequence[Instance], project: _Project, force: bool,
            select: Sequence[str] | None) -> list[Decision]:
    return _judged(instances, project, force, select)[0]


def _judged(instances: Sequence[Instance], project: _Project, force: bool,
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
        return cls(record["run_id"], record["status"], float(record["duration_s"]),
                   record["started_at"], record["ended_at"])


class _Judge:
    """Decides instances upstream first, remembering the last runs read and what runs."""

    def __init__(self, instances: Sequence[Instance], project: _Project, forced: set[str]):
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
        reasons = self.reasons(inst, key, record)
        if reasons:
            self.ran.add(key)
        return Decision(inst, bool(reasons), tuple(reasons))

    def reasons(self, inst: Instance, key: str, record: dict | None) -> list[str]:
        reasons = ["forced"] if key in self.forced else []
        if record is None:
            folder = self.project.in_runs(inst.run_dir)
            killed = records.is_started(folder) or records.has_record_file(folder)
            return [*reasons, "last run incomplete" if killed else "new"]
        if record["status"] == "error":
            reasons.append("last run failed")
        checks = (
            ("config changed", _config_changes(inst.config, record["config"])),
            ("code changed", _code_changes(inst, record, self.project)),
            ("input changed", _input_changes(inst, record, self.project)),
            ("missing output", self.missing_outputs(key)),
            ("upstream ran", self.upstream_changes(inst, record)),
        )
        reasons += [f"{label}: {_listed(items)}" for label, items in checks if items]
        return reasons

    def missing_outputs(self, key: str) -> list[str]:
        """Paths some instance references inside this one's folder that are gone."""
        paths = self.outputs.get(key)
        if not paths:
            return []
        project = self.project
        return [project.runs_shown(p) for p in sorted(paths)
                if project.stat(project.in_runs(p)) is None]

    def upstream_changes(self, inst: Instance, record: Mapping[str, Any]) -> list[str]:
        """Upstream that runs now, or ran (or vanished) since this record was written."""
        seen = record["upstream"]
        changed = []
        for dep in inst.depends_on:
            upstream = self.last_runs.get(dep)
            if dep in self.ran or upstream is None or seen.get(dep) != upstream.run_id:
                changed.append(dep)
        return changed


def _config_changes(config: Mapping[str, Any], saved: Any) -> list[str]:
    if _same_canonical(config, saved):
        return []
    now = records.canonical(config)
    return [f"{key} {_show(old)} -> {_show(new)}"
            for key, old, new in _diff(records.canonical(saved), now, "")]


def _same_canonical(now: Any, saved: Any) -> bool:
    """``_same(records.canonical(now), saved)`` without building the canonical copy."""
    kind = type(now)
    if kind is dict:
        if type(saved) is not dict:
            return False
        count = 0
        get = saved.get
        for key, value in now.items():
            if type(key) is not str:
                return _same(records.canonical(now), saved)
            if key[:1] == "_":
                continue
            count += 1
            other = get(key, _UNSET)
            inner = type(value)
            if inner is str or inner is int or inner is bool:
                if value != other or type(other) is not inner:
                    return False
            elif not _same_canonical(value, other):
                return False
        return count == len(saved)
    if kind is list:
        if type(saved) is not list or len(now) != len(saved):
            return False
        for value, other in zip(now, saved, strict=True):
            inner = type(value)
            if inner is str or inner is int or inner is bool:
                if value != other or type(other) is not inner:
                    return False
            elif not _same_canonical(value, other):
                return False
        return True
    if kind is str or kind is int or kind is bool:
        return type(saved) is kind and now == saved
    if kind is float:
        if now.is_integer():  # canonical: an int
            return type(saved) is int and saved == now
        return type(saved) is float and (now == saved or (now != now and saved != saved))
    if now is None:
        return saved is None
    return _same(records.canonical(now), saved)


_UNSET = object()


def _diff(old: Any, new: Any, prefix: str) -> Iterable[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every leaf that differs; an added or removed
    object shows its leaves."""
    if old is _UNSET and isinstance(new, dict) and new:
        old = {}
    if new is _UNSET and isinstance(old, dict) and old:
        new = {}
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from _diff(old.get(key, _UNSET), new.get(key, _UNSET), prefix + key + ".")
    elif not _same(old, new):
        yield prefix[:-1], old, new


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: unlike ``==``, ``true`` is not ``1`` (and NaN is NaN)."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        if a.keys() != b.keys():
            return False
        for key, value in a.items():
            other = b[key]
            inner = type(value)
            if inner is not type(other):
                return False
            if inner is dict or inner is list:
                if not _same(value, other):
                    return False
            elif value != other and (value == value or other == other):
                return False
        return True
    if kind is list:
        return len(a) == len(b) and all(map(_same, a, b))
    return a == b or (a != a and b != b)


def _show(value: Any) -> str:
    """A config value as a reason shows it: compact, strings bare when unambiguous."""
    if value is _UNSET:
        return "(unset)"
    if isinstance(value, str) and value and value == value.strip() and not _JSON_LIKE.match(value):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN_ITEMS])
    more = len(items) - SHOWN_ITEMS
    return f"{shown}, … (+{more} more)" if more > 0 else shown


def _code_changes(inst: Instance, record: Mapping[str, Any], project: _Project) -> list[str]:
    code = record["code"]
    flow = inst.flow
    if len(code) == 1 and flow in code:  # a flow, not a build: the common case
        return [] if code[flow] == project.sha256(flow) else [flow]
    flows = [flow, *sorted(f for f in code if f != flow)]
    return [f for f in flows if code.get(f) != project.sha256(f)]


def _input_changes(inst: Instance, record: Mapping[str, Any], project: _Project) -> list[str]:
    saved = record["inputs"]
    return [p for p in inst.inputs if _input_changed(p, saved.get(p), project)]


def _input_changed(path: str, saved: Any, project: _Project) -> bool:
    info = project.stat(path)
    if info is None or not isinstance(saved, dict):
        return True
    if info.st_size != saved.get("size"):
        return True
    if info.st_mtime_ns == saved.get("mtime_ns"):
        return False
    return project.sha256(path) != saved.get("sha256")


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


# --- the public plan ----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Every decided instance, upstream first, with the folders it was planned for.

    ``last_runs`` holds, per instance key, the last finished run read while deciding
    (instances that never finished are absent): a skipped instance's light and times.
    """

    project_root: Path
    runs_dir: Path
    decisions: tuple[Decision, ...]
    last_runs: Mapping[str, LastRun] = field(default_factory=dict)

    @property
    def to_run(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.run)

    @property
    def to_skip(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.run)

    @property
    def instances(self) -> tuple[Instance, ...]:
        return tuple(d.instance for d in self.decisions)

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.instance.stage for d in self.decisions))

    @property
    def counts(self) -> dict[str, int]:
        run = sum(d.run for d in self.decisions)
        return {"instances": len(self.decisions), "stages": len(self.stages),
                "run": run, "skip": len(self.decisions) - run}


def plan(tables: Any, *, project_root: str | os.PathLike[str] = ".",
         runs_dir: str | os.PathLike[str] | None = None, stage: str | None = None,
         force: bool = False, select: Sequence[str] | None = None) -> Plan:
    """Plan a conduct without running anything: what runs, what is skipped, and why.

    ``tables`` is a table path, a list of them, a pandas DataFrame (name its stage
    with ``stage``) or already read ``Table`` objects. ``runs_dir`` defaults to
    ``<project_root>/runs``; relative paths are taken from the current directory.
    """
    return planned(tables, project_root=project_root, runs_dir=runs_dir, stage=stage,
                   force=force, select=select)[0]


def planned(tables: Any, *, project_root: str | os.PathLike[str] = ".",
            runs_dir: str | os.PathLike[str] | None = None, stage: str | None = None,
            force: bool = False,
            select: Sequence[str] | None = None) -> tuple[Plan, dict[str, list[int] | None]]:
    """``plan``, and the signature of every file and folder it read (``plancache``)."""
    collecting = gc.isenabled()
    gc.disable()  # its passes over every object made planning 100k rows superlinear
    try:
        return _planned(tables, project_root, runs_dir, stage, force, select)
    finally:
        if collecting:
            gc.enable()


def _planned(tables: Any, project_root: str | os.PathLike[str],
             runs_dir: str | os.PathLike[str] | None, stage: str | None, force: bool,
             select: Sequence[str] | None) -> tuple[Plan, dict[str, list[int] | None]]:
    root, runs = resolve_folders(project_root, runs_dir)
    project = _Project(root, runs)
    sources = tables if isinstance(tables, (list, tuple)) else [tables]
    for source in sources:
        if isinstance(source, (str, os.PathLike)):
            project.stat(os.path.abspath(source))  # before reading it
    instances = _build(_read(tables, stage), project)
    decisions, last_runs = _judged(instances, project, force, select)
    read = {os.path.join(root, path): records.signature(info)
            for path, info in project._stats.items()}
    read.update(project.records)
    return Plan(project.root, project.runs, tuple(decisions), last_runs), read


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


def format_plan(plan: Plan) -> list[tuple[str, str, str]]:
    """``(stage/instance, "run" or "skip", reason)`` per decision, for ``--dry-run``."""
    return [(d.instance.key, "run" if d.run else "skip", d.reason) for d in plan.decisions]

