"""``python -m ductaflow``: the same command line as ``ductaflow``."""

from ductaflow.cli.commands import main

raise SystemExit(main())
