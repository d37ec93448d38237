# %% tags=["parameters"]
config = {}

# %%
import sys

from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config(None, "Exit")
print("exiting early", flush=True)
sys.exit(config.get("code", 0))

# %%
print("never printed")
