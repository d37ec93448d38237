# %% tags=["parameters"]
config = {}

# %%
# ruff: noqa: E402 (a flow imports after its parameters cell)
import time
from pathlib import Path

from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config()

# %%
print("first line")
release = Path(config["release"])
deadline = time.monotonic() + 10
while not release.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
print("second line")
