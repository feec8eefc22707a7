"""``python -m simulate.structured``: the structured-data command."""

from .ode import main

raise SystemExit(main())
