"""Commands of the linear classifier (:mod:`theory.linear`).

- :mod:`simulate.linear.ode`        integrate the ODEs (``python -m simulate.ode``);
- :mod:`simulate.linear.mc`         Monte Carlo of the N-dimensional SGD: result, run_mc, command (``simulate.mc``);
- :mod:`simulate.linear.engines`    its engines (full, reduced, user sampler) on the shared run harness;
- :mod:`simulate.linear.compare`    ODE against Monte Carlo (``simulate.compare``);
- :mod:`simulate.linear.protocol`   optimal budget schedules (``simulate.protocol``);
- :mod:`simulate.linear.scenarios`  the talk's scenarios (``simulate.scenarios``).
"""
