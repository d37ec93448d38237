"""``python -m ductaflow.execution.kernel_main``: ipykernel's launcher, ending with its parent.

jupyter_client starts kernels in a session of their own, out of reach of signals to
the conductor's process group, and ipykernel's own parent poller ends only the kernel
itself. This launcher ends the kernel's whole group (the kernel and whatever its flow
started) as soon as the process that asked for it is gone, and ends faster than
Python's own exit would (``kernels.exit_kernel``).
"""

from ductaflow.execution import processes

if __name__ == "__main__":
    processes.watch_parent()
    import gc

    from ipykernel.kernelapp import IPKernelApp

    from ductaflow.execution.kernels import (
        exit_kernel,
        leave_children_to_the_worker,
        project_on_path,
    )

    project_on_path()
    app = IPKernelApp.instance()
    app.initialize()
    leave_children_to_the_worker(app)
    gc.freeze()  # the kernel's own objects; exit_kernel closes only the flow's files
    app.start()
    exit_kernel()
