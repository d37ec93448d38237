"""``ductaflow diff``: what differs between two instances, or between an instance's last
two runs: config keys, recorded values, input files, code.

Runs in the caller's process and reads only the runs folder: each instance's finished
record and recorded values, or its short history (``records.read_history``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ductaflow.errors import UsageError
from ductaflow.run_folder import recorded, records


@dataclass(frozen=True)
class Side:
    """One side of a comparison: an instance's run."""

    label: str
    status: str
    ended_at: str
    config: dict[str, Any]
    values: dict[str, Any]
    inputs: dict[str, Any]
    code: dict[str, Any]


@dataclass(frozen=True)
class Comparison:
    """What differs between ``a`` and ``b``; empty tuples where nothing does."""

    a: Side
    b: Side
    config: tuple[str, ...]  # "key old -> new", nested keys by dotted name
    values: tuple[tuple[str, Any, Any, str], ...]  # name, a, b, change ("" when equal)
    inputs: tuple[str, ...]  # input files read in one run and not the same in the other
    code: tuple[str, ...]  # flow and module files whose code differs

    @property
    def same(self) -> bool:
        return not (self.config or self.inputs or self.code
                    or any(change for *_, change in self.values))


def diff(a: str, b: str | None = None, *, runs_dir: str | Path | None = None,
         project_root: str | Path = ".") -> Comparison:
    """Compare two instances (``"model/high"``, ``"model/central"``), or with ``b``
    omitted, an instance's last run with the run before it (from its history)."""
    from ductaflow.planning.planner import resolve_folders

    runs = resolve_folders(project_root, runs_dir)[1]
    if b is not None:
        return compare(_current(runs, a), _current(runs, b))
    history = records.read_history(_folder(runs, a))
    if len(history) < 2:
        raise UsageError(f"{a} has {len(history)} finished run(s) in its history: nothing "
                         "to compare its last run with", hint=f"ductaflow diff {a} OTHER")
    return compare(_side(f"{a} (previous run)", history[-2]), _side(f"{a} (last run)",
                                                                     history[-1]))


def compare(a: Side, b: Side) -> Comparison:
    """The differences between two sides."""
    from ductaflow.planning.reasons import config_changes

    names = list(dict.fromkeys([*a.values, *b.values]))
    values = tuple((name, a.values.get(name), b.values.get(name),
                    _change(a.values.get(name), b.values.get(name))) for name in names)
    return Comparison(a, b, tuple(config_changes(b.config, a.config)), values,
                      _differing(a.inputs, b.inputs), _differing(a.code, b.code))


def _current(runs: Path, key: str) -> Side:
    folder = _folder(runs, key)
    record = records.read_record(folder)
    if record is None:
        raise UsageError(f"{key} has no finished run in {runs}",
                         hint="ductaflow status lists the instances on disk")
    stem = Path(record["flow"]).stem
    return _side(key, {**record, "values": recorded.instance_values(folder, stem)})


def _folder(runs: Path, key: str) -> Path:
    stage, slash, name = key.partition("/")
    if not slash or not stage or not name or "/" in name:
        raise UsageError(f"{key!r} is not stage/instance")
    folder = runs / stage / name
    if not folder.is_dir():
        raise UsageError(f"no folder for {key} in {runs}")
    return folder


def _side(label: str, run: dict[str, Any]) -> Side:
    return Side(label, str(run.get("status", "")), str(run.get("ended_at", "")),
                _dict(run.get("config")), _dict(run.get("values")), _dict(run.get("inputs")),
                _dict(run.get("code")))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _differing(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in {*a, *b} if a.get(k) != b.get(k)))


def _change(old: Any, new: Any) -> str:
    """``+2.5 (+12.0%)`` between numbers, ``changed`` otherwise, "" when equal."""
    if old == new and type(old) is type(new):
        return ""
    if _number(old) and _number(new):
        delta = new - old
        percent = f" ({delta / abs(old):+.1%})" if old else ""
        return f"{delta:+.6g}{percent}"
    if old is None:
        return "new"
    if new is None:
        return "gone"
    return "changed"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
