"""What Dask adds per instance: one 20-instance table, locally and on a 2-worker cluster.

    python benchmarks/dask_overhead.py [--instances 20] [--repeat 3] [--mode notebook]

Builds a throw-away project with a trivial flow and a table of N instances, then runs
``conduct`` (the call behind ``ductaflow conduct``) with ``--force`` into a fresh runs
folder, ``--repeat`` times each, on:

- ``local``: the local executor, ``jobs=2``, warm kernels (the default);
- ``local-cold``: the same with ``warm=False``: every kernel started from scratch, as
  on Dask workers;
- ``dask``: a standing ``dask scheduler`` and two ``dask worker --nthreads 1``
  processes on 127.0.0.1, started before the clock starts (as a user's cluster is);
- ``dask-lc``: ``executor="dask"`` without a scheduler, so the time includes starting
  and closing a 2-worker ``LocalCluster``.

Per instance it measures, from the conductor's own start/finish events, the time
between submitting an instance and receiving its result, minus the instance's own
``duration_s`` (measured inside the worker around the flow's run): that difference
is the executor's per-instance overhead (a fresh process locally; submission,
scheduling, the worker-side wrapper and the result's trip back on Dask). For scale,
it also times a no-op task's round trip through the standing cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

FLOW = """\
# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config(None, "Tiny")
print(f"instance {config['n']}")
"""


def make_project(root: Path, instances: int) -> Path:
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "tiny.py").write_text(FLOW, encoding="utf-8")
    table = root / "tiny.csv"
    rows = "\n".join(f"i{n:02d},{n}" for n in range(instances))
    table.write_text(f"instance,n\n{rows}\n", encoding="utf-8")
    return table


@contextlib.contextmanager
def standing_cluster(folder: Path, workers: int = 2) -> Iterator[str]:
    """``dask scheduler`` plus ``workers`` single-threaded workers; killed at the end."""
    from distributed import Client

    scheduler_file = folder / "scheduler.json"
    procs = []

    def start(module: str, *args: str) -> None:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", f"distributed.cli.{module}", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))

    try:
        start("dask_scheduler", "--host", "127.0.0.1", "--port", "0",
              "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file))
        while not scheduler_file.exists():
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text(encoding="utf-8"))["address"]
        for n in range(workers):
            start("dask_worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                  "--no-dashboard", "--name", f"w{n}")
        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def one_run(table: Path, root: Path, runs: Path, mode: str, **executor: object) -> dict:
    """Wall time of one forced conduct, and each instance's submit-to-result overhead."""
    from ductaflow import conduct

    started: dict[str, float] = {}
    overheads: list[float] = []

    def on_event(kind: str, payload: object) -> None:
        if kind == "start":
            started[payload.instance.key] = time.perf_counter()
        elif kind == "finish" and payload.key in started:
            overheads.append(time.perf_counter() - started[payload.key] - payload.duration_s)

    begin = time.perf_counter()
    results = conduct(table, project_root=root, runs_dir=runs, force=True, mode=mode,
                      on_event=on_event, **executor)
    wall = time.perf_counter() - begin
    bad = [r.key for r in results if str(r.status) != "success"]
    if bad:
        raise SystemExit(f"instances did not succeed: {bad}")
    return {"wall": wall, "overhead": statistics.median(overheads),
            "flow": statistics.median(r.duration_s for r in results)}


def dask_round_trip(address: str, n: int = 50) -> float:
    """Median seconds to submit a no-op task to the cluster and get its result."""
    from distributed import Client

    times = []
    with Client(address, set_as_default=False) as client:
        for _ in range(n):
            begin = time.perf_counter()
            client.submit(int, 0, pure=False).result()
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=("notebook", "script"), default="notebook")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ductaflow-bench-") as temp:
        root = Path(temp)
        table = make_project(root, args.instances)
        runs = iter(root / f"runs{n}" for n in range(1000))
        setups = {"local": {"executor": "local", "jobs": 2},
                  "local-cold": {"executor": "local", "jobs": 2, "warm": False},
                  "dask-lc": {"executor": "dask", "jobs": 2}}
        measured: dict[str, list[dict]] = {name: [] for name in (*setups, "dask")}
        with standing_cluster(root) as address:
            setups["dask"] = {"executor": "dask", "scheduler": address}
            round_trip = dask_round_trip(address)
            for _ in range(args.repeat):
                for name, executor in setups.items():
                    measured[name].append(one_run(table, root, next(runs), args.mode,
                                                  **executor))
    print(f"{args.instances} instances, --mode {args.mode}, 2 at a time, "
          f"median of {args.repeat} ({os.cpu_count()} CPUs)")
    print(f"{'executor':10} {'wall s':>8} {'flow s':>8} {'overhead/instance ms':>22}")
    for name, runs_of in measured.items():
        wall = statistics.median(m["wall"] for m in runs_of)
        flow = statistics.median(m["flow"] for m in runs_of)
        overhead = statistics.median(m["overhead"] for m in runs_of) * 1000
        print(f"{name:10} {wall:8.2f} {flow:8.2f} {overhead:22.0f}")
    print(f"a no-op Dask task, submit to result: {round_trip * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
