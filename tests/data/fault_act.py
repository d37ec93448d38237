# %% tags=["parameters"]
config = {}

# %%
from ductaflow import is_notebook_execution, load_cli_config

if not is_notebook_execution():
    config = load_cli_config(None, "Fault")

# %% [markdown]
# One flow, many ways to end: ``config["act"]`` picks one. Every run appends
# ``start <tag>`` and, when it gets there, ``end <tag>`` to ``$DF_RUN_LOG``.
# ``$DF_FAST`` skips the sleep (a rerun after a kill), without changing the config.

# %%
import os
import sys
import time
from pathlib import Path

tag = str(config.get("tag", "?"))
TICKER = """
import sys, time
while True:
    with open(sys.argv[1], "a") as handle:
        handle.write("tick\\n")
    time.sleep(0.1)
"""
act = config.get("act", "ok")


def note(word: str) -> None:
    with open(os.environ.get("DF_RUN_LOG", os.devnull), "a", encoding="utf-8") as log:
        log.write(f"{word} {tag}\n")


note("start")
Path("half.txt").write_text("half written\n", encoding="utf-8")
print(f"act {act} for {tag}", flush=True)
if act == "spawn":  # a child in the flow's process group, appending every 0.1 s
    import subprocess

    subprocess.Popen([sys.executable, "-c", TICKER, "child_ticks.txt"])
if config.get("sleep") and not os.environ.get("DF_FAST"):
    time.sleep(float(config["sleep"]))
if act == "raise":
    raise ValueError(f"boom in {tag}")
if act == "os_exit":
    os._exit(int(config.get("code", 3)))
if act == "exit0":
    sys.exit(0)
if act == "exit1":
    sys.exit(1)
if act == "print_mb":
    chunk = ("x" * 1023 + "\n") * 1024 if config.get("lines") else "x" * (1 << 20)
    for _ in range(int(config["mb"])):
        sys.stdout.write(chunk)
        if config.get("flush"):  # one message per MB, not one for the whole flood
            sys.stdout.flush()
    sys.stdout.flush()
if act == "limit_parent":  # the next file the worker writes past this size fails (EFBIG)
    import resource

    limit = int(config["bytes"])
    resource.prlimit(os.getppid(), resource.RLIMIT_FSIZE, (limit, limit))
if act == "warn":
    print("Warning: " + str(config.get("message", "")))
if act == "print":
    print(str(config.get("message", "")))

# %%
Path("done.txt").write_text(f"{tag}\n", encoding="utf-8")
note("end")
print(f"finished {tag}")
if act == "no_newline":  # the last thing printed has no line end
    sys.stdout.write("no newline at the end")
