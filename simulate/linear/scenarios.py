"""The scenarios of the source talk (M. Straat, "Modelling adversarial training"), one source of truth.

Scenario 1: rho = 2, v1 = v2 = 1, eta_w = 0.04, eta_b = 0.2, prior 0.5; scenario 2: the same with prior 0.7.
Each is trained with standard training (eps = 0) and adversarial training (eps = 1); the adversarial error
S is evaluated at eps_test = 1 throughout.  N = 1000 in the talk's simulations.

    python -m simulate.scenarios        # the ODE table at alpha = 10, 50, 200
"""

from __future__ import annotations

import argparse

from theory.params import Params

from ..core.cli import ArgumentParser
from .ode import integrate
from ..core.cli import command

__all__ = ["TALK_SCENARIOS", "EPS_TEST", "REPORT_ALPHAS", "scenario_table", "main"]

_BASE = Params(rho=2.0, v1=1.0, v2=1.0, eta_w=0.04, eta_b=0.2)
TALK_SCENARIOS = {
    "scenario1-standard": _BASE.replace(prior=0.5, eps=0.0),
    "scenario1-adversarial": _BASE.replace(prior=0.5, eps=1.0),
    "scenario2-standard": _BASE.replace(prior=0.7, eps=0.0),
    "scenario2-adversarial": _BASE.replace(prior=0.7, eps=1.0),
}
EPS_TEST = 1.0
REPORT_ALPHAS = (10.0, 50.0, 200.0)
TALK_N = 1000


def scenario_table(alphas=REPORT_ALPHAS) -> list[dict]:
    rows = []
    for name, p in TALK_SCENARIOS.items():
        traj = integrate(p, [0.0, *alphas], eps_test=EPS_TEST)
        for a in alphas:
            rows.append({"scenario": name, **traj.at(a)})
    return rows


@command
def main(argv=None) -> int:
    ArgumentParser(prog="python -m simulate.scenarios", description=__doc__.split("\n\n")[0],
                   formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    print(f"{'scenario':24} {'alpha':>6} {'R':>9} {'b':>9} {'E':>8} {'S(eps=1)':>9}")
    for r in scenario_table():
        print(f"{r['scenario']:24} {r['alpha']:6g} {r['R']:9.5f} {r['b']:9.5f} {r['E']:8.5f} {r['S']:9.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
