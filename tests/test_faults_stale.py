"""Nothing stale survives: a seeded random walk of edits, each followed by a conduct,
checked against an oracle.

The project has three stages of tiny script flows (``tests/data/fault_node.py``):
``prep`` (may read ``data/base.txt``), ``model`` (reads some preps, and imports the
project module ``flows/walklib.py``), ``summary`` (reads some models). Each step makes
one random edit — change a value (also to the same number written differently), add,
disable or re-enable a row, rewire a row's inputs, edit a flow (its output changes) or
only a comment in it (its output does not: the consumers stop there), edit the
imported module, delete an output some row reads, edit one by hand, make an instance
fail or succeed again, change or merely touch the input file, or nothing — then checks
that:

- the planner's "to run" set is the oracle's, before the conduct;
- exactly those ran (each once), failed, were blocked or were cut off (their upstream
  ran and wrote the bytes they read last time), and the rest were skipped;
- every up-to-date instance's ``out.txt`` is what its current config, code, input file
  and upstream outputs on disk make (the flow's output is a pure function of them).

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
STEPS = int(os.environ.get("DF_WALK_STEPS", "70"))
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
    ran_code: int | None = None
    ran_base: int | None = None
    ran_module: int | None = None
    ran_reads: dict[str, str | None] = field(default_factory=dict)

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
        self.version = dict.fromkeys(STAGES, 0)  # in the output
        self.code = dict.fromkeys(STAGES, 0)  # any edit of the flow, comments too
        self.base_version = 0
        self.module_version = 0
        self.counter = Counter()
        self.deleted: set[str] = set()  # outputs removed since their producer last ran
        self.edited: set[str] = set()  # outputs edited by hand since their producer ran
        for folder in ("flows", "scenarios", "data"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for stage in STAGES:
            text = (DATA / "fault_node.py").read_text(encoding="utf-8")
            if stage == "model":
                text = text.replace("text = f\"{tag}=", "from walklib import MARK\n"
                                    "text = f\"{MARK}{tag}=")
            (root / "flows" / f"{stage}.py").write_text(text, encoding="utf-8")
        self.write_module()
        self.write_base()
        for _ in range(3):
            self.add("prep")
        for _ in range(2):
            self.add("model")
        self.add("summary")

    # --- the project on disk -----------------------------------------------------

    def write_module(self) -> None:
        (self.root / "flows/walklib.py").write_text(f'MARK = "m{self.module_version}:"\n',
                                                    encoding="utf-8")

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
                 "flow", "comment", "module", "delete", "hand-edit", "base", "touch",
                 "toggle-base", "nothing"]
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
        if kind in ("flow", "comment"):
            stage = self.rng.choice(STAGES)
            self.code[stage] += 1
            flow = self.root / "flows" / f"{stage}.py"
            text = flow.read_text(encoding="utf-8")
            if kind == "flow":
                self.version[stage] += 1
                text = re.sub(r"VERSION = \d+", f"VERSION = {self.version[stage]}", text)
            flow.write_text(f"{text}# edit {self.code[stage]}\n", encoding="utf-8")
            return f"{kind} {stage} v{self.version[stage]} c{self.code[stage]}"
        if kind == "module":
            self.module_version += 1
            self.write_module()
            return f"module m{self.module_version}"
        read = sorted({k for n in self.enabled() for k in n.inputs
                       if (self.root / "runs" / k / "out.txt").exists()})
        if kind == "delete" and read:
            key = self.rng.choice(read)
            (self.root / "runs" / key / "out.txt").unlink()
            self.deleted.add(key)
            return f"delete runs/{key}/out.txt"
        if kind == "hand-edit" and read:
            key = self.rng.choice(read)
            out = self.root / "runs" / key / "out.txt"
            out.write_text(out.read_text(encoding="utf-8").strip() + "!\n", encoding="utf-8")
            self.edited.add(key)
            return f"hand-edit runs/{key}/out.txt"
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

    def disk(self, key: str) -> str | None:
        """What a reader of ``key`` reads now: its ``out.txt``, as the flow strips it."""
        out = self.root / "runs" / key / "out.txt"
        return out.read_text(encoding="utf-8").strip() if out.exists() else None

    def own_reasons(self, node: Node) -> bool:
        """Stale whatever its upstream wrote: new, failed, config, code, input, module,
        or an output of it that someone reads is gone."""
        if node.run_id == 0 or node.failed:
            return True
        if node.config() != node.ran_config or self.code[node.stage] != node.ran_code:
            return True
        if node.base and self.base_version != node.ran_base:
            return True
        if node.stage == "model" and self.module_version != node.ran_module:
            return True
        return node.key in self.deleted and bool(self.consumers(node.key))

    def predict(self) -> Prediction:
        """What the next conduct plans, and what then runs, fails, is blocked or is cut
        off, following each output as its bytes: what a consumer reads decides."""
        done = Prediction()
        after: dict[str, str | None] = {}  # each output once the conduct is over
        for node in self.order():
            key = node.key
            after[key] = self.disk(key)
            own = self.own_reasons(node)
            changed = any(dep not in done.planned and self.disk(dep) != node.ran_reads.get(dep)
                          for dep in node.inputs)
            if not (own or changed or any(dep in done.planned for dep in node.inputs)):
                continue
            done.planned.add(key)
            if any(dep in done.failed or dep in done.blocked for dep in node.inputs):
                done.blocked.add(key)
            elif not (own or changed) and all(after[dep] == node.ran_reads.get(dep)
                                              for dep in node.inputs):
                done.cut.add(key)
            else:
                done.ran.add(key)
                if node.fail:
                    done.failed.add(key)
                else:
                    after[key] = self.output(node, [after[dep] for dep in node.inputs])
        return done

    def remember(self, done: Prediction) -> None:
        for node in self.order():
            if node.key in done.cut:
                node.ran_reads = {dep: self.disk(dep) for dep in node.inputs}
            if node.key not in done.ran:
                continue
            node.run_id = max(n.run_id for n in self.nodes.values()) + 1
            node.failed = node.key in done.failed
            node.ran_config = node.config()
            node.ran_code = self.code[node.stage]
            node.ran_base = self.base_version
            node.ran_module = self.module_version
            node.ran_reads = {dep: self.disk(dep) for dep in node.inputs}
            if not node.failed:
                self.deleted.discard(node.key)
                self.edited.discard(node.key)

    def output(self, node: Node, reads: list[str | None]) -> str:
        base = f"base{self.base_version}" if node.base else ""
        mark = f"m{self.module_version}:" if node.stage == "model" else ""
        return (f"{mark}{node.key}={json.dumps(number(node.value))}@v{self.version[node.stage]}"
                f"+{base}[{';'.join(str(r) for r in reads)}]")


@dataclass
class Prediction:
    """One conduct as the oracle sees it coming."""

    planned: set[str] = field(default_factory=set)  # the plan's "to run"
    ran: set[str] = field(default_factory=set)  # the flow ran (failed ones too)
    failed: set[str] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)
    cut: set[str] = field(default_factory=set)  # upstream ran, same bytes: skipped


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
    monkeypatch.setattr(plan_cache, "load", lambda *given: hits.append(load(*given)) or hits[-1])
    rng = random.Random(SEED)
    root = fast_folder / "project"
    world = World(root, rng)
    log = root / "ran.log"
    monkeypatch.setenv("DF_RUN_LOG", str(log))
    history: list[str] = []
    reruns = cutoffs = 0
    for step in range(STEPS):
        history.append(world.edit() if step else "start")
        world.write_tables()
        where = f"step {step}, after: {' | '.join(history[-6:])}"
        done = world.predict()
        planned = plan(world.tables(), project_root=root)
        assert {d.instance.key for d in planned.to_run} == done.planned, where

        log.unlink(missing_ok=True)
        results = conduct(world.tables(), project_root=root, mode="script", jobs=2,
                          warm=False)
        runs = Counter(log.read_text(encoding="utf-8").split()) if log.exists() else Counter()
        assert all(count == 1 for count in runs.values()), (where, runs)
        assert set(runs) == done.ran, (where, sorted(runs), sorted(done.ran))
        actions = {r.key: r.action for r in results}
        expected = {node.key: Action.FAILED if node.key in done.failed else Action.RAN
                    if node.key in done.ran else Action.BLOCKED if node.key in done.blocked
                    else Action.SKIPPED for node in world.order()}
        assert actions == expected, where
        cutoffs += len(done.cut)
        world.remember(done)
        if not done.planned:  # a no-op, so the next one reads the cache
            hits.clear()
            again = conduct(world.tables(), project_root=root, mode="script", jobs=2,
                            warm=False)
            assert {r.action for r in again} == {Action.SKIPPED}, where
            if (root / "data/base.txt").stat().st_mtime <= time.time():  # a touch sets
                # it in the future: such a file is never trusted, so nothing is cached
                assert hits and hits[0] is not None, f"{where}: the cache was not used"
                reruns += 1

        still = world.predict()  # failed, blocked, and what reads from them
        for node in world.order():
            if node.key in still.planned or node.key in world.edited:
                continue
            out = world.disk(node.key)
            assert out == world.output(node, [world.disk(d) for d in node.inputs]), \
                (where, node.key)
    assert len(history) == STEPS
    assert reruns or STEPS < 50, "no step was a no-op: the cache was never walked"
    assert cutoffs or STEPS < 50, "no early cutoff happened: the walk never tried one"


def test_the_public_plan_is_the_function_after_conduct_was_imported():
    import subprocess
    import sys

    code = ("from ductaflow import conduct, plan\n"
            "assert callable(plan), plan\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
