# %% tags=["parameters"]
config = {}

# %%
import os
import time

print("about to die", flush=True)
time.sleep(0.5)  # let the kernel's IOPub thread send the line before the process ends
os._exit(3)
