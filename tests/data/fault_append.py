# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config(None, "Append")

# %% [markdown]
# Appends a line to ``ticks.txt`` in its folder every 0.1 s for ``seconds``
# (none with ``$DF_FAST``), then writes ``done.txt``. Logs to ``$DF_RUN_LOG``.

# %%
import os
import time
from pathlib import Path

tag = str(config.get("tag", "?"))
with open(os.environ.get("DF_RUN_LOG", os.devnull), "a", encoding="utf-8") as log:
    log.write(f"start {tag}\n")
end = time.monotonic() + (0 if os.environ.get("DF_FAST") else float(config.get("seconds", 0)))
while time.monotonic() < end:
    with open("ticks.txt", "a", encoding="utf-8") as ticks:
        ticks.write(f"{time.time()}\n")
    time.sleep(0.1)

# %%
Path("done.txt").write_text(f"{tag}\n", encoding="utf-8")
with open(os.environ.get("DF_RUN_LOG", os.devnull), "a", encoding="utf-8") as log:
    log.write(f"end {tag}\n")
print(f"appended for {tag}")
