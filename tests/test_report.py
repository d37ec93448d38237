"""The HTML report, the results workbook and the report rebuilt from disk: pure, no kernel.

``make_runs`` builds a runs folder by hand, with every kind of instance a report
shows; the browser tests open the same folder in Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import pytest

from ductaflow.model import Action, Decision, Instance, Row, RunResult, Status
from ductaflow.reporting.html_report import generate_status_report, timeline
from ductaflow.reporting.inventory import read_results_csv, rebuild_report
from ductaflow.reporting.results_files import write_results
from ductaflow.run_folder import provenance, records
from ductaflow.run_folder.files import REPORT_HTML, RESULTS_CSV, RESULTS_XLSX

XSS = "<img src=x onerror=alert(1)>"
OK = "✅ Completed {} | Time: 1.00s"
T0 = datetime(2030, 1, 1, 10, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> str:
    return datetime.fromtimestamp(T0.timestamp() + seconds, timezone.utc).isoformat()


def flow_files(folder: Path, stem: str, lines: list[str], *, html: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}_execution_output.txt").write_text(
        "".join(f"{line}\n" for line in lines), encoding="utf-8")
    (folder / f"{stem}_config.json").write_text("{}\n", encoding="utf-8")
    (folder / f"{stem}.ipynb").write_text("{}\n", encoding="utf-8")
    if html:
        (folder / f"{stem}.html").write_text("<p>notebook</p>\n", encoding="utf-8")


def record(folder: Path, result: RunResult, **extras: object) -> None:
    records.write_record(folder, records.new_record(
        stage=result.stage, instance=result.instance, flow=result.flow, config={}, code={},
        inputs={}, upstream={}, status=result.status.value if result.status else "error",
        started_at=result.started_at or at(0), ended_at=result.ended_at or at(1),
        duration_s=result.duration_s, **extras))


def result(stage: str, name: str, action: Action, status: Status | None, start: float,
           seconds: float, flow: str, reason: str = "new", error: str = "") -> RunResult:
    ran = action in (Action.RAN, Action.FAILED)
    return RunResult(stage=stage, instance=name, action=action, status=status, reason=reason,
                     duration_s=seconds, run_dir=f"{stage}/{name}", flow=flow, error=error,
                     started_at=at(start) if ran else "", ended_at=at(start + seconds)
                     if ran else "")


def make_runs(root: Path) -> tuple[Path, list[RunResult]]:
    """A finished conduct: green, orange, red, skipped, blocked, a build, a stale folder."""
    runs = root / "runs"
    prov = provenance.collect(root)
    results = [
        result("prep", "north", Action.RAN, Status.SUCCESS, 0, 2.5, "flows/prep.py"),
        result("prep", "new york", Action.RAN, Status.SUCCESS, 0.5, 3.0, "flows/prep.py",
               reason=XSS),
        result("prep", "south", Action.SKIPPED, Status.SUCCESS, 0, 1.2, "flows/prep.py",
               reason="up to date"),
        result("model", "east", Action.RAN, Status.WARNING, 3.0, 4.0, "flows/model.py",
               reason="config changed: growth 0.02 -> 0.03"),
        result("model", "west", Action.FAILED, Status.ERROR, 3.5, 1.0, "flows/model.py",
               error="ValueError: " + XSS),
        result("model", "far", Action.BLOCKED, None, 0, 0.0, "flows/model.py",
               reason="upstream failed: model/west"),
        result("report", "all", Action.RAN, Status.WARNING, 7.0, 5.0, "builds/report.py",
               reason="upstream ran: model/east"),
    ]
    lines = {
        "prep/north": ["prepared north", OK.format("prep")],
        "prep/new york": ["prepared new york", OK.format("prep")],
        "prep/south": ["prepared south", OK.format("prep")],
        "model/east": ["modelling", "Warning: 3 zones have no population", OK.format("model")],
        "model/west": ["modelling", f"<script>alert(2)</script> {XSS}", "Traceback ...",
                       "❌ Failed model | Time: 1.00s | ValueError: " + XSS],
        "report/all": ["building", OK.format("report")],
    }
    for item in results:
        if item.action is Action.BLOCKED:
            continue
        folder = runs / item.run_dir
        stem = item.flow.rsplit("/", 1)[1][:-3]
        flow_files(folder, stem, lines[item.key], html=item.key == "prep/north")
        record(folder, item, provenance={**prov, "host": "<b>host</b>"})
    build = runs / "report" / "all"
    flow_files(build / "runs" / "summarise", "summarise", ["summed", OK.format("summarise")])
    flow_files(build / "runs" / "chart", "chart", ["⚠ axis clipped", OK.format("chart")])
    for step in ("summarise", "chart"):
        records.append_flows_manifest(build, {
            "flow": f"flows/{step}.py", "execution_dir": f"runs/{step}", "status": "done",
            "output_file": f"runs/{step}/{step}_execution_output.txt"})
    stale = result("prep", "old", Action.RAN, Status.ERROR, 0, 1.0, "flows/prep.py")
    flow_files(runs / "prep" / "old", "prep", ["gone", "❌ Failed prep | Time: 1.00s | x"])
    record(runs / "prep" / "old", stale)
    return runs, results


def fake_plan(root: Path, runs: Path, results: list[RunResult]) -> SimpleNamespace:
    decisions = []
    for item in results:
        values = {"instance": item.instance, "flow": item.flow, "scenario": XSS,
                  "growth": 0.02, "formula": "=1+1", "dash": "-x", "at": "@SUM(A1)",
                  "plus": "+1", "years": [2030, 2040], "negative": -3}
        row = Row(file="t.csv", sheet=None, stage=item.stage, line=2, values=values)
        instance = Instance(stage=item.stage, name=item.instance, flow=item.flow, config={},
                            row=row)
        decisions.append(Decision(instance, run=item.action is not Action.SKIPPED,
                                  reasons=(item.reason,)))
    return SimpleNamespace(project_root=root, runs_dir=runs, decisions=tuple(decisions))


class Page(HTMLParser):
    """The parts of the report the tests look at."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag
                and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def counts(html: str) -> dict[str, int]:
    return {name: int(value) for name, value in
            re.findall(r'data-count="(\w+)"><b>(\d+)</b>', html)}


@pytest.fixture
def finished(tmp_path: Path) -> tuple[Path, list[RunResult], str]:
    runs, results = make_runs(tmp_path)
    return runs, results, generate_status_report(results, runs)


def test_summary_counts_lights_and_actions(finished: tuple) -> None:
    runs, results, html = finished
    found = counts(html)
    assert found == {"total": 7, "success": 3, "warning": 2, "error": 1, "none": 1, "ran": 4,
                     "skipped": 1, "failed": 1, "blocked": 1}
    page = Page(html)
    statuses = [a["data-status"] for a in page.all("details") if a.get("data-key")]
    assert len(statuses) == 7 and statuses.count("success") == 3


def test_table_content_is_escaped_and_no_script_but_ours(finished: tuple) -> None:
    _, _, html = finished
    assert XSS not in html and "<script>alert" not in html and "<b>host</b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b&gt;host&lt;/b&gt;" in html
    page = Page(html)
    assert len(page.all("script")) == 1 and not page.all("img")
    assert not any(k.startswith("on") for _, attrs in page.tags for k in attrs)


def test_the_only_script_is_allowed_by_the_content_security_policy(finished: tuple) -> None:
    _, _, html = finished
    page = Page(html)
    (policy,) = page.all("meta", http_equiv="Content-Security-Policy")
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy["content"]
    assert "default-src 'none'" in policy["content"]


def test_links_are_relative_and_resolve_to_files(finished: tuple) -> None:
    runs, _, html = finished
    hrefs = [a["href"] for a in Page(html).all("a") if not a["href"].startswith("#")]
    assert hrefs and all(not h.startswith(("/", "file:", "http")) for h in hrefs)
    for href in hrefs:
        assert (runs / unquote(href)).is_file(), href
    assert "prep/north/prep.html" in hrefs  # the HTML export when there is one
    assert "prep/new%20york/prep.ipynb" in hrefs  # else the notebook
    assert "report/all/runs/chart/chart_execution_output.txt" in hrefs  # a build's flow
    assert not any(h.startswith("model/far/") for h in hrefs)  # blocked: nothing to open


def test_what_needs_attention_comes_first_and_panels_start_closed(finished: tuple) -> None:
    _, _, html = finished
    page = Page(html)
    assert not any("open" in a for a in page.all("details"))  # 5,000 panels stay readable
    attention = html.split('<ul class="attention">')[1].split("</ul>")[0]
    keys = re.findall(r'class="key" href="#[^"]+">([^<]+)<', attention)
    lights = re.findall(r'<i class="light (\w+)"', attention)
    assert lights == sorted(lights, key=["error", "none", "warning"].index)  # red, blocked, orange
    assert {"model/east", "model/west", "report/all", "model/far"} <= set(keys)
    assert html.index('id="attention"') < html.index("Timeline")
    assert "<mark>Warning: 3 zones have no population</mark>" in html  # its last lines
    assert "prepared north" not in html  # green instances show no output


def test_builds_expand_to_their_flows_with_lights(finished: tuple) -> None:
    _, _, html = finished
    page = Page(html)
    (build,) = page.all("details", data_build="2")
    assert build["data-key"] == "report/all"
    flows = [a["data-status"] for a in page.all("tr") if a.get("class") == "flow"]
    assert flows == ["success", "warning"]
    assert "runs/summarise" in html and "flows/chart.py" in html
    assert "<mark>⚠ axis clipped</mark>" in html


def test_the_footer_is_drawn_without_an_emoji_font(finished: tuple) -> None:
    _, _, html = finished
    assert '<i class="light error"></i> Failed model | Time: 1.00s' in html
    assert "❌" not in html and "✅" not in html  # nothing that shows as an empty box


def test_provenance_is_shown_per_instance(finished: tuple) -> None:
    _, _, html = finished
    assert "<dt>host</dt>" in html and "<dt>packages</dt>" in html
    assert re.search(r"<dt>python</dt><dd>3\.\d+", html)


def test_finished_page_does_not_refresh_running_page_does(finished: tuple) -> None:
    runs, results, html = finished
    assert 'http-equiv="refresh"' not in html
    live = generate_status_report(results, runs, running=True, elapsed_s=12.0)
    assert '<meta http-equiv="refresh" content="5">' in live
    assert "Elapsed <b>12.0 s</b>" in live


def test_running_and_waiting_instances_and_time_left(tmp_path: Path) -> None:
    runs, results = make_runs(tmp_path)
    done = [r for r in results if r.stage == "prep"]
    plan = fake_plan(tmp_path, runs, results)
    now = datetime.fromisoformat(at(5.0))
    html = generate_status_report(done, runs, running=True, elapsed_s=5.0, now=now,
                                  running_now={"model/east": at(3.0)},
                                  decisions=plan.decisions)
    found = counts(html)
    assert found["running"] == 1 and found["waiting"] == 3 and found["total"] == 7
    assert "1 running, 3 waiting" in html
    # prep took 2.75 s on average; nothing of model ran yet: its last runs say 4 and 1 s.
    assert re.search(r"about \d+\.\d s left", html)
    bars = timeline([{"start": datetime.fromisoformat(at(3.0)), "end": None, "key": "model/east",
                      "light": "running", "duration_s": None, "id": "i-1"}], now)
    assert bars is not None and bars["bars"][0]["light"] == "running"


def test_timeline_packs_overlapping_runs_into_lanes(finished: tuple) -> None:
    _, _, html = finished
    assert "5 ran over 12.0 s, up to 2 at once" in html
    page = Page(html)
    ids = {a["id"] for a in page.all("details") if a.get("id")}
    drawn = html.split('<div class="timeline">')[1].split("</div>")[0]
    anchors = re.findall(r'<a href="(#[^"]+)"', drawn)
    assert len(anchors) == 5 and all(h[1:] in ids for h in anchors)


def test_empty_report_renders(tmp_path: Path) -> None:
    html = generate_status_report([], tmp_path)
    assert "No instances yet." in html and counts(html)["total"] == 0


# --- files of a conduct -------------------------------------------------------------------------


def test_write_results_keeps_csv_and_html_live_and_the_workbook_for_the_end(
        tmp_path: Path) -> None:
    runs, results = make_runs(tmp_path)
    plan = fake_plan(tmp_path, runs, results)
    write_results(results[:2], plan, running=True, started_at=0.0,
                  running_now={"prep/south": at(1.0)})
    assert (runs / RESULTS_CSV).is_file() and (runs / REPORT_HTML).is_file()
    assert not (runs / RESULTS_XLSX).exists()
    assert 'http-equiv="refresh"' in (runs / REPORT_HTML).read_text(encoding="utf-8")
    write_results(results, plan, running=False, started_at=0.0)
    assert (runs / RESULTS_XLSX).is_file()
    assert not list(runs.glob(".*.tmp"))


def test_a_live_write_given_up_leaves_the_report_as_it_was(tmp_path: Path) -> None:
    """The conduct's final write is due: a live write going on gives up between two
    rows, and the report on disk stays whole (the last one, not half of the next)."""
    from ductaflow.reporting.row_cache import Cancelled

    runs, results = make_runs(tmp_path)
    plan = fake_plan(tmp_path, runs, results)
    write_results(results[:2], plan, running=True, started_at=0.0)
    before = (runs / REPORT_HTML).read_bytes()
    asked: list[int] = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 3  # a few rows in

    with pytest.raises(Cancelled):
        write_results(results, plan, running=True, started_at=0.0, cancelled=cancelled)
    assert (runs / REPORT_HTML).read_bytes() == before
    assert not list(runs.glob(".*.tmp"))
    write_results(results, plan, running=False, started_at=0.0)
    shown = set(re.findall(r'data-key="([^"]+)" data-status="(\w+)"',
                           (runs / REPORT_HTML).read_text(encoding="utf-8")))
    assert ("model/west", "error") in shown and ("report/all", "warning") in shown
    assert ("prep/north", "success") in shown and len(asked) == 4


def test_workbook_rows_as_written_with_lights_and_no_formulas(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    runs, results = make_runs(tmp_path)
    write_results(results, fake_plan(tmp_path, runs, results), running=False, started_at=0.0)
    book = load_workbook(runs / RESULTS_XLSX)
    assert book.sheetnames == ["prep", "model", "report"]
    sheet = book["model"]
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["instance", "flow", "scenario", "growth"]
    assert header[-5:] == ["status", "action", "reason", "duration_s", "run_dir"]
    rows = {r[0].value: {h: c for h, c in zip(header, r, strict=True)}
            for r in sheet.iter_rows(min_row=2)}
    west = rows["west"]
    assert west["status"].value == "error" and west["status"].fill.fgColor.rgb.endswith("FFC7CE")
    assert rows["east"]["status"].fill.fgColor.rgb.endswith("FFEB9C")
    assert west["scenario"].value == XSS and west["growth"].value == 0.02
    assert west["negative"].value == -3 and west["years"].value == "[2030, 2040]"
    assert west["duration_s"].value == 1.0
    for column in ("formula", "dash", "at", "plus"):
        cell = west[column]
        assert cell.data_type == "s" and cell.quotePrefix, column
    assert west["formula"].value == "=1+1"
    assert rows["far"]["status"].value is None  # blocked: no light


def test_rebuild_report_from_disk_alone(tmp_path: Path) -> None:
    runs, results = make_runs(tmp_path)
    write_results(results, fake_plan(tmp_path, runs, results), running=False, started_at=0.0)
    assert read_results_csv(runs) == results
    (runs / REPORT_HTML).unlink()
    path = rebuild_report(runs)
    html = path.read_text(encoding="utf-8")
    assert path == runs / REPORT_HTML
    assert counts(html)["total"] == 7 and counts(html)["error"] == 1
    assert "Orphans" in html and 'data-key="prep/old"' in html
    assert "Rebuilt from the runs folder" in html and XSS not in html


def test_rebuild_report_without_results_lists_what_is_on_disk(tmp_path: Path) -> None:
    runs, _ = make_runs(tmp_path)
    html = rebuild_report(runs).read_text(encoding="utf-8")
    assert counts(html)["total"] == 0 and html.count('class="inst"') == 7


def test_a_locked_results_file_does_not_stop_the_conduct(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import ductaflow.reporting.results_files

    def locked(path: Path, *args: object) -> None:
        raise PermissionError(13, "in use by another process", str(path))

    runs, results = make_runs(tmp_path)
    monkeypatch.setattr(ductaflow.reporting.results_files, "write_workbook", locked)
    write_results(results, fake_plan(tmp_path, runs, results), running=False, started_at=0.0)
    assert (runs / REPORT_HTML).is_file() and not (runs / RESULTS_XLSX).exists()
    assert "could not write" in caplog.text and RESULTS_XLSX in caplog.text


@pytest.mark.kernel
def test_a_script_run_after_a_notebook_run_links_no_stale_notebook(tmp_path: Path) -> None:
    import ductaflow

    (tmp_path / "flows").mkdir()
    (tmp_path / "flows/act.py").write_text(
        '# %% tags=["parameters"]\nconfig = {}\n# %%\nprint("hi")\n', encoding="utf-8")
    (tmp_path / "act.csv").write_text("instance,x\na,1\n", encoding="utf-8")
    runs = tmp_path / "runs"

    def hrefs() -> list[str]:
        html = (runs / REPORT_HTML).read_text(encoding="utf-8")
        return [a["href"] for a in Page(html).all("a") if a["href"].startswith("act/")]

    ductaflow.conduct(str(tmp_path / "act.csv"), project_root=tmp_path, progress=False,
                      export_html=True)
    assert "act/a/act.html" in hrefs()
    ductaflow.conduct(str(tmp_path / "act.csv"), project_root=tmp_path, progress=False,
                      force=True)
    assert "act/a/act.ipynb" in hrefs()  # the export was not made this time
    ductaflow.conduct(str(tmp_path / "act.csv"), project_root=tmp_path, progress=False,
                      force=True, mode="script")
    assert (runs / "act/a/act.ipynb").is_file()  # kept: nothing is lost
    assert sorted(hrefs()) == ["act/a/act_config.json", "act/a/act_execution_output.txt"]


# --- rows reused from the last report ---------------------------------------------------------


def report_rows(runs: Path) -> dict[str, str]:
    html = (runs / REPORT_HTML).read_text(encoding="utf-8")
    return dict(re.findall(r'(<details class="inst" id="[^"]+" data-key="([^"]+)".*?</details>)',
                           html, re.S)[i][::-1] for i in range(html.count('class="inst"')))


def test_a_rewritten_report_is_the_one_written_from_scratch(tmp_path: Path) -> None:
    runs, results = make_runs(tmp_path)
    plan = fake_plan(tmp_path, runs, results)
    write_results(results, plan, running=False, started_at=0.0)
    first = report_rows(runs)
    (runs / REPORT_HTML).unlink()
    write_results(results, plan, running=False, started_at=0.0)  # every row rendered
    assert report_rows(runs) == first
    (runs / RESULTS_CSV).unlink()  # a finished conduct rewrites an unchanged report only then
    write_results(results, plan, running=False, started_at=0.0)  # every row reused
    assert report_rows(runs) == first


def test_a_reused_row_follows_a_hand_edit_of_its_folder(tmp_path: Path) -> None:
    runs, results = make_runs(tmp_path)
    plan = fake_plan(tmp_path, runs, results)
    write_results(results, plan, running=True, started_at=0.0)
    assert "prep/north/prep.html" in report_rows(runs)["prep/north"]
    (runs / "prep/north/prep.html").unlink()  # the notebook link falls back to the .ipynb
    write_results(results, plan, running=True, started_at=0.0)
    row = report_rows(runs)["prep/north"]
    assert "prep/north/prep.html" not in row and "prep/north/prep.ipynb" in row


def test_a_reused_row_follows_a_new_record_and_a_new_result(tmp_path: Path) -> None:
    import dataclasses

    runs, results = make_runs(tmp_path)
    plan = fake_plan(tmp_path, runs, results)
    write_results(results, plan, running=True, started_at=0.0)
    assert 'data-status="success"' in report_rows(runs)["prep/south"]
    south = dataclasses.replace(results[2], action=Action.RAN, status=Status.ERROR,
                                started_at=at(20), ended_at=at(21), error="boom")
    record(runs / "prep/south", south, provenance={"host": "elsewhere"})
    again = [south if r.key == "prep/south" else r for r in results]
    write_results(again, plan, running=False, started_at=0.0)
    row = report_rows(runs)["prep/south"]
    assert 'data-status="error"' in row and "boom" in row and 'data-action="ran"' in row
    html = (runs / REPORT_HTML).read_text(encoding="utf-8")
    assert "elsewhere" in html.split('id="environments"')[1]  # its new environment listed
    assert report_rows(runs)["prep/north"].count("prep/north/prep.html") == 1


def test_a_report_written_by_another_hand_is_not_reused(tmp_path: Path) -> None:
    runs, results = make_runs(tmp_path)
    plan = fake_plan(tmp_path, runs, results)
    write_results(results, plan, running=True, started_at=0.0)
    first = report_rows(runs)
    (runs / REPORT_HTML).write_text("<p>something else</p>" * 50, encoding="utf-8")
    write_results(results, plan, running=True, started_at=0.0)
    assert report_rows(runs) == first


def test_workbook_cells_keep_their_text_type_and_link(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    from ductaflow.reporting.results_files import write_workbook

    item = result("odd", "a&b <c>", Action.FAILED, Status.ERROR, 0, 1.0, "flows/odd.py",
                  error="x")
    row = {"instance": "a&b <c>", "spaced": "  two  ", "bell": "ding\x07dong", "flag": True,
           "big": 12345678901, "nothing": None}
    write_workbook(tmp_path / "w.xlsx", [item], {}, {item.key: {"npv": 1.5, "bad": math.inf}},
                   {item.key: row})
    sheet = load_workbook(tmp_path / "w.xlsx")["odd"]
    cells = {head.value: cell for head, cell in zip(sheet[1], sheet[2], strict=True)}
    assert cells["instance"].value == "a&b <c>" and cells["spaced"].value == "  two  "
    assert cells["bell"].value == "dingdong" and cells["flag"].value is True
    assert cells["big"].value == 12345678901 and cells["nothing"].value is None
    assert cells["run_dir"].hyperlink.target == "odd/a&b <c>"
    assert cells["npv"].value == 1.5 and cells["npv"].font.i and cells["bad"].value == "inf"
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:M2"


def test_stage_values_are_kept_until_the_folder_changes(tmp_path: Path) -> None:
    import json
    import os

    from ductaflow.reporting.stage_results import write_stage_files

    runs = tmp_path / "runs"
    row = Row(file="t.csv", sheet=None, stage="model", line=2, values={"instance": "a"})
    inst = Instance(stage="model", name="a", flow="flows/model.py", config={}, row=row)
    folder = runs / "model" / "a"
    folder.mkdir(parents=True)
    (folder / "model_results.json").write_text(json.dumps({"npv": 1}), encoding="utf-8")
    first = write_stage_files(tmp_path, runs, [inst], {"model/a": "success"})
    assert first[0].rows[0].values == {"npv": 1}
    (folder / "model_results.json").write_text(json.dumps({"npv": 2}), encoding="utf-8")
    os.utime(folder, ns=(1, 1))  # the folder as it was: its values are kept
    stamp = os.stat(folder).st_mtime_ns
    roster = json.loads((runs / ".conductor.stages" / "model.json").read_text(encoding="utf-8"))
    roster["instances"][0]["stamp"] = f"{stamp}/-"
    (runs / ".conductor.stages" / "model.json").write_text(json.dumps(roster), encoding="utf-8")
    assert write_stage_files(tmp_path, runs, [inst], {"model/a": "success"})[0] \
        .rows[0].values == {"npv": 1}
    (folder / "extra.txt").write_text("x", encoding="utf-8")  # a file by hand: read again
    assert write_stage_files(tmp_path, runs, [inst], {"model/a": "success"})[0] \
        .rows[0].values == {"npv": 2}
