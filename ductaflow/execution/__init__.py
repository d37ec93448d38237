"""Running instances: the executors (local worker processes, Dask), one instance,
the notebook and script runners, kernels, and the processes they start.
"""
