"""The plan cache: a no-op rerun reuses the last all-up-to-date plan only while every
file that plan read is unchanged; any change, and anything fresh, means planning again.

No flow runs here: ``_finish`` writes the records the engine would write. Every file is
then aged by a minute, as if the project had been left alone, so it has settled.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ductaflow.planning import plan_cache
from ductaflow.planning.planner import Plan, planned
from ductaflow.run_folder.files import PLAN_CACHE, PLAN_DETAIL
from ductaflow.schedule import skipped_result

from .test_plan import _finish, _write

TABLES = ["scenarios/prep.csv", "scenarios/model.csv"]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """prep/{north,east} (read data/zones.csv) -> model/{north,east}, all up to date."""
    root = tmp_path / "project"
    _write(root / "flows/prep.py")
    _write(root / "flows/model.py")
    _write(root / "config/flows/model.json", '{"steps": 3}\n')
    _write(root / "data/zones.csv", "zone\n1\n")
    _write(root / "scenarios/prep.csv", "instance,growth,zones\nnorth,0.5,data/zones.csv\n"
                                        "east,1,data/zones.csv\n")
    _write(root / "scenarios/model.csv", "instance,source\nnorth,runs/prep/north/out.csv\n"
                                         "east,runs/prep/east/out.csv\n")
    monkeypatch.chdir(root)
    # ductaflow's own planning modules are signed too; a stand-in keeps the tests
    # independent of when the package's files were last edited.
    _write(root / "planning_code.py", "# stand-in\n")
    monkeypatch.setattr(plan_cache, "code_files", lambda: (str(root / "planning_code.py"),))
    _finish(fresh(root)[0])
    age(root)
    return root


def fresh(root: Path):
    return planned(TABLES, project_root=root)


def key(root: Path):
    return plan_cache.cache_key(TABLES, root, None, None, None)


def age(root: Path, seconds: float = 60) -> None:
    """Set every file and folder back in time (newest first is not needed: mtimes of
    folders are set after their contents)."""
    when = time.time() - seconds
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            os.utime(os.path.join(folder, name), (when, when))
        os.utime(folder, (when, when))


def cached(root: Path):
    the_plan, read = fresh(root)
    assert not the_plan.to_run
    assert plan_cache.save(key(root), the_plan, read)
    return the_plan


def test_a_no_op_plan_is_cached_and_comes_back_equal(root: Path) -> None:
    the_plan = cached(root)
    again = plan_cache.load(key(root)).plan
    assert again == the_plan
    assert [d.instance.row for d in again.decisions] == [d.instance.row for d in
                                                          the_plan.decisions]


def _rewrite(path: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / path).write_text(text, encoding="utf-8")


CHANGES = {
    "a table cell": _rewrite("scenarios/prep.csv", "instance,growth,zones\n"
                                                   "north,0.7,data/zones.csv\n"
                                                   "east,1,data/zones.csv\n"),
    "a flow's code": _rewrite("flows/model.py", "print('changed')\n"),
    "a base config": _rewrite("config/flows/model.json", '{"steps": 4}\n'),
    "a new base config": _rewrite("config/flows/prep.json", '{"x": 1}\n'),
    "an input file": _rewrite("data/zones.csv", "zone\n2\n"),
    "an input merely touched": lambda root: os.utime(root / "data/zones.csv"),
    "a record rewritten": lambda root: os.replace(
        root / "runs/prep/east/.ductaflow/record.json",
        _copy(root / "runs/prep/east/.ductaflow/record.json")),
    "an output deleted": lambda root: (root / "runs/prep/north/out.csv").unlink(),
    "a new folder in a stage": lambda root: (root / "runs/prep/west").mkdir(),
    "the table's stage folder replaced": lambda root: os.rename(
        root / "runs/model", root / "runs/model-old"),
}


def _copy(path: Path) -> Path:
    copy = path.with_name("copy.json")
    copy.write_bytes(path.read_bytes())
    return copy


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_change_to_what_the_plan_read_means_planning_again(root: Path, change: str) -> None:
    cached(root)
    CHANGES[change](root)
    assert plan_cache.load(key(root)) is None


def test_a_change_to_the_planning_code_means_planning_again(root: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    stand_in = root / "plan.py"
    _write(stand_in, "# ductaflow's planner\n")
    age(root)
    monkeypatch.setattr(plan_cache, "code_files", lambda: (str(stand_in),))
    cached(root)
    assert plan_cache.load(key(root)) is not None
    stand_in.write_text("# ductaflow's planner, upgraded\n", encoding="utf-8")
    assert plan_cache.load(key(root)) is None


_PLAN_AND_CACHE = """
import sys
from ductaflow.planning import plan_cache
from ductaflow.planning.planner import planned
tables, root = sys.argv[2:4], sys.argv[4]
key = plan_cache.cache_key(tables, root, None, None, None)
if sys.argv[1] == "save":
    the_plan, read = planned(tables, project_root=root)
    print(plan_cache.save(key, the_plan, read))
else:
    print(plan_cache.load(key) is not None)
"""


def test_an_edit_of_ductaflows_own_planning_code_means_planning_again(
        root: Path, tmp_path: Path) -> None:
    """No stand-in: a copy of the real package, whose planning module is then edited
    as an upgrade would edit it. The signed files come from the modules loaded, so
    this holds wherever the planning code lives."""
    import ductaflow
    from ductaflow.planning.planner import planned as real_planned

    site = tmp_path / "site"
    shutil.copytree(Path(ductaflow.__file__).parent, site / "ductaflow",
                    ignore=shutil.ignore_patterns("__pycache__"))
    age(site)
    module = sys.modules[real_planned.__module__]
    planning = site / Path(module.__file__).relative_to(Path(ductaflow.__file__).parents[1])

    def run(command: str) -> str:
        done = subprocess.run([sys.executable, "-c", _PLAN_AND_CACHE, command, *TABLES,
                               str(root)], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(site)}, cwd=root)
        return done.stdout.strip()

    assert run("save") == "True"
    assert run("load") == "True"
    with planning.open("a", encoding="utf-8") as code:
        code.write("\n# upgraded\n")
    age(site)  # an old file that changed: its size moved
    assert run("load") == "False"


def test_another_table_list_or_selection_does_not_use_the_cache(root: Path) -> None:
    cached(root)
    assert plan_cache.load(plan_cache.cache_key(TABLES[:1], root, None, None, None)) is None
    assert plan_cache.load(plan_cache.cache_key(TABLES, root, None, None, ["prep/*"])) is None
    assert plan_cache.load(plan_cache.cache_key(TABLES, root, None, "prep", None)) is None


def test_files_changed_moments_ago_are_not_trusted(root: Path) -> None:
    """A write in the same timestamp tick as the plan could go unseen: nothing is
    cached until every file the plan read is older than SETTLE_S."""
    (root / "flows/model.py").write_text("print('hi')\n", encoding="utf-8")  # same text
    the_plan, read = fresh(root)
    assert not the_plan.to_run
    assert not plan_cache.save(key(root), the_plan, read)
    assert plan_cache.load(key(root)) is None


def test_a_plan_that_runs_something_is_never_cached(root: Path) -> None:
    (root / "flows/prep.py").write_text("print('new code')\n", encoding="utf-8")
    age(root)
    the_plan, read = fresh(root)
    assert the_plan.to_run
    assert not plan_cache.save(key(root), the_plan, read)


def test_a_damaged_cache_is_ignored(root: Path) -> None:
    cached(root)
    path = root / "runs" / PLAN_CACHE
    data = path.read_bytes()
    for cut in range(0, len(data), max(1, len(data) // 40)):
        path.write_bytes(data[:cut])
        assert plan_cache.load(key(root)) is None
    path.write_bytes(b'{"key": 1, "files": [], "plan": null}')
    assert plan_cache.load(key(root)) is None
    path.write_bytes(data.replace(b'"inside_sigs":[', b'"inside_sigs":[7,'))
    assert plan_cache.load(key(root)) is None
    path.write_bytes(data.replace(b'"name":[', b'"name":[7,'))
    assert plan_cache.load(key(root)).skipped_results() is None  # the schedule makes them


def test_an_old_format_cache_is_ignored(root: Path) -> None:
    """The cache of an earlier ductaflow (one file, the whole plan in it) is not read:
    the plan is made again, and the next no-op saves the current format."""
    the_plan = cached(root)
    path = root / "runs" / PLAN_CACHE
    old = {"key": {**key(root), "format": 2}, "files": {"outside": [], "inside": []},
           "outputs": [], "plan": plan_cache._encode(the_plan)}
    path.write_text(json.dumps(old), encoding="utf-8")
    assert plan_cache.load(key(root)) is None
    assert plan_cache.load({**key(root), "format": 2}) is None


def _detail_of_another_save(root: Path) -> None:
    check = (root / "runs" / PLAN_CACHE).read_bytes()
    cached(root)  # a new token in both files
    (root / "runs" / PLAN_CACHE).write_bytes(check)


DETAIL_DAMAGE = {
    "deleted": lambda root: (root / "runs" / PLAN_DETAIL).unlink(),
    "cut short": lambda root: (root / "runs" / PLAN_DETAIL).write_bytes(
        (root / "runs" / PLAN_DETAIL).read_bytes()[:200]),
    "garbage in it": lambda root: (root / "runs" / PLAN_DETAIL).write_bytes(
        (root / "runs" / PLAN_DETAIL).read_bytes().replace(b'"decisions":[',
                                                           b'"decisions":[7,')),
    "of another save": _detail_of_another_save,
}


@pytest.mark.parametrize("damage", list(DETAIL_DAMAGE))
def test_a_cached_plan_reads_its_decisions_only_when_asked_and_replans_without_them(
        root: Path, damage: str) -> None:
    """The check file alone answers a no-op: the headline, the warnings, every skipped
    result. The decisions come from the detail file; when that is gone, damaged or
    from another save, the plan is made again, equal to the cached one."""
    the_plan = cached(root)
    DETAIL_DAMAGE[damage](root)
    hit = plan_cache.load(key(root), TABLES)
    assert hit is not None
    assert "decisions" not in vars(hit.plan)
    assert hit.plan.counts == the_plan.counts and hit.plan.stages == the_plan.stages
    assert hit.plan.warnings == the_plan.warnings and not hit.plan.to_run
    assert hit.skipped_results() == [skipped_result(d, the_plan) for d in the_plan.decisions]
    assert "decisions" not in vars(hit.plan)
    assert hit.plan == the_plan and hit.plan.decisions == the_plan.decisions
    assert hit.plan.last_runs == the_plan.last_runs
    assert type(pickle.loads(pickle.dumps(hit.plan))) is Plan


def test_dataframe_tables_are_never_cached(root: Path) -> None:
    pandas = pytest.importorskip("pandas")
    assert plan_cache.cache_key(pandas.DataFrame({"instance": ["a"]}), root, None, "x",
                               None) is None
