"""``python -m simulate.sweep``: the sweep command."""

from .driver import main

raise SystemExit(main())
