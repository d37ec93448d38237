# %% tags=["parameters"]
config = {}

# %%
# ruff: noqa: E402 (a flow imports after its parameters cell)
import sys

from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config()

# %%
print("before the exit")
if config.get("how") == "raise":
    raise SystemExit
sys.exit(config.get("code"))

# %%
print("after the exit")
