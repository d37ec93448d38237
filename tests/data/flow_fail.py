# %% tags=["parameters"]
config = {}

# %%
# ruff: noqa: E402 (a flow imports after its parameters cell)
import sys

from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config()

# %%
print("before the failure")
print("a stderr line", file=sys.stderr)
raise ValueError("growth must be positive")
