"""``python -m simulate.committee``: the committee machine's ODE command."""

from .ode import main

raise SystemExit(main())
