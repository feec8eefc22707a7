"""Commands of the linear classifier (:mod:`theory.linear`).

- :mod:`simulate.linear.ode`        integrate the ODEs (``python -m simulate.ode``);
- :mod:`simulate.linear.mc`         Monte Carlo of the N-dimensional SGD and its run harness (``simulate.mc``);
- :mod:`simulate.linear.compare`    ODE against Monte Carlo (``simulate.compare``);
- :mod:`simulate.linear.protocol`   optimal budget schedules (``simulate.protocol``);
- :mod:`simulate.linear.scenarios`  the talk's scenarios (``simulate.scenarios``).
"""
