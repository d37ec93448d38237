"""Imported once by a fork server: what every notebook run repeats in a fresh process.

Workers, and the kernels of builds (which run their flows through papermill), are a
fresh process per instance. Importing papermill is not all a first notebook costs:
jupyter_client imports IPython and ipykernel to find the python3 kernel's spec,
nbformat compiles its JSON schema into a validator, jupytext and papermill compile
their patterns. Done here once, before the fork server forks, a trivial instance is
0.4 s quicker. Importing this module has no effect but speed.
"""

from __future__ import annotations

import jupytext
import nbformat
import papermill
from jupyter_client.kernelspec import KernelSpecManager

from ductaflow.execution import papermill_engine  # noqa: F401 - registers ductaflow's papermill engine
from ductaflow.execution.notebook import name_kernel


def _rehearse() -> None:
    KernelSpecManager().get_kernel_spec("python3")
    nb = name_kernel(jupytext.reads('# %% tags=["parameters"]\nconfig = {}\n\n# %%\nx = 1\n',
                                    fmt="py:percent"))
    nb = papermill.execute_notebook(nb, None, parameters={"config": {"n": 1}},
                                    prepare_only=True, kernel_name="python3",
                                    language="python", progress_bar=False)
    nbformat.writes(nb)


_rehearse()
