"""Nothing stale survives: a seeded random walk of edits, each followed by a conduct,
checked against an oracle.

The project has three stages of tiny script flows (``tests/data/fault_node.py``):
``prep`` (may read ``data/base.txt``), ``model`` (reads some preps), ``summary`` (reads
some models). Each step makes one random edit — change a value (also to the same number
written differently), add, disable or re-enable a row, rewire a row's inputs, edit a
flow, delete an output some row reads, make an instance fail or succeed again, change
or merely touch the input file, or nothing — then checks that:

- the planner's "to run" set is the oracle's stale set, before the conduct;
- exactly those ran (each once), failed or were blocked, and the rest were skipped;
- every up-to-date instance's ``out.txt`` is what its current config, code, input file
  and upstream outputs make (the flow's output is a pure function of them).

``DF_WALK_STEPS`` and ``DF_WALK_SEED`` run a longer or another walk locally.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ductaflow.conductor import conduct
from ductaflow.model import Action
from ductaflow.planning import plan_cache
from ductaflow.planning.planner import plan

DATA = Path(__file__).parent / "data"
STEPS = int(os.environ.get("DF_WALK_STEPS", "200"))
SEED = int(os.environ.get("DF_WALK_SEED", "20261126"))
STAGES = ("prep", "model", "summary")
UPSTREAM = {"prep": None, "model": "prep", "summary": "model"}
COLUMNS = ("instance", "tag", "value", "fail", "base", "inputs", "enabled")
MAX_ENABLED = 9  # rows enabled at once: every step stays a few tiny flows


@dataclass
class Node:
    """One row of a table, and what its instance last ran with (the oracle's memory)."""

    stage: str
    name: str
    value: float
    fail: bool = False
    enabled: bool = True
    base: bool = False
    inputs: list[str] = field(default_factory=list)
    run_id: int = 0  # 0: never ran
    failed: bool = False
    ran_config: tuple | None = None
    ran_version: int | None = None
    ran_base: int | None = None
    ran_deps: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.name}"

    def config(self) -> tuple:
        return (number(self.value), self.fail, self.base, tuple(self.inputs))


def number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


class World:
    """The project on disk and the oracle's model of it."""

    def __init__(self, root: Path, rng: random.Random):
        self.root = root
        self.rng = rng
        self.nodes: dict[str, Node] = {}
        self.version = dict.fromkeys(STAGES, 0)
        self.base_version = 0
        self.counter = Counter()
        self.deleted: set[str] = set()  # outputs removed since their producer last ran
        for folder in ("flows", "scenarios", "data"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for stage in STAGES:
            shutil.copy(DATA / "fault_node.py", root / "flows" / f"{stage}.py")
        self.write_base()
        for _ in range(3):
            self.add("prep")
        for _ in range(2):
            self.add("model")
        self.add("summary")

    # --- the project on disk -----------------------------------------------------

    def write_base(self) -> None:
        (self.root / "data/base.txt").write_text(f"base{self.base_version}\n", encoding="utf-8")

    def write_tables(self) -> None:
        for stage in STAGES:
            lines = [",".join(COLUMNS)]
            for node in self.nodes.values():
                if node.stage == stage:
                    lines.append(",".join(self.cells(node)))
            (self.root / "scenarios" / f"{stage}.csv").write_text("\n".join(lines) + "\n",
                                                                   encoding="utf-8")

    def cells(self, node: Node) -> list[str]:
        value = number(node.value)
        shown = f"{value}.0" if isinstance(value, int) and self.rng.random() < 0.3 else \
            str(value)
        inputs = json.dumps([f"runs/{key}/out.txt" for key in node.inputs])
        return [node.name, "{stage}/{instance}", shown, "TRUE" if node.fail else "",
                "data/base.txt" if node.base else "",
                '"' + inputs.replace('"', '""') + '"', "" if node.enabled else "FALSE"]

    def tables(self) -> list[str]:
        return [str(self.root / "scenarios" / f"{stage}.csv") for stage in STAGES]

    # --- edits -------------------------------------------------------------------------

    def enabled(self, stage: str | None = None) -> list[Node]:
        return [n for n in self.nodes.values() if n.enabled and stage in (None, n.stage)]

    def pick_inputs(self, stage: str) -> list[str]:
        source = UPSTREAM[stage]
        if source is None:
            return []
        pool = [n.key for n in self.enabled(source)]
        return sorted(self.rng.sample(pool, self.rng.randint(min(1, len(pool)), len(pool))))

    def add(self, stage: str) -> str:
        self.counter[stage] += 1
        name = f"{stage[0].upper()}{self.counter[stage]}"
        node = Node(stage, name, value=self.rng.choice([1, 2, 2.5, 3]),
                    base=stage == "prep" and self.rng.random() < 0.5,
                    inputs=self.pick_inputs(stage))
        self.nodes[node.key] = node
        return f"add {node.key}"

    def consumers(self, key: str) -> list[Node]:
        return [n for n in self.enabled() if key in n.inputs]

    def edit(self) -> str:
        kinds = ["value", "value", "fail", "fail", "add", "disable", "enable", "inputs",
                 "flow", "delete", "base", "touch", "toggle-base", "nothing"]
        kind = self.rng.choice(kinds)
        nodes = list(self.nodes.values())
        if kind == "value":
            node = self.rng.choice(nodes)
            node.value = self.rng.choice([node.value, 1, 2, 2.5, 3, 4])
            return f"value {node.key} = {node.value}"
        if kind == "fail":
            failing = [n for n in self.enabled() if n.fail]
            node = self.rng.choice(failing if failing and self.rng.random() < 0.6
                                   else self.enabled())
            node.fail = not node.fail
            return f"fail {node.key} = {node.fail}"
        if kind == "add" and len(self.enabled()) < MAX_ENABLED:
            return self.add(self.rng.choice(["prep", "model", "model", "summary"]))
        if kind == "disable" and len(self.enabled()) > 2:
            node = self.rng.choice(self.enabled())
            node.enabled = False
            for consumer in self.nodes.values():
                if node.key in consumer.inputs:
                    consumer.inputs.remove(node.key)
            return f"disable {node.key}"
        if kind == "enable" and len(self.enabled()) < len(nodes):
            node = self.rng.choice([n for n in nodes if not n.enabled])
            node.enabled = True
            node.inputs = [k for k in node.inputs if self.nodes[k].enabled]
            return f"enable {node.key}"
        if kind == "inputs":
            node = self.rng.choice([n for n in self.enabled() if n.stage != "prep"] or nodes)
            node.inputs = self.pick_inputs(node.stage)
            return f"inputs {node.key} = {node.inputs}"
        if kind == "flow":
            stage = self.rng.choice(STAGES)
            self.version[stage] += 1
            flow = self.root / "flows" / f"{stage}.py"
            text = re.sub(r"VERSION = \d+", f"VERSION = {self.version[stage]}",
                          flow.read_text(encoding="utf-8"))
            flow.write_text(text, encoding="utf-8")
            return f"flow {stage} v{self.version[stage]}"
        if kind == "delete":
            read = sorted({k for n in self.enabled() for k in n.inputs
                           if (self.root / "runs" / k / "out.txt").exists()})
            if read:
                key = self.rng.choice(read)
                (self.root / "runs" / key / "out.txt").unlink()
                self.deleted.add(key)
                return f"delete runs/{key}/out.txt"
        if kind == "base":
            self.base_version += 1
            self.write_base()
            return f"base v{self.base_version}"
        if kind == "touch":
            later = time.time() + self.rng.randint(1, 100)
            os.utime(self.root / "data/base.txt", (later, later))
            return "touch data/base.txt"
        if kind == "toggle-base":
            node = self.rng.choice([n for n in nodes if n.stage == "prep"])
            node.base = not node.base
            return f"base {node.key} = {node.base}"
        return "nothing"

    # --- the oracle -------------------------------------------------------------------

    def order(self) -> list[Node]:
        return [n for stage in STAGES for n in self.nodes.values()
                if n.stage == stage and n.enabled]

    def stale(self, node: Node, running: set[str]) -> bool:
        if node.run_id == 0 or node.failed:
            return True
        if node.config() != node.ran_config or self.version[node.stage] != node.ran_version:
            return True
        if node.base and self.base_version != node.ran_base:
            return True
        if node.key in self.deleted and self.consumers(node.key):
            return True
        return any(dep in running or self.nodes[dep].run_id != node.ran_deps.get(dep)
                   for dep in node.inputs)

    def predict(self) -> tuple[set[str], set[str], set[str]]:
        """(will run, will fail, blocked) in the next conduct."""
        ran: set[str] = set()
        failed: set[str] = set()
        blocked: set[str] = set()
        for node in self.order():
            if not self.stale(node, ran | blocked):
                continue
            if any(dep in failed or dep in blocked for dep in node.inputs):
                blocked.add(node.key)
                continue
            ran.add(node.key)
            if node.fail:
                failed.add(node.key)
        return ran, failed, blocked

    def remember(self, ran: set[str], failed: set[str]) -> None:
        for node in self.order():
            if node.key not in ran:
                continue
            node.run_id = max(n.run_id for n in self.nodes.values()) + 1
            node.failed = node.key in failed
            node.ran_config = node.config()
            node.ran_version = self.version[node.stage]
            node.ran_base = self.base_version
            node.ran_deps = {dep: self.nodes[dep].run_id for dep in node.inputs}
            if not node.failed:
                self.deleted.discard(node.key)

    def expected_output(self, node: Node) -> str:
        base = f"base{self.base_version}" if node.base else ""
        parts = ";".join(self.expected_output(self.nodes[dep]) for dep in node.inputs)
        return (f"{node.key}={json.dumps(number(node.value))}@v{self.version[node.stage]}"
                f"+{base}[{parts}]")


@pytest.fixture
def fast_folder(tmp_path):
    """A folder in RAM where there is one: the walk is about decisions, not durability,
    and each conduct fsyncs a few dozen times (5 ms each on a CI disk)."""
    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="df-walk-", dir="/dev/shm"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_random_walk_of_edits_never_leaves_anything_stale(fast_folder, monkeypatch):
    """Also walks the plan cache: trusted at once here (steps are far apart compared
    to a timestamp tick), it serves every conduct that follows a no-op."""
    monkeypatch.setattr(plan_cache, "SETTLE_S", 0.0)
    hits = []
    load = plan_cache.load
    monkeypatch.setattr(plan_cache, "load", lambda key: hits.append(load(key)) or hits[-1])
    rng = random.Random(SEED)
    root = fast_folder / "project"
    world = World(root, rng)
    log = root / "ran.log"
    monkeypatch.setenv("DF_RUN_LOG", str(log))
    history: list[str] = []
    reruns = 0
    for step in range(STEPS):
        history.append(world.edit() if step else "start")
        world.write_tables()
        where = f"step {step}, after: {' | '.join(history[-6:])}"
        ran, failed, blocked = world.predict()
        planned = plan(world.tables(), project_root=root)
        assert {d.instance.key for d in planned.to_run} == ran | blocked, where

        log.unlink(missing_ok=True)
        results = conduct(world.tables(), project_root=root, mode="script", jobs=2,
                          warm=False)
        runs = Counter(log.read_text(encoding="utf-8").split()) if log.exists() else Counter()
        assert all(count == 1 for count in runs.values()), (where, runs)
        assert set(runs) == ran, (where, sorted(runs), sorted(ran))
        actions = {r.key: r.action for r in results}
        expected = {node.key: Action.FAILED if node.key in failed else Action.RAN
                    if node.key in ran else Action.BLOCKED if node.key in blocked
                    else Action.SKIPPED for node in world.order()}
        assert actions == expected, where
        world.remember(ran, failed)
        if not (ran or failed or blocked):  # a no-op, so the next one reads the cache
            hits.clear()
            again = conduct(world.tables(), project_root=root, mode="script", jobs=2,
                            warm=False)
            assert {r.action for r in again} == {Action.SKIPPED}, where
            if (root / "data/base.txt").stat().st_mtime <= time.time():  # a touch sets
                # it in the future: such a file is never trusted, so nothing is cached
                assert hits and hits[0] is not None, f"{where}: the cache was not used"
                reruns += 1

        still, _, waiting = world.predict()  # failed, blocked, and what reads from them
        for node in world.order():
            if node.key in still | waiting:
                continue
            out = root / "runs" / node.key / "out.txt"
            assert out.read_text(encoding="utf-8").strip() == world.expected_output(node), \
                (where, node.key)
    assert len(history) == STEPS
    assert reruns or STEPS < 100, "no step was a no-op: the cache was never walked"


def test_the_public_plan_is_the_function_after_conduct_was_imported():
    import subprocess
    import sys

    code = ("from ductaflow import conduct, plan\n"
            "assert callable(plan), plan\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
