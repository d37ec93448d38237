"""The ``ductaflow`` command line: flags in, one public call, the outcome rendered.
"""
