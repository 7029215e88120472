"""`python -m skedulr`: the same command as the `skedulr` console script."""

from .cli import main

raise SystemExit(main())
