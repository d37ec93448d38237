"""The planner: rows to instances, their order, and every reason to run or skip.

No flow runs here: ``_finish`` writes the records the engine would write, on
hand-made projects in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ductaflow.errors import PlanError, TableError, TemplateError, UsageError
from ductaflow.model import Row, Table
from ductaflow.planning.decisions import decide
from ductaflow.planning.instances import build_instances
from ductaflow.planning.planner import Plan, plan
from ductaflow.run_folder import fingerprints, records
from ductaflow.run_folder.files import RECORD
from ductaflow.run_folder.names import name_problem

REPO = Path(__file__).resolve().parents[1]


def _table(stage: str, rows: list[dict[str, Any]], file: str | None = None,
           sheet: str | None = None) -> Table:
    """A table as ``read_tables`` gives it: typed values, blanks (None) left out."""
    headers = tuple(dict.fromkeys(h for r in rows for h in r if h != "enabled"))
    columns = {h: str(i + 1) for i, h in enumerate(headers)}
    file = file or f"scenarios/{stage}.csv"
    typed = tuple(
        Row(file, sheet, stage, line, {h: v for h, v in r.items()
                                       if h != "enabled" and v is not None},
            columns, r.get("enabled", True))
        for line, r in enumerate(rows, start=2)
    )
    return Table(file, sheet, stage, headers, typed)


def _write(path: Path, text: str = "print('hi')\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for name in ("prep", "model", "report"):
        _write(root / "flows" / f"{name}.py")
    _write(root / "data" / "zones.csv", "zone\n1\n")
    return root


def _pipeline(**prep_changes: Any) -> list[Table]:
    """prep/{north,east} -> model/{north,east} -> report/all."""
    prep = [{"instance": "{region}", "region": r, "growth": g, "zones": "data/zones.csv"}
            for r, g in (("north", 0.02), ("east", 0.03))]
    for row in prep:
        row.update(prep_changes.get(row["region"], {}))
    model = [{"instance": "{region}", "region": r, "input": "{runs}/prep/{region}/out.csv"}
             for r in ("north", "east")]
    report = [{"instance": "all", "a": "runs/model/north/summary.csv",
               "b": "runs/model/east/summary.csv"}]
    return [_table("prep", prep), _table("model", model), _table("report", report)]


def _finish(p: Plan, status: str = "success", only: set[str] | None = None) -> None:
    """Do on disk what the engine does for each instance the plan runs."""
    referenced = {r for d in p.decisions for r in d.instance.references}
    for decision in p.to_run:
        inst = decision.instance
        if only is not None and inst.key not in only:
            continue
        folder = p.runs_dir / inst.run_dir
        records.write_started(folder, {})
        for ref in referenced:
            if ref.startswith(inst.run_dir + "/"):
                _write(p.runs_dir / ref, "x\n")
        records.write_record(folder, records.new_record(
            stage=inst.stage, instance=inst.name, flow=inst.flow,
            config={**inst.config, "_project_root": str(p.project_root)},
            code=fingerprints.code_fingerprint(p.project_root, [inst.flow]),
            inputs=fingerprints.input_fingerprints(p.project_root, inst.inputs),
            upstream=records.upstream_run_ids(p.runs_dir, inst.depends_on),
            status=status, started_at=records.utc_now(), ended_at=records.utc_now(),
            duration_s=0.1,
        ))


def _reasons(p: Plan) -> dict[str, str]:
    return {d.instance.key: d.reason for d in p.decisions}


def _ran(root: Path, tables: list[Table] | None = None) -> Plan:
    """Plan and finish everything once, so the next plan starts up to date."""
    first = plan(tables or _pipeline(), project_root=root)
    _finish(first)
    return first


UP_TO_DATE = {k: "up to date" for k in
              ("prep/north", "prep/east", "model/north", "model/east", "report/all")}


# --- instances ------------------------------------------------------------------------


def test_instances_are_ordered_upstream_first(root: Path) -> None:
    tables = _pipeline()
    instances = build_instances(tables, root, root / "runs")
    keys = [i.key for i in instances]
    assert keys == ["prep/north", "prep/east", "model/north", "model/east", "report/all"]
    reversed_keys = [i.key for i in build_instances(tables[::-1], root, root / "runs")]
    assert reversed_keys == ["prep/north", "model/north", "prep/east", "model/east",
                             "report/all"]
    model = instances[2]
    assert model.depends_on == ("prep/north",)
    assert model.references == ("prep/north/out.csv",)
    assert model.flow == "flows/model.py"
    assert instances[4].depends_on == ("model/north", "model/east")


def test_config_is_base_file_updated_with_the_row(root: Path) -> None:
    _write(root / "config" / "flows" / "prep.json",
           json.dumps({"growth": 0.01, "years": [2030], "opts": {"a": 1, "b": 2}, "keep": "k"}))
    table = _table("prep", [{"instance": "x", "growth": None, "opts.b": 3, "opts.c.d": True,
                             "years": [2040, 2050], "#note": None}])
    [inst] = build_instances([table], root, root / "runs")
    assert inst.config == {"growth": 0.01, "years": [2040, 2050], "keep": "k",
                           "opts": {"a": 1, "b": 3, "c": {"d": True}}}
    assert "instance" not in inst.config and "flow" not in inst.config


def test_bad_base_config_names_its_file(root: Path) -> None:
    _write(root / "config" / "flows" / "prep.json", "{not json")
    with pytest.raises(TableError, match=r"config/flows/prep\.json: invalid JSON"):
        build_instances([_table("prep", [{"instance": "x"}])], root, root / "runs")


def test_dotted_header_under_a_scalar_is_an_error(root: Path) -> None:
    table = _table("prep", [{"instance": "x", "a": 1, "a.b": 2}])
    with pytest.raises(TableError, match=r"row 2, column 2 \(a\): column 'a' sets 'a' to 1, "
                                         r"and column 'a\.b' sets a key inside it"):
        build_instances([table], root, root / "runs")


def test_templates_render_against_raw_values_and_builtins(root: Path) -> None:
    table = _table("prep", [{"instance": "{region}_{year:04d}", "region": "n", "year": 30,
                             "label": "{stage}:{instance}:{runs}", "alias": "{label}",
                             "braces": "{{x}}", "list": ["{region}", 1]}])
    [inst] = build_instances([table], root, root / "runs")
    assert inst.name == "n_0030"
    assert inst.config["label"] == "prep:n_0030:runs"
    assert inst.config["alias"] == "{stage}:{instance}:{runs}"
    assert inst.config["braces"] == "{x}"
    assert inst.config["list"] == ["n", 1]


@pytest.mark.parametrize(("cell", "error", "message"), [
    ({"instance": "{instance}_x"}, TemplateError,
     r"row 2, column 1 \(instance\): .*\{instance\}"),
    ({"instance": "x", "out": "{regoin}", "region": "n"}, TemplateError,
     r"prep\.csv, row 2, column 2 \(out\): unknown field \{regoin\} \(did you mean \{region\}"),
    ({"instance": "x", "out": ["{a.b}"]}, TemplateError, r"column 2 \(out\): attribute access"),
    ({"instance": "x", "stage": "s"}, TableError, r"column 2 \(stage\): column 'stage' clashes"),
    ({"instance": "x", "runs": "s"}, TableError, r"clashes with the built-in \{runs\}"),
])
def test_template_and_builtin_errors_name_the_cell(root: Path, cell: dict, error: type,
                                                    message: str) -> None:
    with pytest.raises(error, match=message):
        build_instances([_table("prep", [cell])], root, root / "runs")


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "CON", "con.txt", "Lpt1", "NUL.tar.gz",
                                  "a:b", "x.", " x", "x ", "a\x00b", "a\tb", ".", "..", "",
                                  "a*b", 'a"b', "a" * 101])
def test_unsafe_instance_names_are_refused(root: Path, name: str) -> None:
    assert name_problem(name) is not None
    with pytest.raises(TableError, match="instance name"):
        build_instances([_table("prep", [{"instance": "{n}", "n": name}])], root, root / "runs")


@pytest.mark.parametrize("name", ["north", "a.b", "CONSOLE", "COM10", "x-1_2", "Ünïcode",
                                  "a" * 100])
def test_safe_names(name: str) -> None:
    assert name_problem(name) is None


def test_unsafe_stage_name_is_refused(root: Path) -> None:
    with pytest.raises(TableError, match="stage name 'a:b'"):
        build_instances([_table("a:b", [{"instance": "x", "flow": "flows/prep.py"}])],
                        root, root / "runs")


def test_duplicate_names_even_by_case_name_both_rows(root: Path) -> None:
    table = _table("prep", [{"instance": "North"}, {"instance": "east"}, {"instance": "north"}])
    with pytest.raises(TableError, match=r"row 4, column 1 \(instance\): instance 'north' is "
                                         r"already defined in stage 'prep' \(row 2"):
        build_instances([table], root, root / "runs")


def test_disabled_rows_are_left_out(root: Path) -> None:
    table = _table("prep", [{"instance": "a"}, {"instance": "b", "enabled": False},
                            {"instance": "a", "enabled": False}])
    assert [i.name for i in build_instances([table], root, root / "runs")] == ["a"]


def test_flow_default_column_and_errors(root: Path) -> None:
    _write(root / "builds" / "all.py")
    tables = [_table("all", [{"instance": "x"}]),
              _table("other", [{"instance": "y", "flow": "flows/{kind}.py", "kind": "model"}])]
    assert [i.flow for i in build_instances(tables, root, root / "runs")] == [
        "builds/all.py", "flows/model.py"]
    with pytest.raises(TableError, match=r"row 2: no flow column.*flows/none\.py"):
        build_instances([_table("none", [{"instance": "x"}])], root, root / "runs")
    _write(root.parent / "outside.py")
    for flow in ("../outside.py", str(root / "flows" / "prep.py"), "flows/missing.py",
                 "flows", "flows/../../outside.py"):
        table = _table("prep", [{"instance": "x", "flow": flow}])
        with pytest.raises(TableError, match=r"column 2 \(flow\)"):
            build_instances([table], root, root / "runs")


def test_no_instance_column(root: Path) -> None:
    with pytest.raises(TableError, match="no instance column"):
        build_instances([_table("prep", [{"region": "x"}])], root, root / "runs")


# --- paths ------------------------------------------------------------------------------


def test_paths_reach_the_flow_ready_to_open(root: Path) -> None:
    (root / "data" / "sub").mkdir()
    (root / "flows" / "data").mkdir()
    (root / "runs" / "old" / "keep").mkdir(parents=True)
    table = _table("prep", [{
        "instance": "x",
        "runs_file": "runs/old/keep/out.csv",
        "windows": "data\\zones.csv",
        "project_file": "./data/zones.csv",
        "project_dir": "data/sub",
        "absolute": str(root / "data" / "zones.csv"),
        "url": "https://example.org/data/zones.csv",
        "missing": "data/missing.csv",
        "word": "data",
        "leaving": "../data/zones.csv",
        "list": ["data/zones.csv", "runs/old/keep", 3],
        "obj": {"p": "data/zones.csv"},
    }])
    [inst] = build_instances([table], root, root / "runs")
    assert inst.config == {
        "runs_file": "../../old/keep/out.csv",
        "windows": "../../../data/zones.csv",
        "project_file": "../../../data/zones.csv",
        "project_dir": "../../../data/sub",
        "absolute": str(root / "data" / "zones.csv"),
        "url": "https://example.org/data/zones.csv",
        "missing": "data/missing.csv",
        "word": "data",
        "leaving": "../data/zones.csv",
        "list": ["../../../data/zones.csv", "../../old/keep", 3],
        "obj": {"p": "../../../data/zones.csv"},
    }
    assert inst.inputs == ("data/zones.csv",)
    assert inst.depends_on == ()
    assert inst.references == ("old/keep", "old/keep/out.csv")


def test_runs_dir_deeper_or_outside_the_project(root: Path, tmp_path: Path) -> None:
    table = _table("prep", [{"instance": "x", "z": "data/zones.csv", "r": "{runs}/prep/x/o"}])
    [deep] = build_instances([table], root, root / "out" / "runs")
    assert deep.config == {"z": "../../../../data/zones.csv", "r": "../../prep/x/o"}
    outside = tmp_path / "scratch"
    [far] = build_instances([table], root, outside)
    assert far.config == {"z": (root / "data" / "zones.csv").as_posix(),
                          "r": f"{outside.as_posix()}/prep/x/o"}
    assert far.references == ("prep/x/o",)
    with pytest.raises(UsageError, match="runs folder"):
        build_instances([table], root, root)


def test_moved_project_plans_identical_configs_and_skips_everything(
        root: Path, tmp_path: Path) -> None:
    first = _ran(root)
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(root, moved, symlinks=True)
    again = plan(_pipeline(), project_root=moved)
    assert [d.instance.config for d in again.decisions] == [
        d.instance.config for d in first.decisions]
    assert _reasons(again) == UP_TO_DATE


# --- references -------------------------------------------------------------------------


def test_dangling_reference_names_the_cell_and_suggests(root: Path) -> None:
    tables = _pipeline()
    tables[1] = _table("model", [{"instance": "x", "input": "runs/prep/nort/out.csv"}])
    with pytest.raises(PlanError, match=r"model\.csv, row 2, column 2 \(input\): "
                                        r"runs/prep/nort/out\.csv points into instance "
                                        r"prep/nort.*did you mean prep/north"):
        build_instances(tables, root, root / "runs")


def test_reference_differing_only_in_case(root: Path) -> None:
    tables = _pipeline()
    tables[1] = _table("model", [{"instance": "x", "input": "runs/prep/North/out.csv"}])
    with pytest.raises(PlanError, match=r"did you mean prep/north\? .*case-sensitive"):
        build_instances(tables, root, root / "runs")


def test_reference_to_an_existing_folder_no_table_defines(root: Path) -> None:
    (root / "runs" / "old" / "kept").mkdir(parents=True)
    table = _table("model", [{"instance": "x", "input": "runs/old/kept/out.csv"}])
    [inst] = build_instances([table], root, root / "runs")
    assert inst.depends_on == () and inst.config["input"] == "../../old/kept/out.csv"
    with pytest.raises(PlanError, match="old/Kept.*did you mean old/kept\\? .*case-sensitive"):
        table = _table("model", [{"instance": "x", "input": "runs/old/Kept/out.csv"}])
        build_instances([table], root, root / "runs")


def test_dangling_reference_in_a_base_config_names_the_file(root: Path) -> None:
    _write(root / "config" / "flows" / "model.json", json.dumps({"src": "runs/gone/x/a.csv"}))
    with pytest.raises(PlanError, match=r"^config/flows/model\.json, column src: "):
        build_instances([_table("model", [{"instance": "x"}])], root, root / "runs")


def test_self_reference_is_not_a_dependency(root: Path) -> None:
    table = _table("prep", [{"instance": "x", "out": "{runs}/{stage}/{instance}/out.csv"}])
    [inst] = build_instances([table], root, root / "runs")
    assert inst.depends_on == () and inst.references == ("prep/x/out.csv",)
    assert inst.config["out"] == "../../prep/x/out.csv"


def test_cycle_is_reported_with_its_path(root: Path) -> None:
    tables = [_table("a", [{"instance": "x", "flow": "flows/prep.py", "in": "runs/b/y/o"}]),
              _table("b", [{"instance": "y", "flow": "flows/prep.py", "in": "runs/c/z/o"}]),
              _table("c", [{"instance": "z", "flow": "flows/prep.py", "in": "runs/a/x/o"},
                           {"instance": "free", "flow": "flows/prep.py"}])]
    with pytest.raises(PlanError, match=r"dependency cycle: a/x -> b/y -> c/z -> a/x"):
        build_instances(tables, root, root / "runs")


def test_instance_folder_resolving_outside_the_runs_dir(root: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (root / "runs" / "prep").mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere", root / "runs" / "prep" / "x")
    with pytest.raises(PlanError, match="resolves outside the runs folder"):
        build_instances([_table("prep", [{"instance": "x"}])], root, root / "runs")


# --- skip and rerun -----------------------------------------------------------------------


def test_new_then_up_to_date(root: Path) -> None:
    first = _ran(root)
    assert set(_reasons(first).values()) == {"new"}
    again = plan(_pipeline(), project_root=root)
    assert _reasons(again) == UP_TO_DATE
    assert again.counts == {"instances": 5, "stages": 3, "run": 0, "skip": 5}
    first = again.decisions[0]
    assert (first.instance.key, first.run, first.reason) == ("prep/north", False, "up to date")


def test_a_plan_keeps_the_last_runs_it_read(root: Path) -> None:
    assert plan(_pipeline(), project_root=root).last_runs == {}
    _ran(root)
    again = plan(_pipeline(), project_root=root)
    assert set(again.last_runs) == set(UP_TO_DATE)
    last = again.last_runs["model/east"]
    record = records.read_record(root / "runs/model/east")
    assert (last.run_id, last.status, last.duration_s, last.started_at, last.ended_at) == (
        record["run_id"], "success", 0.1, record["started_at"], record["ended_at"])


def test_config_change_propagates_through_three_stages(root: Path) -> None:
    _ran(root)
    again = plan(_pipeline(north={"growth": 0.03}), project_root=root)
    assert _reasons(again) == {
        **UP_TO_DATE,
        "prep/north": "config changed: growth 0.02 -> 0.03",
        "model/north": "upstream ran: prep/north",
        "report/all": "upstream ran: model/north",
    }
    assert [d.instance.key for d in again.to_run] == ["prep/north", "model/north", "report/all"]


def test_config_change_lists_every_key(root: Path) -> None:
    _ran(root)
    changes = {"growth": None, "label": "", "nested.deep": 1, "zones": "x" * 60, "flag": True,
               "num": "0.5"}
    again = plan(_pipeline(north=changes), project_root=root)
    assert _reasons(again)["prep/north"] == (
        "config changed: flag (unset) -> true, growth 0.02 -> (unset), label (unset) -> \"\", "
        "nested.deep (unset) -> 1, num (unset) -> \"0.5\", … (+1 more)")
    _finish(again)
    shorter = plan(_pipeline(north={**changes, "zones": "y" * 60, "nested.deep": 2}),
                   project_root=root)
    assert _reasons(shorter)["prep/north"] == (
        f"config changed: nested.deep 1 -> 2, zones {'x' * 39}… -> {'y' * 39}…")


def test_integral_floats_and_key_order_are_no_change(root: Path) -> None:
    _ran(root, _pipeline(north={"year": 2030, "a": 1, "b": 2}))
    reordered = _pipeline(north={"b": 2.0, "year": 2030.0, "a": 1})
    assert _reasons(plan(reordered, project_root=root)) == UP_TO_DATE
    flipped = plan(_pipeline(north={"year": 2030, "a": True, "b": 2}), project_root=root)
    assert _reasons(flipped)["prep/north"] == "config changed: a 1 -> true"


def test_code_change_of_a_flow(root: Path) -> None:
    _ran(root)
    (root / "flows" / "model.py").write_text("print('v2')\n", encoding="utf-8")
    again = plan(_pipeline(), project_root=root)
    assert _reasons(again) == {
        **UP_TO_DATE,
        "model/north": "code changed: flows/model.py",
        "model/east": "code changed: flows/model.py",
        "report/all": "upstream ran: model/north, model/east",
    }


def test_code_change_of_a_flow_a_build_ran(root: Path) -> None:
    _write(root / "builds" / "all.py")
    _write(root / "flows" / "step.py")
    table = [_table("all", [{"instance": "x"}])]
    first = plan(table, project_root=root)
    _finish(first)
    folder = first.runs_dir / "all" / "x"
    record = records.read_record(folder)
    record["code"].update(fingerprints.code_fingerprint(root, ["flows/step.py"]))
    records.write_record(folder, record)
    assert _reasons(plan(table, project_root=root)) == {"all/x": "up to date"}
    (root / "flows" / "step.py").write_text("changed\n", encoding="utf-8")
    assert _reasons(plan(table, project_root=root)) == {"all/x": "code changed: flows/step.py"}
    (root / "builds" / "all.py").unlink()
    (root / "flows" / "step.py").unlink()
    _write(root / "flows" / "all.py")
    assert _reasons(plan(table, project_root=root)) == {
        "all/x": "code changed: flows/all.py, builds/all.py, flows/step.py"}


def test_touching_an_input_reruns_nothing_but_a_content_change_does(root: Path) -> None:
    _ran(root)
    zones = root / "data" / "zones.csv"
    info = zones.stat()
    os.utime(zones, ns=(info.st_atime_ns, info.st_mtime_ns + 5_000_000_000))
    assert _reasons(plan(_pipeline(), project_root=root)) == UP_TO_DATE
    zones.write_text("zone\n2\n", encoding="utf-8")  # same size, new content
    again = plan(_pipeline(), project_root=root)
    assert _reasons(again)["prep/north"] == "input changed: data/zones.csv"
    assert _reasons(again)["report/all"] == "upstream ran: model/north, model/east"
    zones.unlink()
    _write(zones)
    assert _reasons(plan(_pipeline(), project_root=root))["prep/east"] == (
        "input changed: data/zones.csv")


def test_missing_output_reruns_producer_then_consumers(root: Path) -> None:
    first = _ran(root)
    (first.runs_dir / "prep" / "north" / "out.csv").unlink()
    again = plan(_pipeline(), project_root=root)
    assert _reasons(again) == {
        **UP_TO_DATE,
        "prep/north": "missing output: runs/prep/north/out.csv",
        "model/north": "upstream ran: prep/north",
        "report/all": "upstream ran: model/north",
    }


def test_last_run_failed_and_incomplete(root: Path) -> None:
    first = plan(_pipeline(), project_root=root)
    _finish(first, only={"prep/north", "prep/east", "model/east", "report/all"})
    _finish(first, status="error", only={"model/north"})
    records.write_started(first.runs_dir / "prep" / "east", {})
    again = plan(_pipeline(north={"growth": 0.05}), project_root=root)
    assert _reasons(again) == {
        "prep/north": "config changed: growth 0.02 -> 0.05",
        "prep/east": "last run incomplete",
        "model/north": "last run failed; upstream ran: prep/north",
        "model/east": "upstream ran: prep/east",
        "report/all": "upstream ran: model/north, model/east",
    }


def test_corrupt_record_reads_as_incomplete(root: Path) -> None:
    first = _ran(root)
    (first.runs_dir / "report" / "all" / RECORD).write_text("{", encoding="utf-8")
    assert _reasons(plan(_pipeline(), project_root=root))["report/all"] == "last run incomplete"


def test_upstream_that_ran_since_the_last_run(root: Path) -> None:
    _ran(root)
    selected = plan(_pipeline(), project_root=root, select=["prep/north"], force=True)
    assert _reasons(selected) == {"prep/north": "forced"}
    _finish(selected)
    again = plan(_pipeline(), project_root=root)
    assert _reasons(again) == {**UP_TO_DATE, "model/north": "upstream ran: prep/north",
                               "report/all": "upstream ran: model/north"}


def test_force_reruns_everything_with_all_reasons(root: Path) -> None:
    _ran(root)
    again = plan(_pipeline(east={"growth": 0.04}), project_root=root, force=True)
    reasons = _reasons(again)
    assert set(reasons) == set(UP_TO_DATE) and all(r.startswith("forced") for r in reasons.values())
    assert reasons["prep/east"] == "forced; config changed: growth 0.03 -> 0.04"
    assert reasons["model/east"] == "forced; upstream ran: prep/east"


# --- select -------------------------------------------------------------------------------


def test_select_decides_targets_and_the_upstream_they_need(root: Path) -> None:
    _ran(root)
    tables = _pipeline(north={"growth": 0.09})
    selected = plan(tables, project_root=root, select=["model/east", "model/n*"])
    assert _reasons(selected) == {
        "prep/north": "config changed: growth 0.02 -> 0.09",
        "prep/east": "up to date",
        "model/north": "upstream ran: prep/north",
        "model/east": "up to date",
    }
    by_stage = plan(tables, project_root=root, select=["report"], force=True)
    assert _reasons(by_stage) == {
        "prep/north": "config changed: growth 0.02 -> 0.09", "prep/east": "up to date",
        "model/north": "upstream ran: prep/north", "model/east": "up to date",
        "report/all": "forced; upstream ran: model/north",
    }
    assert list(_reasons(plan(tables, project_root=root, select=["*/east"]))) == [
        "prep/east", "model/east"]
    assert list(_reasons(plan(tables, project_root=root, select=["prep/"]))) == [
        "prep/north", "prep/east"]


def test_select_matching_nothing_is_a_usage_error(root: Path) -> None:
    with pytest.raises(UsageError, match=r"'modl/\*' matches no instance.*did you mean model"):
        plan(_pipeline(), project_root=root, select=["modl/*"])
    with pytest.raises(UsageError, match="matches no instance"):
        plan(_pipeline(), project_root=root, select=["Model/north"])


# --- the public entry ------------------------------------------------------------------------


def test_plan_resolves_folders_and_keeps_table_order(root: Path, monkeypatch) -> None:
    monkeypatch.chdir(root)
    p = plan(_pipeline(), runs_dir="elsewhere")
    assert p.project_root == root.resolve() and p.runs_dir == (root / "elsewhere").resolve()
    assert p.stages == ("prep", "model", "report")
    assert [i.key for i in p.instances] == list(UP_TO_DATE)


def test_importing_the_planner_does_not_import_heavy_libraries() -> None:
    code = ("import sys, ductaflow.planning.planner; "
            "heavy = {'pandas', 'papermill', 'nbconvert', 'rich', "
            "'dask', 'openpyxl'} & set(sys.modules); print(sorted(heavy))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_plan_reads_table_files(root: Path) -> None:
    _write(root / "scenarios" / "prep.csv",
           "instance,region,growth,#note\n{region},north,0.02,x\n{region},east,,\n")
    p = plan(root / "scenarios" / "prep.csv", project_root=root)
    assert [(d.instance.key, d.instance.config) for d in p.decisions] == [
        ("prep/north", {"region": "north", "growth": 0.02}), ("prep/east", {"region": "east"})]


def test_decide_is_what_plan_decides(root: Path) -> None:
    _ran(root)
    tables = _pipeline(east={"growth": 0.5})
    instances = build_instances(tables, root, root / "runs")
    decisions = decide(instances, root, root / "runs", select=["model/east"])
    assert tuple(decisions) == plan(tables, project_root=root, select=["model/east"]).decisions
    assert [d.reason for d in decisions] == ["config changed: growth 0.03 -> 0.5",
                                             "upstream ran: prep/east"]


def test_base_config_sits_in_a_config_folder_beside_the_flows_folder() -> None:
    from ductaflow.planning.instances import base_config_path

    assert base_config_path("flows/x.py") == "config/flows/x.json"
    assert base_config_path("builds/y.py") == "config/builds/y.json"
    assert base_config_path("examples/flows/prep.py") == "examples/config/flows/prep.json"
    assert base_config_path("x.ipynb") == "config/x.json"


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(
    [0.0, 1.0, -2.0, 0.5, 1e20, float("inf"), float("nan")]), st.sampled_from(["", "a", "1"]))
_CONFIGS = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "_c", "d.e"]), inner, max_size=3)),
    max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(_CONFIGS, _CONFIGS, st.booleans())
def test_configs_compare_as_their_canonical_form(now: Any, other: Any, saved_is_now: bool):
    from ductaflow.planning.reasons import same, same_canonical

    saved = json.loads(json.dumps(records.canonical(now if saved_is_now else other)))
    assert same_canonical(now, saved) == same(records.canonical(now), saved)
