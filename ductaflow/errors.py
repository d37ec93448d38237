"""One error family for everything ductaflow itself refuses or cannot do.

A flow that fails while running inside ``conduct`` is a *result*, not one of these;
these are raised for bad input (exit status 2) and by ``run_notebook`` when the
flow it was asked to run fails (``FlowError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Location:
    """Where in a scenario table a problem is: enough for a user to find the cell."""

    file: str
    sheet: str | None = None
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.sheet is not None:
            parts.append(f"sheet {self.sheet!r}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        return ", ".join(parts)


class DuctaflowError(Exception):
    """Base of every error ductaflow raises on its own account.

    ``exit_code`` is what the CLI exits with; ``str(error)`` is the one line it prints.
    """

    exit_code = 2

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return printable(f"{text} ({self.hint})" if self.hint else text)


def printable(text: str) -> str:
    """``text`` on one line: line breaks and other control characters shown escaped
    (``\\n``, ``\\x1b``), as a table's cells or headers may hold them. What ductaflow
    prints about them stays one line, and a terminal never obeys them."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class UsageError(DuctaflowError):
    """A command line or API call that cannot be carried out as asked."""


class TableError(DuctaflowError):
    """A scenario table that cannot be read or means nothing consistent."""


class TemplateError(TableError):
    """A template in a cell that is unsafe, malformed or names an unknown field."""


class PlanError(DuctaflowError):
    """The instances cannot be ordered: a cycle or a dangling reference."""


class LockedError(DuctaflowError):
    """Another conductor holds the runs folder and we were told not to wait."""


class ConductInterrupted(DuctaflowError):
    """Ctrl-C: running instances were stopped and left "not done"; results written.

    ``results`` holds one ``RunResult`` per planned instance, as ``conduct`` returns.
    """

    exit_code = 130

    def __init__(self, results: list[Any]):
        stopped = sum(1 for r in results if getattr(r, "error", "") == "Interrupted")
        finished = sum(1 for r in results if getattr(r.action, "value", "") in ("ran", "failed")
                       and getattr(r, "error", "") != "Interrupted")
        super().__init__(
            f"interrupted: {stopped} running stopped and left not done (they run next "
            f"time), {finished} finished; results so far in .results" if results
            else "interrupted before any instance started")
        self.results = results


class FlowError(DuctaflowError):
    """A flow ran and failed. Its notebook, output and config stay on disk."""

    exit_code = 1

    def __init__(self, message: str, *, flow: str, ename: str = "", evalue: str = "",
                 cell: int | None = None, output_file: str | None = None,
                 traceback_text: str = ""):
        super().__init__(message)
        self.traceback_text = traceback_text
        self.flow = flow
        self.ename = ename
        self.evalue = evalue
        self.cell = cell
        self.output_file = output_file
        self.where = ""  # ``flows/model.py:42``: the flow's line that failed, when known

    @property
    def summary(self) -> str:
        """``ValueError: message``: what the footer and the results show."""
        return f"{self.ename}: {self.evalue}" if self.ename else self.message


class FlowTimeoutError(FlowError):
    """The flow ran longer than its timeout and was stopped."""


class KernelDiedError(FlowError):
    """The kernel (or script process) running the flow died without finishing."""
