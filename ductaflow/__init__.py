"""ductaflow: run notebook pipelines across hundreds of scenarios from a spreadsheet.

Every flow imports this package, in every instance, so importing it must stay cheap:
the helpers below are loaded on first use (PEP 562), and the ones a flow calls
(``ductaflow.flow``) need only the standard library.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "is_notebook_execution": "ductaflow.flow",
    "load_cli_config": "ductaflow.flow",
    "unpack_config": "ductaflow.flow",
    "display_config_summary": "ductaflow.flow",
    "record": "ductaflow.flow",
    "results": "ductaflow.reporting.stage_results",
    "RecordError": "ductaflow.run_folder.recorded",
    "diff": "ductaflow.reporting.comparison",
    "run_notebook": "ductaflow.execution.notebook",
    "run_step_flow": "ductaflow.execution.notebook",
    "debug_flow": "ductaflow.execution.notebook",
    "analyze_execution_logs": "ductaflow.run_folder.lights",
    "generate_status_report": "ductaflow.reporting.html_report",
    "conduct": "ductaflow.conductor",
    "clean": "ductaflow.reporting.leftovers",
    "plan": "ductaflow.planning.planner",
    "grid": "ductaflow.tables.reading",
    "DuctaflowError": "ductaflow.errors",
    "FlowError": "ductaflow.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ductaflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
