"""The plain values passed between stages: table -> plan -> execute -> report.

Frozen, picklable dataclasses and string enums only, so that a plan can be sent to a
worker process (or a Dask worker) and a result back, and so tests can build them by
hand.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ductaflow.errors import Location


class Status(str, enum.Enum):
    """The traffic light of a finished instance (docs/concepts.md, "Status and action")."""

    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


class Action(str, enum.Enum):
    """What the conductor did with an instance."""

    RAN = "ran"
    SKIPPED = "skipped"
    FAILED = "failed"
    BLOCKED = "blocked"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Row:
    """One row of a scenario table, typed as docs/tables.md says, blanks left out.

    ``values`` maps header -> value for every config column (reserved ``instance``,
    ``flow`` and ``enabled`` included, ``#`` comment columns excluded, dotted headers
    still dotted). ``line`` is the row number a user sees in Excel or in an editor
    (header = 1). ``columns`` maps header -> column label for messages (``"C"`` in
    Excel, ``"3"`` in CSV).
    """

    file: str
    sheet: str | None
    stage: str
    line: int
    values: dict[str, Any]
    columns: dict[str, str] = field(default_factory=dict)
    enabled: bool = True


@dataclass(frozen=True)
class Table:
    """One stage: one CSV file, one Excel sheet or one DataFrame."""

    file: str
    sheet: str | None
    stage: str
    headers: tuple[str, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class PlanWarning:
    """Something in the tables that is probably a mistake, told before anything runs
    (``planning.checks``); an error with ``strict``."""

    message: str
    location: Location | None = None
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text} ({self.hint})" if self.hint else text


@dataclass(frozen=True)
class FanIn:
    """A config value that named every instance of a stage with a glob.

    ``path`` locates the value in the config (keys and list indices): the list the
    flow receives. ``pattern`` is the glob as typed (several, comma-separated, when a
    list held more than one); ``matched`` the paths it stands for now, relative to
    the runs folder, in table order.
    """

    path: tuple[str | int, ...]
    pattern: str
    matched: tuple[str, ...]


@dataclass(frozen=True)
class Instance:
    """One enabled row, rendered: where it runs, with what, after whom.

    ``key`` is ``"<stage>/<name>"``; ``run_dir`` is relative to the runs directory
    (``"<stage>/<name>"``); ``flow`` is the flow file relative to the project root in
    POSIX form. ``config`` is what the flow receives (base config file updated with
    the row, paths made relative to the instance folder), without ``_project_root``.
    ``depends_on`` holds the keys of the instances it reads from; ``inputs`` the
    project files (outside the runs directory, POSIX, relative to the project root)
    its config names; ``references`` the paths inside the runs directory (POSIX,
    relative to the runs directory) it names; ``fan_ins`` its values that a glob
    over instance names expanded.
    """

    stage: str
    name: str
    flow: str
    config: dict[str, Any]
    depends_on: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    row: Row | None = None
    fan_ins: tuple[FanIn, ...] = ()

    @property
    def key(self) -> str:
        """``stage/name``: how an instance is named in messages, reasons and ``--select``."""
        return f"{self.stage}/{self.name}"

    @property
    def run_dir(self) -> str:
        """The instance's folder, relative to the runs folder."""
        return f"{self.stage}/{self.name}"

    @property
    def flow_stem(self) -> str:
        """The flow file's name without suffix: the stem of every file it leaves."""
        return self.flow.rsplit("/", 1)[-1].rsplit(".", 1)[0]

    @property
    def upstream_reads(self) -> dict[str, list[str]]:
        """The paths it names inside other instances' folders, by instance key: what it
        reads of theirs, fingerprinted when it runs so the next plan can compare."""
        reads: dict[str, list[str]] = {}
        own = self.key
        for path in self.references:
            parts = path.split("/", 2)
            if len(parts) >= 2:
                key = f"{parts[0]}/{parts[1]}"
                if key != own:
                    reads.setdefault(key, []).append(path)
        return reads


@dataclass(frozen=True)
class Decision:
    """Run or skip one instance, and why, in words a user understands."""

    instance: Instance
    run: bool
    reasons: tuple[str, ...] = ()
    skip_note: str = ""  # a skip's own wording, e.g. after an early cutoff

    @property
    def reason(self) -> str:
        """The reasons as one line, or ``up to date`` (or the skip's own note)."""
        return "; ".join(self.reasons) if self.reasons else self.skip_note or "up to date"


@dataclass(frozen=True)
class RunResult:
    """What happened to one instance in one conduct."""

    stage: str
    instance: str
    action: Action
    status: Status | None
    reason: str
    duration_s: float
    run_dir: str
    flow: str = ""
    error: str = ""
    started_at: str = ""
    ended_at: str = ""
    attempts: int = 1  # runs it took, with ``--retries``; the duration covers them all
    error_at: str = ""  # ``flows/model.py:42``: the flow's line that failed, when known

    @property
    def key(self) -> str:
        """``stage/name``: how an instance is named in messages, reasons and ``--select``."""
        return f"{self.stage}/{self.instance}"

    @property
    def outcome(self) -> str:
        """``success``, ``error``, ``blocked``..., and ``after 2 attempts`` when retried:
        the word a terminal, the results and the report show."""
        word = self.status.value if self.status is not None else self.action.value
        return f"{word} after {self.attempts} attempts" if self.attempts > 1 else word

    @classmethod
    def of(cls, instance: Instance, action: Action, status: Status | None, reason: str,
           duration_s: float = 0.0, error: str = "", started_at: str = "",
           ended_at: str = "") -> RunResult:
        """The result of ``instance``: its stage, name, folder and flow come from it, so
        every place that ends an instance (ran, failed, blocked, skipped) agrees."""
        return cls(stage=instance.stage, instance=instance.name, action=action,
                   status=status, reason=reason, duration_s=round(duration_s, 3),
                   run_dir=instance.run_dir, flow=instance.flow, error=error,
                   started_at=started_at, ended_at=ended_at)


class Results(list):  # type: ignore[type-arg] - a list of RunResult
    """What ``conduct`` returns: one ``RunResult`` per planned instance, in plan order,
    as a plain list, that also gives the table an analyst looks at in a notebook."""

    def to_frame(self) -> Any:
        """A pandas DataFrame, a row per instance: stage, instance, action, status,
        reason, duration_s, run_dir (relative to the runs folder), flow, error,
        started_at, ended_at, attempts; status empty for a blocked instance."""
        import pandas as pd

        columns = [f.name for f in dataclasses.fields(RunResult)]
        rows = [[_plain(getattr(result, name)) for name in columns] for result in self]
        return pd.DataFrame(rows, columns=columns)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    return "" if value is None else value


@dataclass(frozen=True)
class ExecOptions:
    """How every instance of one conduct runs."""

    project_root: Path
    runs_dir: Path
    mode: str = "notebook"
    timeout: float | None = None
    export_html: bool = False
    kernel_server: str | None = None
    #: What produced the outputs, collected once by a conductor whose workers all run
    #: on its machine (each worker would spend tens of ms on it); None: each collects.
    provenance: dict[str, Any] | None = None


@dataclass(frozen=True)
class ConductSettings:
    """How one conduct runs its plan: what ``conduct`` takes beyond the tables, folders
    and selection, checked once and then read by the conductor, the schedule and the
    executors (``docs/api.md`` explains each)."""

    jobs: int = 1
    fail_fast: bool = False
    wait: bool = True
    timeout: float | None = None
    mode: str = "notebook"
    export_html: bool = False
    executor: Any = "local"
    scheduler: str | None = None
    warm: bool = True
    preload: tuple[str, ...] | None = None
    accept: bool = False
    retries: int = 0

    @property
    def local(self) -> bool:
        """Instances run in worker processes on this machine."""
        return isinstance(self.executor, str) and self.executor == "local"


#: ``on_event(kind, payload)`` of ``conduct``; kinds: "waiting" (the lock's path),
#: "plan" (the Plan), "start" (a Decision), "finish" (a RunResult).
EventHandler = Callable[[str, Any], None]
