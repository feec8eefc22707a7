"""The online linear-erf bridge (empirical/online.py).

* On data drawn from the theory's Gaussian mixture (fresh examples), the online update of
  empirical.online reproduces the ODE of simulate.ode: replica mean of R within
  q * (standard error) + c/N (finite-size bias) of the ODE. With K replicas, (mean - ODE)/se follows
  Student's t with K - 1 degrees of freedom (normal replica values, sample standard deviation), so q is
  the two-sided t quantile with K - 1 = 7 degrees of freedom, Sidak-corrected over the 3 compared alphas
  of each test at family-wise level tolerances.ONLINE_FAMILYWISE = 1e-3: q = 6.50. The same test against
  the ODE of the other eps fails (measured z = 6 to 13: the check can fail).
* On MNIST 3 vs 7 the CLI writes JSON + CSV with provenance, estimates the mixture parameters the way
  the docstring says, and adversarial training lowers the adversarial error at eps.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats

from tests import tolerances as TOL

torch = pytest.importorskip("torch")

from empirical import online  # noqa: E402
from simulate.ode import integrate  # noqa: E402
from theory.params import Params  # noqa: E402

N, RHO, K = 500, 2.0, 8
M_COMPARED = 3  # alphas compared per test (CHECKED)
Q = float(stats.t.ppf(1 - 0.5 * -math.expm1(math.log1p(-TOL.ONLINE_FAMILYWISE) / M_COMPARED), K - 1))
ALPHAS = np.linspace(0.0, 10.0, 6)
CHECKED = slice(2, 5)  # alpha = 4, 6, 8: after the transient from the random initial direction


def _mixture(n: int, gen: torch.Generator):
    tau = torch.where(torch.rand(n, generator=gen) < 0.5, 1.0, -1.0).double()
    B = torch.zeros(N, dtype=torch.float64)
    B[0] = 1.0
    xi = tau[:, None] * (RHO / 2) * B + torch.randn(n, N, generator=gen, dtype=torch.float64)
    return xi, tau, B


@pytest.fixture(scope="module")
def replicas():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x_test, t_test, B = _mixture(1000, gen)
    out = {}
    for eps in (0.0, 0.5):
        R = []
        for seed in range(K):
            xi, tau, _ = _mixture(int(ALPHAS[-1] * N), gen)
            c = online.train_online(xi, tau, x_test, t_test, B, eps=eps, eps_test=0.5, eta_w=0.5, eta_b=0.5,
                                    erf_scale=1.0, alphas=ALPHAS, seed=seed, replace=False)
            assert np.allclose(c["alpha"], ALPHAS)
            R.append(c["R"])
        out[eps] = np.array(R)
    return out


def _ode_R(eps: float) -> np.ndarray:
    return integrate(Params(rho=RHO, eps=eps, eta_w=0.5, eta_b=0.5), ALPHAS, eps_test=0.5).R


def _gap(R: np.ndarray, ode: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = R.mean(0)[CHECKED]
    se = R.std(0, ddof=1)[CHECKED] / math.sqrt(R.shape[0])
    return np.abs(mean - ode[CHECKED]), Q * se + TOL.ONLINE_BIAS_C / N


@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_online_update_follows_the_ode(replicas, eps):
    assert 6.4 < Q < 6.6  # t quantile, 7 degrees of freedom, per-test level 1 - (1 - 1e-3)^(1/3)
    gap, tol = _gap(replicas[eps], _ode_R(eps))
    assert np.all(gap <= tol), f"eps={eps}: |R_sim - R_ode| = {gap} > tol {tol}"


def test_wrong_ode_is_caught(replicas):
    """Adversarial replicas against the standard-training ODE (and vice versa) fail the same test."""
    for eps, other in ((0.5, 0.0), (0.0, 0.5)):
        gap, tol = _gap(replicas[eps], _ode_R(other))
        assert np.any(gap > tol), f"eps={eps} vs ODE eps={other}: gap {gap} within {tol}"


def test_cli_on_mnist37(tmp_path, data_dir):
    out = tmp_path / "online"
    rc = online.main(["--eps", "4", "--alpha-max", "10", "--n-points", "3", "--seeds", "0", "--quiet",
                      "--data-dir", str(data_dir), "--out", str(out)])
    assert rc == 0
    res = json.loads(out.with_suffix(".json").read_text())
    est = res["estimated"]
    # Scaled so that the mean within-class variance per coordinate is 1 (by construction, float rounding).
    assert 0.5 * (est["v1"] + est["v2"]) == pytest.approx(1.0, rel=1e-9)
    assert est["N"] == 784 and 0.4 < est["prior"] < 0.6 and est["rho"] > 0
    assert res["provenance"]["git_sha"] and res["provenance"]["seeds"] == [0]
    runs = {r["eps"]: r for r in res["runs"]}
    assert set(runs) == {0.0, 4.0}
    # Adversarial training lowers the adversarial error at eps = 4 (scaled units) on the test split:
    # measured 0.88 (standard) vs 0.13 (adversarial) at alpha = 20, seed 0; asked here: a drop of half.
    assert runs[4.0]["S"][-1] < 0.5 * runs[0.0]["S"][-1]
    assert runs[0.0]["E"][-1] < 0.1  # a linear classifier separates 3 from 7 to a few percent
    assert set(res["ode"]) == {"per_coordinate/eps=0", "per_coordinate/eps=4", "along_B/eps=0", "along_B/eps=4"}
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    # the grid 0, 5, 10 of --n-points 3 plus the report alpha 1 (<= alpha_max) of the side-by-side table
    assert res["alphas"] == [0.0, 1.0, 5.0, 10.0]
    assert len(rows) == 2 * 4 and set(rows[0]) == {"eps", "seed", "alpha", "R", "b", "E", "S"}
    # the structured theory of the fitted mixture, per seed, beside the data at the report alphas
    assert [r["alpha"] for r in res["table"]] == [1.0, 5.0, 10.0] * 2
    assert all(0 <= r["E_theory"] <= 1 and 0 <= r["S_theory"] <= 1 for r in res["table"])


@pytest.mark.parametrize("bad", [["--eps", "-1"], ["--eta-w", "0"], ["--alpha-max", "nan"], ["--seeds", "a,b"],
                                 ["--n-points", "1"]])
def test_cli_bad_input(bad, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        online.main([*bad, "--out", str(tmp_path / "x")])
    assert exc.value.code == 2


@pytest.mark.parametrize("bad,word", [(["--classes", "3,3"], "classes"), (["--classes", "3"], "--classes"),
                                      (["--shrinkage", "foo"], "--shrinkage"), (["--mc-replicas", "1"], "--mc-replicas"),
                                      (["--train-limit", "2"], "at least 2 are needed")])
def test_cli_bad_structured_input(bad, word, capsys, tmp_path, data_dir):
    with pytest.raises(SystemExit) as exc:
        online.main([*bad, "--alpha-max", "2", "--n-points", "2", "--seeds", "0", "--quiet",
                     "--data-dir", str(data_dir), "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err
