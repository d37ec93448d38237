"""What lies in the runs folder: file names, records of past runs, traffic lights,
provenance. Read by planning, written by execution, shown by reporting.
"""
