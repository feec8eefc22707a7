"""Parameter sweeps (docs/sweeps.md).

- :mod:`simulate.sweep.driver`    the driver (:func:`run_sweep`) and the command (``python -m simulate.sweep``);
- :mod:`simulate.sweep.grid`      the grid: ``--grid`` specifications, :class:`Grid`, :func:`make_grid`;
- :mod:`simulate.sweep.store`     finished blocks (resume) and the finished data set, verified by checksum;
- :mod:`simulate.sweep.backends`  serial, local processes, dask.distributed;
- :mod:`simulate.sweep.regions`   regions of a phase diagram;
- :mod:`simulate.sweep.engines`   the engines a sweep evaluates (ODE, Monte Carlo).

The package mirrors :mod:`simulate.sweep.driver` (every name it defines or imports, private ones too), so code written
against the former module keeps working.
"""

from . import driver as _driver

globals().update({k: v for k, v in vars(_driver).items() if not (k.startswith("__") and k.endswith("__"))})
__all__ = list(_driver.__all__)
