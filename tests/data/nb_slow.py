# %% tags=["parameters"]
config = {}

# %%
import time

print("started", flush=True)
time.sleep(1)

# %%
time.sleep(120)
print("never printed")
