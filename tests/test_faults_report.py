"""Report: hostile names, values and captured output stay inert text; exported CSV and
XLSX cells never become formulas; the terminal shows names and values as written.

Extends test_report.py (one escaped payload in a hand-made runs folder) with a real
conduct whose stage, instance and flow names, config values (shown in reasons), error
messages and captured lines all carry payloads, checked by parsing the live report and
the one ``ductaflow report`` rebuilds from disk.
"""

from __future__ import annotations

import csv
import shutil
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import openpyxl
import pytest

from ductaflow.run_folder.files import REPORT_HTML, RESULTS_CSV, RESULTS_XLSX

from .conftest import run_cli
from .test_faults_common import conduct_cli, make_project

SCRIPT = "<script>alert(1)</script>"
PAYLOADS = [SCRIPT, '" onerror="alert(2)', "' onmouseover='alert(3)", "javascript:alert(4)",
            "</textarea><svg onload=alert(5)>", "<img src=x onerror=alert(6)>",
            "&lt;b&gt;entity&lt;/b&gt;", "]]><!--", "{{7*7}}"]
STAGE = "s'onerror=alert(7)"  # a file name: no < > " / allowed, quotes and = are
INSTANCES = ["i' onerror='alert(8)", "javascript&#58;alert(9)", "=1+1", "@SUM(1)", "-2+x",
             "%3Cscript%3E"]
FLOW = "flows/f' onfocus='alert(10).py"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def table(note: str) -> str:
    """One row per hostile instance name: one raises, one warns, the rest print."""
    rows = ["instance,flow,tag,act,message,note"]
    for n, name in enumerate(INSTANCES):
        act = "raise" if n == 0 else "warn" if n == 1 else "print"
        message = " ".join(PAYLOADS)
        rows.append(",".join(csv_cell(v) for v in (name, FLOW, f"{SCRIPT}{n}", act, message,
                                                   note)))
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A project conducted twice: the second time every note changed to a payload, so
    reasons (``config changed: note ... -> ...``) carry them too."""
    root = make_project(tmp_path_factory.mktemp("report") / "project", {})
    shutil.copy(Path(__file__).parent / "data/fault_act.py", root / FLOW)
    stage_table = root / "scenarios" / f"{STAGE}.csv"
    stage_table.write_text(table("plain"), encoding="utf-8")
    first = conduct_cli(root, f"scenarios/{STAGE}.csv", "--mode", "script")
    assert first.returncode == 1, first.stdout + first.stderr
    stage_table.write_text(table(" ".join(PAYLOADS)), encoding="utf-8")
    second = conduct_cli(root, f"scenarios/{STAGE}.csv", "--mode", "script")
    assert second.returncode == 1, second.stdout + second.stderr
    return root


class Page(HTMLParser):
    """Every element and attribute of a page, and its text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


ALLOWED_TAGS = {"html", "head", "meta", "title", "link", "style", "script", "body", "header",
                "h1", "h2", "h3", "main", "section", "details", "summary", "div", "span", "p",
                "a", "b", "i", "small", "dl", "dt", "dd", "svg", "rect", "line", "text", "g",
                "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "code", "pre", "em",
                "strong", "nav", "footer", "br", "time", "abbr", "label", "input", "button",
                "mark", "select", "option"}  # the search and status filter


def assert_inert(html: str) -> None:
    page = Page(html)
    names = {tag for tag, _ in page.tags}
    assert names <= ALLOWED_TAGS, names - ALLOWED_TAGS
    assert [tag for tag, _ in page.tags].count("script") == 1  # ours, hashed in the CSP
    for tag, attrs in page.tags:
        for key, value in attrs.items():
            assert not key.startswith("on"), (tag, key, value)
            assert key.replace("-", "").isalnum() or key in ("xml:lang",), (tag, key)
            text = "".join((value or "").split()).lower()
            if key in ("href", "src", "action", "formaction", "xlink:href"):
                assert not text.startswith(("javascript:", "vbscript:")), (tag, value)
                assert tag == "link" or not text.startswith("data:"), (tag, value)
                assert tag == "link" or value.startswith("#") or ":" not in value.split(
                    "/")[0], (tag, value)
            assert "alert(" not in text or key in ("title", "aria-label", "data-key"), \
                (tag, key, value)
    shown = "".join(page.text)
    for payload in (SCRIPT, "<img src=x onerror=alert(6)>", "i' onerror='alert(8)", STAGE):
        assert payload in shown, f"{payload!r} is not shown as text"


def test_the_live_report_shows_every_payload_as_inert_text(hostile):
    html = (hostile / "runs" / REPORT_HTML).read_text(encoding="utf-8")
    assert "config changed: note plain -&gt; &lt;script&gt;" in html  # a reason with a value
    assert "ValueError: boom in &lt;script&gt;alert(1)&lt;/script&gt;0" in html  # an error
    assert_inert(html)


def test_the_report_rebuilt_from_disk_shows_every_payload_as_inert_text(hostile, tmp_path):
    root = shutil.copytree(hostile, tmp_path / "project")
    (root / "runs" / REPORT_HTML).unlink()
    done = run_cli("report", "runs", cwd=root)
    assert done.returncode == 0, done.stderr
    assert_inert((root / "runs" / REPORT_HTML).read_text(encoding="utf-8"))


def test_results_csv_cells_cannot_become_formulas(hostile):
    with open(hostile / "runs" / RESULTS_CSV, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["instance"] for row in rows} >= {"'=1+1", "'@SUM(1)", "'-2+x"}
    for row in rows:
        for column, value in row.items():
            assert not value.startswith(FORMULA_START), (column, value)


def test_results_workbook_cells_cannot_become_formulas(hostile):
    path = hostile / "runs" / RESULTS_XLSX
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in archive.read(name) and b"<f " not in archive.read(name)
    book = openpyxl.load_workbook(path)
    texts = []
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
                    assert cell.quotePrefix, (cell.coordinate, cell.value)
                    texts.append(cell.value)
    assert {"=1+1", "@SUM(1)", "-2+x"} <= set(texts)


def test_the_terminal_shows_names_and_values_as_written(tmp_path):
    root = make_project(tmp_path, {"act": "instance,tag,note\nx[bold]y,a,plain\n"})
    first = conduct_cli(root, "scenarios/act.csv", "--mode", "script")
    assert first.returncode == 0 and "act/x[bold]y" in first.stdout, first.stdout
    (root / "scenarios/act.csv").write_text("instance,tag,note\nx[bold]y,a,[/x] [red]\n",
                                            encoding="utf-8")
    for args in (["--dry-run"], []):
        again = conduct_cli(root, "scenarios/act.csv", "--mode", "script", *args)
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stderr
        assert "config changed: note plain -> [/x] [red]" in again.stdout, again.stdout
    shown = run_cli("status", "runs", cwd=root)
    assert "x[bold]y" in shown.stdout, shown.stdout
