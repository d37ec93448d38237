"""ductaflow's benchmarks: one command, a table on the terminal, JSON on disk.

    python benchmarks/run.py [--quick] [--headline] [--repeat N] [--only GROUP ...]
                             [--out benchmarks/results.json]

Every figure is the median of ``--repeat`` runs (5; ``--quick``: 3, smaller sizes)
of a whole child process, timed from here: wall time, CPU time (user + system) and
peak resident memory (``os.wait4``). The variants of a comparison run in the same
rounds, interleaved and rotated, so load from elsewhere hits them alike; ratios are
of medians. Groups:

``noop``      ``ductaflow conduct`` with everything up to date, on CSV tables of
              1k/10k/100k rows and a 10k-row XLSX, against ``floor.py`` (read the
              table, build each config, load and compare each saved one).
``plan``      ``ductaflow.planning.planner.plan()`` alone (imports excluded), 1k/10k/100k rows,
              and the biggest against ``floor.py``.
``change``    the biggest no-op table with one row changed: one instance runs; then the
              ``--dry-run`` of another change (its planning alone).
``exec``      20 trivial notebooks: ``conduct`` at ``--jobs 1``/``2``, warm kernels on
              and off, ``--mode script``, against a serial ``papermill`` loop and the
              peers at 1 and 2 jobs.
``pandas``    20 notebooks importing pandas, warm (pandas preloaded: the flows import it)
              and cold, against papermill and the peers at 1 job.
``cpu``       CPU-bound flows, ``--jobs 2`` against ``--jobs 1``.
``headline``  (``--headline`` only) 150 builds of 3 pandas flows each: 600 notebooks, and
              the machine's busy CPU during it over its cores (the wall time it allows).
``thousand``  (``--headline`` only) 1,000 trivial notebooks at ``--jobs 2``.
``report``    the HTML report of a 5,000-instance project (1 % red, 4 % orange):
              ``ductaflow report`` rebuilding it, its size, and its load in headless
              Chromium (selenium and chromedriver; skipped without them).

The peers run the papermill loop's notebook (converted before timing), one output
notebook per instance, from a clean state each round: Snakemake (``snakemake --cores N
--quiet all``, one rule whose shell runs the ``papermill`` CLI per instance, so each
instance pays a papermill process) and ploomber (``ploomber build --force`` of a
``pipeline.yaml`` with one NotebookRunner task per instance; serial executor, or
``Parallel`` in N processes). Each runs with this Python (``python -m``); a peer it
cannot import is skipped with a note and is absent from the table and the JSON. Every
sample of the loop and the peers must leave each instance's output notebook with its
cell's output, or the benchmark stops.

The machine, its load before and after each group, and the target of each figure
(issue 8) are in the JSON. Benchmarks never run under pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import projects  # noqa: E402 - the benchmark's own helper module, beside this file

PY = sys.executable
CONDUCT = [PY, "-m", "ductaflow", "conduct"]
#: Children run as a user's would: with bytecode caching (some environments turn it
#: off, which makes every child compile ductaflow from source), in a cache of our own.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
#: ploomber would otherwise send usage statistics and look for a newer version online.
ENV.update(PLOOMBER_STATS_ENABLED="false", PLOOMBER_VERSION_CHECK_DISABLED="true")
#: Groups whose CPU time is that of the whole work: elsewhere the conductor's workers
#: and kernels are not its waited-for children, and are not counted.
CPU_GROUPS = ("noop", "plan")
#: A variant that runs longer than this hangs: the benchmark stops rather than wait.
MEASURE_TIMEOUT_S = 1800
HEAVY = ("papermill", "nbconvert", "nbclient", "jupyter_client", "IPython", "zmq", "dask",
         "distributed", "pandas", "numpy", "openpyxl", "python_calamine", "jinja2", "rich")


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    rss_mib: float


@dataclass
class Variant:
    """One command measured in a comparison; ``reset`` runs before each sample and
    ``check`` after it, both untimed (``check`` raises if the work was not all done)."""

    name: str
    command: list[str]
    cwd: Path
    reset: Callable[[], None] = lambda: None
    check: Callable[[], None] = lambda: None
    inner: bool = False  # the child prints {"seconds": ...}: time measured inside it
    samples: list[Sample] = field(default_factory=list)

    def median(self, what: str) -> float:
        return statistics.median(getattr(s, what) for s in self.samples)


@dataclass
class Figure:
    """A line of the table: a value, maybe a ratio against another line and a target."""

    group: str
    case: str
    variant: str
    wall_s: float
    cpu_s: float
    rss_mib: float
    samples: list[float]
    ratio: float | None = None
    ratio_of: str = ""
    target: str = ""
    holds: bool | None = None


# --- measuring --------------------------------------------------------------------------


# The child is started by this small launcher, not by the benchmark itself: Linux
# carries a process's peak memory across exec, so a child forked from this big
# process would report at least this process's size.
LAUNCHER = """\
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
               "rss_kib": usage.ru_maxrss, "code": os.waitstatus_to_exitcode(status)}, out)
"""


def measure(variant: Variant) -> Sample:
    """Run the variant's command once as a child; its wall, CPU and peak memory."""
    variant.reset()
    with tempfile.TemporaryDirectory() as tmp:
        usage_file = Path(tmp) / "usage.json"
        try:
            done = subprocess.run([PY, "-S", "-c", LAUNCHER, str(usage_file),
                                   *variant.command], cwd=variant.cwd, capture_output=True,
                                  text=True, env=ENV, stdin=subprocess.DEVNULL, check=False,
                                  timeout=MEASURE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{variant.name} did not end in {MEASURE_TIMEOUT_S} s") from None
        usage = json.loads(usage_file.read_text()) if usage_file.exists() else {"code": -1}
    if done.returncode != 0 or usage["code"] != 0:
        raise RuntimeError(f"{variant.name} exited {usage['code']}:\n{done.stdout[-2000:]}\n"
                           f"{done.stderr[-2000:]}")
    variant.check()
    wall = usage["wall"]
    if variant.inner:
        wall = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return Sample(round(wall, 4), round(usage["cpu"], 4), round(usage["rss_kib"] / 1024, 1))


def compare(variants: list[Variant], repeat: int, warmup: bool = True) -> None:
    """``repeat`` rounds; each round runs every variant once, starting one further on."""
    if warmup:
        for variant in variants:
            measure(variant)
    for round_ in range(repeat):
        shift = round_ % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            variant.samples.append(measure(variant))
            _say(f"    {variant.name:<40} {variant.samples[-1].wall_s:8.3f} s")


def figure(group: str, case: str, variant: Variant, base: Variant | None = None,
           target: str = "", check: Callable[[float], bool] | None = None,
           inverse: bool = False) -> Figure:
    """``ratio`` is variant/base wall time, or base/variant with ``inverse`` (speed-up)."""
    wall = variant.median("wall_s")
    ratio = None
    if base is not None:
        ratio = base.median("wall_s") / wall if inverse else wall / base.median("wall_s")
        ratio = round(ratio, 3)
    value = ratio if ratio is not None else wall
    return Figure(group, case, variant.name, round(wall, 3), round(variant.median("cpu_s"), 3),
                  max(s.rss_mib for s in variant.samples), [s.wall_s for s in variant.samples],
                  ratio, base.name if base is not None else "", target,
                  None if check is None else bool(check(value)))


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _wipe(*folders: Path) -> Callable[[], None]:
    def reset() -> None:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    return reset


# --- no-op rerun and planning --------------------------------------------------------------


def noop_projects(work: Path, sizes: list[int], xlsx_size: int) -> dict[int, Path]:
    """One up-to-date project per size; the XLSX table sits beside the CSV of its size."""
    roots = {}
    for size in sizes:
        root = work / f"noop{size}"
        projects.noop_project(root, size, xlsx=size == xlsx_size)
        started = time.perf_counter()
        projects.write_records(root, [root / "scenarios/noop.csv"],
                               lambda done, total: _say(f"    records {done}/{total}"))
        _say(f"  {size} rows up to date in {time.perf_counter() - started:.0f} s")
        _check_nothing_runs(root, "scenarios/noop.csv")
        roots[size] = root
    return roots


def _check_nothing_runs(root: Path, table: str) -> None:
    text = subprocess.run([*CONDUCT, table, "--dry-run"], cwd=root, capture_output=True, env=ENV,
                          text=True, check=True).stdout
    found = re.search(r"(\d+) to run, (\d+) up to date", text)
    if not found or found.group(1) != "0":
        raise RuntimeError(f"not everything is up to date in {root}: {text[:300]}")


def noop_group(roots: dict[int, Path], xlsx_size: int, repeat: int) -> list[Figure]:
    figures = []
    cases = [(size, "csv") for size in roots] + [(xlsx_size, "xlsx")]
    for size, kind in cases:
        root, table = roots[size], f"scenarios/noop.{kind}"
        if kind == "xlsx":
            _check_nothing_runs(root, table)
        case = f"no-op {_rows(size)} {kind.upper()}"
        _say(f"  {case}")
        floor = Variant("floor", [PY, str(HERE / "floor.py"), ".", table], root)
        whole = Variant("ductaflow conduct", [*CONDUCT, table], root)
        compare([floor, whole], repeat)
        figures.append(figure("noop", case, floor))
        at_1k = size == 1_000 and kind == "csv"
        figures.append(figure("noop", case, whole, floor, "≤ 1.5 × floor" if at_1k else "",
                              (lambda r: r <= 1.5) if at_1k else None))
        limit = NOOP_SECONDS.get(size) if kind == "csv" else None
        if limit is not None:
            wall = whole.median("wall_s")
            figures.append(Figure("noop", case, "ductaflow conduct: wall (s)", round(wall, 3),
                                  0.0, 0.0, [], target=f"≤ {limit:g} s", holds=wall <= limit))
        if size == 100_000 and kind == "csv":
            peak = max(s.rss_mib for s in whole.samples)
            figures.append(Figure("noop", case, "peak memory (MiB)", 0.0, 0.0, peak, [],
                                  target="≤ 200 MiB", holds=peak <= 200))
    return figures


#: Issue 21's targets for a whole no-op conduct, by table size.
NOOP_SECONDS = {1_000: 0.15, 10_000: 0.5, 100_000: 3.0}


def change_group(roots: dict[int, Path]) -> list[Figure]:
    """The biggest table with one row changed: one instance runs (``--mode script``),
    and the bookkeeping of all the others must cost little."""
    size = max(roots)
    root = roots[size]
    table = root / "scenarios/noop.csv"
    case = f"one changed row of {_rows(size)}"
    _say(f"  {case}")
    run = Variant("conduct --mode script (one instance runs)",
                  [*CONDUCT, "scenarios/noop.csv", "--mode", "script"], root,
                  reset=lambda: _toggle_a_cell(table))
    compare([run], 1)
    peak = max(s.rss_mib for s in run.samples)
    planning = Variant("conduct --dry-run (its planning alone)",
                       [*CONDUCT, "scenarios/noop.csv", "--dry-run"], root,
                       reset=lambda: _toggle_a_cell(table))
    compare([planning], 1, warmup=False)
    return [figure("change", case, run, None, "≤ 10 s + its run", lambda w: w <= 11),
            Figure("change", case, "peak memory (MiB)", 0.0, 0.0, peak, [],
                   target="≤ 300 MiB", holds=peak <= 300),
            figure("change", case, planning)]


def _toggle_a_cell(table: Path) -> None:
    """Change the first row's ``growth`` between two values: one instance is stale."""
    lines = table.read_text(encoding="utf-8").split("\n")
    cells = lines[1].split(",")
    cells[3] = "0.02" if cells[3] != "0.02" else "0.03"
    lines[1] = ",".join(cells)
    table.write_text("\n".join(lines), encoding="utf-8")


PLAN_CHILD = """\
import json, sys, time
from ductaflow.planning.planner import plan
started = time.perf_counter()
result = plan(sys.argv[1], project_root=".")
seconds = time.perf_counter() - started
assert not result.to_run, "something would run"
print(json.dumps({"seconds": seconds}))
"""


def plan_group(roots: dict[int, Path], repeat: int) -> list[Figure]:
    _say("  planning")
    variants = {size: Variant(f"plan() {_rows(size)}", [PY, "-c", PLAN_CHILD,
                                                        "scenarios/noop.csv"], root, inner=True)
                for size, root in roots.items()}
    compare(list(variants.values()), repeat)
    sizes = sorted(variants)
    figures = [figure("plan", "planning (imports excluded)", variants[sizes[0]])]
    for small, big in zip(sizes, sizes[1:], strict=False):
        limit = 1.2 * big / small
        figures.append(figure("plan", "planning (imports excluded)", variants[big],
                              variants[small], f"≤ {limit:g} × (linear)",
                              lambda r, limit=limit: r <= limit))
    if 100_000 in variants:
        figures.append(figure("plan", "planning (imports excluded)", variants[100_000], None,
                              "≤ 5 s", lambda wall: wall <= 5))
    biggest = sizes[-1]
    floor = Variant(f"floor.py {_rows(biggest)} (the least a plan reads)",
                    [PY, str(HERE / "floor.py"), ".", "scenarios/noop.csv"], roots[biggest])
    compare([floor], repeat)
    figures += [figure("plan", f"planning {_rows(biggest)} against its floor", floor),
                figure("plan", f"planning {_rows(biggest)} against its floor",
                       variants[biggest], floor)]
    return figures


def import_check(root: Path, table: str) -> dict[str, int]:
    """Heavy packages a no-op conduct imports: the largest cumulative import time (µs)
    of any of their modules, a lower bound of what the package costs."""
    text = subprocess.run([PY, "-X", "importtime", "-m", "ductaflow", "conduct", table],
                          cwd=root, capture_output=True, text=True, check=True, env=ENV).stderr
    found: dict[str, int] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[1].isdigit():
            top = parts[2].split(".")[0]
            if top in HEAVY:
                found[top] = max(found.get(top, 0), int(parts[1]))
    return found


# --- execution -------------------------------------------------------------------------------


def exec_group(work: Path, count: int, repeat: int) -> list[Figure]:
    root = work / "trivial"
    table = projects.flow_project(root, projects.TRIVIAL_FLOW, count)
    case = f"{count} trivial notebooks"
    _say(f"  {case}")
    loop = _papermill_loop(root, count)
    runs = root / "runs"

    def conduct(name: str, *flags: str) -> Variant:
        return Variant(name, [*CONDUCT, str(table.relative_to(root)), *flags], root,
                       _wipe(runs))

    j1_cold = conduct("conduct --jobs 1 --no-warm", "--jobs", "1", "--no-warm")
    j1_warm = conduct("conduct --jobs 1 (warm)", "--jobs", "1")
    j2_cold = conduct("conduct --jobs 2 --no-warm", "--jobs", "2", "--no-warm")
    j2_warm = conduct("conduct --jobs 2 (warm)", "--jobs", "2")
    s1 = conduct("conduct --jobs 1 --mode script", "--jobs", "1", "--mode", "script")
    s2 = conduct("conduct --jobs 2 --mode script", "--jobs", "2", "--mode", "script")
    peers = peer_variants(root, count, (1, 2))
    compare([loop, j1_cold, j1_warm, j2_cold, j2_warm, s1, s2, *peers], repeat)
    return [
        figure("exec", case, loop),
        figure("exec", case, j1_cold, loop, "≤ 0.7 × papermill", lambda r: r <= 0.7),
        figure("exec", case, j1_warm, loop, "≤ 0.1 × papermill", lambda r: r <= 0.1),
        figure("exec", case, j2_cold, loop),
        figure("exec", case, j2_warm, loop),
        figure("exec", case, s1, loop),
        figure("exec", case, s2, loop),
        *(figure("exec", case, peer, loop) for peer in peers),
    ]


def _papermill_loop(root: Path, count: int) -> Variant:
    out = root / "papermill"
    script = projects.papermill_script(root / "flows/work.py", [{"n": n} for n in range(count)],
                                       out)
    return Variant("papermill loop (serial)", [PY, "-c", script], root, _wipe(out),
                   _all_ran(out, count))


def pandas_group(work: Path, count: int, repeat: int) -> list[Figure]:
    root = work / "pandas"
    table = str(projects.flow_project(root, projects.PANDAS_FLOW, count).relative_to(root))
    case = f"{count} notebooks importing pandas"
    _say(f"  {case}")
    loop = _papermill_loop(root, count)
    runs = root / "runs"
    warm = Variant("conduct --jobs 1 warm (as written: no flags)", [*CONDUCT, table, "--jobs", "1"],
                   root, _wipe(runs))
    cold = Variant("conduct --jobs 1 --no-warm", [*CONDUCT, table, "--jobs", "1", "--no-warm"],
                   root, _wipe(runs))
    peers = peer_variants(root, count, (1,))
    compare([loop, warm, cold, *peers], repeat)
    return [
        figure("pandas", case, loop),
        figure("pandas", case, warm, loop, "≤ 0.25 × papermill", lambda r: r <= 0.25),
        figure("pandas", case, cold, loop),
        *(figure("pandas", case, peer, loop) for peer in peers),
    ]


# --- the peers: the same notebooks through Snakemake and ploomber ---------------------------

#: ploomber's CLI has no ``python -m`` entry point: this is what its console script runs.
PLOOMBER = ("import sys; from ploomber_cli.cli import cmd_router; sys.argv[0] = 'ploomber'; "
            "sys.exit(cmd_router())")


def peer_variants(root: Path, count: int, jobs: tuple[int, ...]) -> list[Variant]:
    """The papermill loop's notebook, once per instance, through Snakemake and ploomber
    at each number of parallel ``jobs``. Each runs in this Python (``-m``), so a peer is
    there when this Python imports it; one that is not is skipped with a note."""
    flow, configs = root / "flows/work.py", [{"n": n} for n in range(count)]
    variants = []
    for peer, module, make in (("snakemake", "snakemake", _snakemake),
                               ("ploomber", "ploomber_cli", _ploomber)):
        if importlib.util.find_spec(module) is None:
            _say(f"  {peer} is not installed in {PY}: its variants are skipped")
            continue
        variants += [make(root / peer, flow, configs, n) for n in jobs]
    return variants


def _snakemake(folder: Path, flow: Path, configs: list[dict], cores: int) -> Variant:
    """``snakemake --cores N`` from nothing: before each round its outputs and its
    ``.snakemake`` folder (lock, metadata, incomplete markers) are wiped, so every
    round runs every job and no round pays for an earlier one's bookkeeping."""
    projects.snakemake_project(folder, flow, configs, PY)
    return Variant(f"snakemake --cores {cores} (papermill rule)",
                   [PY, "-m", "snakemake", "--cores", str(cores), "--quiet", "all"], folder,
                   _wipe(folder / "runs", folder / ".snakemake"),
                   _all_ran(folder / "runs", len(configs)))


def _ploomber(folder: Path, flow: Path, configs: list[dict], processes: int) -> Variant:
    """``ploomber build --force`` of a pipeline with one task per instance: its serial
    executor, or its ``Parallel`` one in ``processes`` processes."""
    spec = projects.ploomber_project(folder, flow, configs, processes)
    how = "serial" if processes == 1 else f"Parallel, {processes} processes"
    return Variant(f"ploomber build ({how})",
                   [PY, "-c", PLOOMBER, "build", "--entry-point", spec.name, "--force"], folder,
                   _wipe(folder / "runs"), _all_ran(folder / "runs", len(configs)))


def _all_ran(runs: Path, count: int) -> Callable[[], None]:
    """A variant's check: ``count`` output notebooks in ``runs/*/``, each with its
    instance line printed, so a tool that skipped or half-ran notebooks is not timed."""
    def check() -> None:
        ran = [p for p in runs.glob("*/out.ipynb") if _printed(p)]
        if len(ran) != count:
            raise RuntimeError(f"{len(ran)} of {count} notebooks ran in {runs}")

    return check


def _printed(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return any("instance " in "".join(output.get("text", ""))
               for cell in cells for output in cell.get("outputs", []))


def cpu_group(work: Path, count: int, loops: int, repeat: int) -> list[Figure]:
    root = work / "cpu"
    table = str(projects.flow_project(root, projects.CPU_FLOW, count, loops=loops)
                .relative_to(root))
    case = f"{count} CPU-bound notebooks"
    _say(f"  {case}")
    runs = root / "runs"
    j1 = Variant("conduct --jobs 1", [*CONDUCT, table, "--jobs", "1"], root, _wipe(runs))
    j2 = Variant("conduct --jobs 2", [*CONDUCT, table, "--jobs", "2"], root, _wipe(runs))
    compare([j1, j2], repeat)
    return [figure("cpu", case, j1),
            figure("cpu", case, j2, j1, "≥ 1.7 × faster", lambda r: r >= 1.7, inverse=True)]


def headline_group(work: Path) -> list[Figure]:
    root = work / "headline"
    table = str(projects.headline_project(root).relative_to(root))
    case = "150 builds × 3 pandas flows (600 notebooks)"
    _say(f"  {case}: one run")
    run = Variant("conduct --jobs 2 (as written: no flags)", [*CONDUCT, table, "--jobs", "2"],
                  root)
    busy = busy_cpu_s()
    compare([run], 1, warmup=False)
    busy = busy_cpu_s() - busy
    built = len(list((root / "runs/pipeline").glob("*/runs/export/summary.csv")))
    if built != 150:
        raise RuntimeError(f"only {built} of 150 builds produced their summary")
    first = Variant("first ductaflow (serial, measured by the seed)", [], root,
                    samples=[Sample(801.0, 0.0, 0.0)])
    cores = os.cpu_count() or 1
    return [figure("headline", case, first),
            figure("headline", case, run, first, "≤ 40 s (≥ 20 × faster)",
                   lambda r: r >= 801 / 40, inverse=True),
            Figure("headline", case, f"CPU busy {busy:.0f} s ÷ {cores} cores: least wall",
                   round(busy / cores, 3), round(busy, 3), 0.0, [])]


def busy_cpu_s() -> float:
    """Seconds of CPU the whole machine has spent busy (``/proc/stat``; 0 elsewhere):
    every process a run starts counts, which ``wait4`` misses for those no ancestor
    reaps (a kernel the kernel server forked). Other load on the machine counts too."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def thousand_group(work: Path) -> list[Figure]:
    """1,000 trivial notebooks at ``--jobs 2``, once: what a big table costs per instance
    (the live results and report are rewritten all along)."""
    root = work / "thousand"
    table = str(projects.flow_project(root, projects.TRIVIAL_FLOW, 1000).relative_to(root))
    case = "1,000 trivial notebooks"
    _say(f"  {case}: one run")
    run = Variant("conduct --jobs 2", [*CONDUCT, table, "--jobs", "2"], root)
    compare([run], 1, warmup=False)
    ran = len(list((root / "runs/work").glob("*/work.ipynb")))
    if ran != 1000:
        raise RuntimeError(f"only {ran} of 1,000 notebooks ran")
    return [figure("thousand", case, run, None, "≤ 120 s", lambda wall: wall <= 120)]


# --- the HTML report at scale ---------------------------------------------------------------


def report_group(work: Path, size: int, repeat: int) -> list[Figure]:
    """``ductaflow report`` on ``size`` instances, the page's size, and its load time."""
    root = work / f"report{size}"
    projects.noop_project(root, size)
    projects.write_records(root, [root / "scenarios/noop.csv"],
                           lambda done, total: _say(f"    records {done}/{total}"))
    subprocess.run([*CONDUCT, "scenarios/noop.csv"], cwd=root, check=True, env=ENV,
                   capture_output=True)  # nothing runs: it writes the results CSV
    projects.mark_some_failed(root / "runs")
    rebuild = Variant("ductaflow report", [PY, "-m", "ductaflow", "report", "runs"], root)
    compare([rebuild], repeat)
    page = root / "runs" / "conductor_status_report.html"
    megabytes = page.stat().st_size / 1e6
    figures = [figure("report", f"rebuild, {size:,} instances", rebuild)]
    loads = _chromium_loads(page, repeat)
    if loads is None:
        _say("  chromium, chromedriver or selenium missing: load time not measured")
        return figures
    load = statistics.median(loads)
    figures.append(Figure("report", f"{size:,} instances, {megabytes:.1f} MB: load in Chromium",
                          "headless chromium", round(load, 3), 0.0, 0.0, loads,
                          target="≤ 2 s, a few MB", holds=load <= 2.0 and megabytes <= 5.0))
    return figures


def _chromium_loads(page: Path, repeat: int) -> list[float] | None:
    """Seconds from navigation to the load event, ``repeat`` times, in a fresh tab."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    if chromium is None or driver_path is None:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    os.environ["SE_OFFLINE"] = "true"
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        found = []
        for _ in range(repeat):
            driver.get("about:blank")
            driver.get(page.as_uri())
            found.append(driver.execute_script(
                "var t = performance.timing; return (t.loadEventEnd - t.navigationStart) / 1000;"))
        return found
    finally:
        driver.quit()


# --- the report --------------------------------------------------------------------------------


def machine() -> dict[str, object]:
    model = ""
    with contextlib.suppress(OSError):
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = found.group(1) if found else ""
    memory = ""
    with contextlib.suppress(OSError, AttributeError):
        found = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
        memory = f"{int(found.group(1)) / 2**20:.1f} GiB"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                            capture_output=True, text=True, check=False).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "memory": memory,
            "platform": platform.platform(), "python": platform.python_version(),
            "commit": commit}


def _rows(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def render(figures: list[Figure]) -> str:
    head = (f"{'case':<44} {'variant':<40} {'wall s':>8} {'cpu s':>7} {'MiB':>6} "
            f"{'ratio':>7}  target")
    lines = [head, "-" * len(head)]
    last = None
    for f in figures:
        case = f.case if f.case != last else ""
        last = f.case
        ratio = f"{f.ratio:.2f}×" if f.ratio is not None else ""
        verdict = {True: "holds", False: "MISSED", None: ""}[f.holds]
        target = f"{f.target} {verdict}".strip()
        wall = f"{f.wall_s:8.3f}" if f.wall_s else ""
        cpu = f"{f.cpu_s:7.2f}" if f.group in CPU_GROUPS and f.cpu_s else ""
        lines.append(f"{case:<44} {f.variant:<40} {wall:>8} {cpu:>7} "
                     f"{f.rss_mib:6.0f} {ratio:>7}  {target}")
    return "\n".join(lines)


@contextlib.contextmanager
def loads(log: dict[str, list[float]], group: str) -> Iterator[None]:
    before = [round(x, 2) for x in os.getloadavg()]
    yield
    log[group] = [*before, *(round(x, 2) for x in os.getloadavg())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, smaller sizes")
    parser.add_argument("--headline", action="store_true",
                        help="also the 600-notebook headline and 1,000 trivial notebooks (minutes)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 5, quick 3)")
    parser.add_argument("--only", nargs="+", default=None,
                        choices=("noop", "plan", "change", "exec", "pandas", "cpu", "headline",
                                 "thousand", "report"))
    parser.add_argument("--rows", nargs="+", type=int, default=None,
                        help="no-op and planning table sizes (default 1000 10000 100000; "
                             "quick: 1000 5000); the Excel table has the second size")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 5)
    groups = set(args.only or ["noop", "plan", "change", "exec", "pandas", "cpu", "report"])
    if args.headline:
        groups |= {"headline", "thousand"}
    sizes = args.rows or ([1_000, 5_000] if args.quick else [1_000, 10_000, 100_000])
    xlsx_size = sizes[1] if len(sizes) > 1 else sizes[0]
    count = 10 if args.quick else 20
    figures: list[Figure] = []
    load_log: dict[str, list[float]] = {}
    imports: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="ductaflow-bench-") as tmp:
        work = Path(tmp)
        ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        if groups & {"noop", "plan", "change"}:
            _say("no-op projects")
            roots = noop_projects(work, sizes, xlsx_size)
            for kind in ("csv", "xlsx"):
                table = f"scenarios/noop.{kind}"
                subprocess.run([*CONDUCT, table], cwd=roots[xlsx_size], check=True, env=ENV,
                               capture_output=True)  # the first conduct writes its results
                imports[kind] = import_check(roots[xlsx_size], table)
        if "noop" in groups:
            with loads(load_log, "noop"):
                figures += noop_group(roots, xlsx_size, repeat)
        if "plan" in groups:
            with loads(load_log, "plan"):
                figures += plan_group(roots, repeat)
        if "change" in groups:
            with loads(load_log, "change"):
                figures += change_group(roots)
        if "exec" in groups:
            with loads(load_log, "exec"):
                figures += exec_group(work, count, repeat)
        if "pandas" in groups:
            with loads(load_log, "pandas"):
                figures += pandas_group(work, count, repeat)
        if "cpu" in groups:
            with loads(load_log, "cpu"):
                figures += cpu_group(work, 4 if args.quick else 8,
                                     3_000_000 if args.quick else 6_000_000, repeat)
        if "headline" in groups:
            with loads(load_log, "headline"):
                figures += headline_group(work)
        if "thousand" in groups:
            with loads(load_log, "thousand"):
                figures += thousand_group(work)
        if "report" in groups:
            with loads(load_log, "report"):
                figures += report_group(work, 1_000 if args.quick else 5_000, repeat)
    print(render(figures))
    for kind, found in imports.items():
        shown = ", ".join(f"{k} {v / 1000:.0f} ms" for k, v in found.items()) or "none"
        print(f"no-op {kind.upper()} imports of heavy modules: {shown}")
    print(f"load average (1/5/15 min, before → after): {load_log}")
    report = {"machine": machine(), "quick": args.quick, "repeat": repeat, "load": load_log,
              "noop_imports": imports, "figures": [asdict(f) for f in figures]}
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"written {args.out}")
    return 0 if all(f.holds is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
