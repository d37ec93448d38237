"""``python -m ductaflow``: the same command line as ``ductaflow``."""

from ductaflow.cli import main

raise SystemExit(main())
