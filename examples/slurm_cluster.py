"""Conduct scenario tables on a SLURM cluster: Dask workers as SLURM jobs (dask-jobqueue).

Run it on a login node, from the project folder, in the Python environment that has
ductaflow installed::

    pip install "ductaflow[dask]" dask-jobqueue
    python examples/slurm_cluster.py scenarios/demo.xlsx --workers 8 \\
        --queue normal --account myproject --memory 8GB --walltime 04:00:00

This process is the conductor: it plans, holds the lock on the runs folder, keeps the
records, the results file and the report. Each SLURM job runs one Dask worker with one
thread, so one instance at a time. The project folder and this Python environment
must be visible from the compute nodes at the same paths (a shared filesystem): the
conductor checks that on the first worker before anything runs.

Size ``--walltime`` for the whole conduct: a worker whose job ends runs no more
instances, and the instance it was running is rerun elsewhere by Dask (up to three
times) or left "not done" for the next conduct. ``--print-job-script`` shows the job
script that would be submitted, and submits nothing. See docs/cluster.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MISSING = 'needs dask-jobqueue and distributed: pip install "ductaflow[dask]" dask-jobqueue'


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", metavar="TABLE", help="CSV or XLSX scenario tables")
    parser.add_argument("--project-root", default=".", metavar="DIR")
    parser.add_argument("--workers", type=int, default=4, help="SLURM jobs, one worker each")
    parser.add_argument("--queue", default=None, help="SLURM partition (-p)")
    parser.add_argument("--account", default=None, help="SLURM account (-A)")
    parser.add_argument("--memory", default="4GB", help="memory of one job (flow and kernel)")
    parser.add_argument("--walltime", default="04:00:00", help="time limit of one job")
    parser.add_argument("--interface", default=None,
                        help="network interface the nodes reach each other on, e.g. ib0")
    parser.add_argument("--mode", choices=("notebook", "script"), default="notebook")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="wall-clock limit of one instance")
    parser.add_argument("--print-job-script", action="store_true",
                        help="print the SLURM job script and exit")
    return parser.parse_args(argv)


def make_cluster(args: argparse.Namespace) -> Any:
    """A SLURMCluster whose jobs each start one single-threaded Dask worker."""
    from dask_jobqueue import SLURMCluster

    logs = Path(args.project_root).resolve() / "dask-logs"
    return SLURMCluster(
        queue=args.queue,
        account=args.account,
        walltime=args.walltime,
        cores=1,  # one thread: one instance at a time per worker
        processes=1,
        memory=args.memory,
        interface=args.interface,
        python=sys.executable,  # this environment, on the shared filesystem
        job_name="ductaflow",
        log_directory=str(logs),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import dask_jobqueue  # noqa: F401
        from distributed import Client
    except ImportError:
        print(f"error: {MISSING}", file=sys.stderr)
        return 2
    from ductaflow import DuctaflowError, conduct

    cluster = make_cluster(args)
    try:
        if args.print_job_script:
            print(cluster.job_script())
            return 0
        cluster.scale(jobs=args.workers)  # fixed size: see docs/cluster.md on adapt()
        with Client(cluster) as client:
            print(f"waiting for the first of {args.workers} SLURM jobs to start ...", flush=True)
            client.wait_for_workers(1)
            results = conduct(args.tables, project_root=args.project_root, executor=client,
                              mode=args.mode, timeout=args.timeout)
    except DuctaflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        cluster.close()
    return summarise(results)


def summarise(results: Sequence[Any]) -> int:
    """Print one line per action; exit status 1 when anything is red."""
    counts: dict[str, int] = {}
    for result in results:
        counts[str(result.action)] = counts.get(str(result.action), 0) + 1
    print("  ".join(f"{action} {n}" for action, n in sorted(counts.items())))
    for result in results:
        if result.error:
            print(f"failed  {result.key}: {result.error}")
    return 1 if any(str(r.status) == "error" for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
