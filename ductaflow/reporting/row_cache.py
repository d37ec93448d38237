"""The report's rows, reused: a conduct of 100,000 instances where one ran rewrites
the report in proportion to what changed, not to the project's size.

A row is the one element of the page that costs: reading its instance folder
(record, links, a build's flows) and rendering it. The report is written piece by
piece, and an index beside it (``.conductor.report.json``) notes where each
instance's row sits in it and what the row was made from (its signature): the
instance's result and parameters, and the modification times of its folder and of
its bookkeeping folder, which any run, record written, file added, removed or
replaced by hand moves. The next report copies the bytes of every row whose
signature still holds and renders only the others. An index that does not match
the report on disk (another writer, a killed conductor, a new template) is
ignored: every row is rendered again.

Runs in the conductor (``results_files``), after every instance and at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ductaflow.model import RunResult
from ductaflow.run_folder import records
from ductaflow.run_folder.files import REPORT_HTML, REPORT_INDEX

log = logging.getLogger(__name__)

#: Raised when the layout of the index changes.
VERSION = 1
#: A row reused this way also keeps what the page shows of it elsewhere.
_ATTENTION = ("error", "warning")


class StaleReport(Exception):
    """A row the index points at is not in the report any more."""


class Cancelled(Exception):
    """A live write the conduct no longer needs (its final write follows): given up
    between two rows, the report on disk left as it was."""


def write_report(runs: Path, context_of: Callable[[RowCache | None], Mapping[str, Any]],
                 cancelled: Callable[[], bool] | None = None,
                 stamps: Mapping[str, str] | None = None) -> None:
    """Write the report of ``runs`` from ``context_of(cache)`` (``report_context``),
    reusing the rows of the last one that still hold; all rendered anew if the last
    report turns out not to be what its index says. Raises ``Cancelled`` as soon as
    ``cancelled()`` is true. ``stamps``: instance folders' ``folder_stamp`` by key,
    just taken by the caller (the stage files), so each folder is looked at once."""
    try:
        cache = RowCache.load(runs, cancelled, stamps)
        cache.write(context_of(cache))
    except StaleReport:
        log.info("the report in %s changed under its index: rendered anew", runs)
        cache = RowCache(runs, {}, cancelled, stamps)
        cache.write(context_of(cache))


class RowCache:
    """The rows the last report holds, and the signatures of the ones this one shows."""

    def __init__(self, runs: Path, index: Mapping[str, Any],
                 cancelled: Callable[[], bool] | None = None,
                 stamps: Mapping[str, str] | None = None):
        self.runs = runs
        self.cancelled = cancelled
        self.stamps = stamps or {}
        self.runs_text = os.fspath(runs)
        self.old: Mapping[str, list[Any]] = index.get("rows") or {}
        self.environments: dict[tuple[tuple[str, str], ...], int] = {
            tuple(tuple(item) for item in items): n
            for n, items in enumerate(index.get("environments") or (), start=1)}
        self.signatures: dict[str, str] = {}

    @classmethod
    def load(cls, runs: Path, cancelled: Callable[[], bool] | None = None,
             stamps: Mapping[str, str] | None = None) -> RowCache:
        """The index of the report in ``runs``; an empty one unless it matches it."""
        try:
            index = json.loads((runs / REPORT_INDEX).read_text(encoding="utf-8"))
            valid = isinstance(index, dict) and index.get("key") == _key() \
                and index.get("report") == _stamp(runs / REPORT_HTML)
        except (OSError, ValueError):
            valid = False
        return cls(runs, index if valid else {}, cancelled, stamps)

    def check(self) -> None:
        """Raise ``Cancelled`` if the write is no longer wanted."""
        if self.cancelled is not None and self.cancelled():
            raise Cancelled

    def row(self, result: RunResult, params: str) -> dict[str, Any] | None:
        """The row of a finished instance, when the last report's still holds; else
        None (the caller reads the folder and renders it)."""
        from ductaflow.reporting.html_report import reused_row

        self.check()
        sign = signature(result, params, self.runs_text, self.stamps.get(result.key))
        self.signatures[result.key] = sign
        entry = self.old.get(result.key)
        if entry is None or entry[0] != sign:
            return None
        row = reused_row(result)
        row.update(reused=(entry[1], entry[2]), **(entry[4] or {}))
        if entry[3]:
            row["env"] = entry[3]
        return row

    def write(self, context: Mapping[str, Any]) -> None:
        """Write the report of ``context`` (``html_report.report_context`` with this
        cache), its rows copied or rendered, then the index of where they went."""
        from ductaflow.reporting.html_report import render_page

        path = self.runs / REPORT_HTML
        marks = [f"<!--ductaflow rows {i}-->" for i in range(len(context["stages"]))]
        page = render_page({**context, "stages": [
            {**stage, "rows_html": _markup(mark)}
            for stage, mark in zip(context["stages"], marks, strict=True)],
            "stale": [{**stage, "rows_html": _markup(_rendered(stage["rows"]))}
                      for stage in context["stale"]]})
        rows: dict[str, list[Any]] = {}
        try:
            old = open(path, "rb")  # noqa: SIM115 - closed below, after the chunks
        except OSError:
            old = None
        try:
            records.atomic_write_chunks(path, self._chunks(page, marks, context, old, rows))
        finally:
            if old is not None:
                old.close()
        index = {"key": _key(), "report": _stamp(path), "rows": rows,
                 "environments": [list(items) for items in self.environments]}
        records.atomic_write_text(self.runs / REPORT_INDEX,
                                  json.dumps(index, ensure_ascii=False, separators=(",", ":")))

    def _chunks(self, page: str, marks: Sequence[str], context: Mapping[str, Any],
                old: Any, rows: dict[str, list[Any]]) -> Iterator[bytes]:
        """The page's bytes: its frame between the stages' rows, each row copied from
        the last report or rendered; ``rows`` gets where each went."""
        from ductaflow.reporting.html_report import row_html

        rest = page
        at = 0
        for stage, mark in zip(context["stages"], marks, strict=True):
            head, _, rest = rest.partition(mark)
            data = head.encode("utf-8")
            yield data
            at += len(data)
            for row in stage["rows"]:
                self.check()
                if row.get("reused"):
                    data = _copied(old, row["reused"])
                else:
                    data = row_html(row).encode("utf-8")
                yield data
                sign = self.signatures.get(row["key"])
                if sign is not None and row["action"] not in ("running", "waiting"):
                    rows[row["key"]] = [sign, at, len(data), row.get("env") or 0,
                                        _extra(row)]
                at += len(data)
        yield rest.encode("utf-8")


def signature(result: RunResult, params: str, runs: Path | str,
              stamp: str | None = None) -> str:
    """What an instance's row is made of: its result, its parameters, and when its
    folder and its bookkeeping last changed (a run, a record, a file by hand):
    ``stamp``, or its ``folder_stamp`` now."""
    from ductaflow.reporting.stage_results import folder_stamp

    text = "\x1f".join((
        result.action.value, result.status.value if result.status else "", result.reason,
        repr(result.duration_s), result.flow, result.error, result.started_at,
        result.ended_at, str(result.attempts), result.error_at, result.run_dir, params,
        stamp or folder_stamp(os.path.join(runs, result.run_dir))))  # not pathlib: 100,000
    return hashlib.blake2b(text.encode("utf-8"), digest_size=10).hexdigest()


def _copied(old: Any, where: Sequence[int]) -> bytes:
    """A row's bytes in the last report."""
    try:
        old.seek(where[0])
        data = old.read(where[1])
    except (OSError, AttributeError) as exc:
        raise StaleReport from exc
    if not (data.startswith(b"<details ") and data.endswith(b"</details>\n")):
        raise StaleReport
    return data


def _extra(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the page shows of a red or orange row outside it: its links and tail."""
    if row["light"] not in _ATTENTION:
        return None
    return {"links": row["links"], "tail": row["tail"]}


def _rendered(rows: Sequence[Mapping[str, Any]]) -> str:
    from ductaflow.reporting.html_report import row_html

    return "".join(row_html(row) for row in rows)


def _markup(text: str) -> Any:
    import markupsafe

    return markupsafe.Markup(text)


def _stamp(path: Path) -> list[int] | None:
    """The report's size and modification time: the index holds for that file only."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return [found.st_size, found.st_mtime_ns]


def _key() -> list[Any]:
    """What every row depends on beyond its own data: the template, the time zone."""
    from ductaflow.reporting.html_report import template_digest

    return [VERSION, template_digest(), time.strftime("%z")]
