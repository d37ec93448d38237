"""The environment variables ductaflow's processes pass to each other, in one place.

Four processes share this code (``docs/architecture.md``): the conductor, its workers,
the kernel server, and the kernels or scripts that run flows. They talk through these
variables; each is set by one process and read by another:

``DUCTAFLOW_PROJECT_ROOT``
    Set by a worker before it runs a flow (``execution.instance``), by the script
    runner for its flow, by the kernel manager for its kernel, and by
    ``load_cli_config`` when not set yet (a flow run as a plain script). Read by
    ``run_notebook`` inside a build's kernel (where relative flows are found, the
    ``_project_root`` it injects) and by ``ductaflow debug``.
``DUCTAFLOW_RUNS_DIR``
    Set by a worker before it runs a flow (``execution.instance``). Read where a
    flow's process lists the project modules it imported
    (``run_folder.fingerprints.project_modules``): the runs folder holds outputs, not
    code.
``DUCTAFLOW_FLOWS_MANIFEST``
    Set by a worker for the duration of its flow (``execution.instance``). Read by
    ``run_notebook`` inside a build's kernel: each flow the build runs is noted there,
    for the build's record and light; and by ``conduct``, which refuses to run inside
    a flow.
``DUCTAFLOW_KERNEL_SERVER``
    Set by a worker when the conductor started a kernel server (``execution.instance``).
    Read by the kernel manager of every notebook run in that worker or in a build's
    kernel (``execution.kernels``): ask the server for a warm kernel.
``DUCTAFLOW_CAPTURED_BY_PARENT``
    Set to ``1`` by the script runner for the flow it starts (``execution.script``).
    Read by ``load_cli_config`` in that flow: the runner captures the output and writes
    the footer, so the flow does not.
``DUCTAFLOW_DEBUG_RUN``
    Set to ``1`` by ``load_cli_config --debug`` in its own process (a flow stepped
    through after a run, ``ductaflow debug``). Read by ``record`` there: a debug run
    saves no values into the run's folder.
``DUCTAFLOW_NOTES_FILE``
    Set by the script runner for the flow it starts (``execution.script``), read and
    removed by the runner inside that process before the flow runs: where it notes
    how the flow ended (the footer), the project modules it imported and where it
    failed.
``DUCTAFLOW_PARENT_PID``
    Set by whatever starts a process that must end with it: a worker for its script
    flow or kernel, the conductor for its kernel server. Read and removed by
    ``processes.watch_parent`` in that process: the parent may be gone before the
    child first looks, and then its parent is already another.

Standard library only, and nothing at import: flows import it through ``flow``.
"""

PROJECT_ROOT = "DUCTAFLOW_PROJECT_ROOT"
FLOWS_MANIFEST = "DUCTAFLOW_FLOWS_MANIFEST"
KERNEL_SERVER = "DUCTAFLOW_KERNEL_SERVER"
CAPTURED_BY_PARENT = "DUCTAFLOW_CAPTURED_BY_PARENT"
RUNS_DIR = "DUCTAFLOW_RUNS_DIR"
NOTES_FILE = "DUCTAFLOW_NOTES_FILE"
PARENT_PID = "DUCTAFLOW_PARENT_PID"
DEBUG_RUN = "DUCTAFLOW_DEBUG_RUN"
