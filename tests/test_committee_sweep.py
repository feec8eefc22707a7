"""The committee engine of simulate.sweep against the single-point integration of simulate.committee."""

import numpy as np
import pytest

pytest.importorskip("xarray")


def test_committee_sweep_equals_single_points(tmp_path):
    """Grid K x eps (2 x 2, xor preset, eta_w 0.4, alpha 4 and 8): at every point E, S and max |R| of the sweep
    equal simulate.committee.integrate with the same parameters and options (the same deterministic computation,
    so to 1e-12), and plateau_E picks the first alpha with E below it."""
    from simulate.committee import integrate
    from simulate.sweep import main, open_result
    from theory.committee import CommitteeParams

    out = tmp_path / "sweep.nc"
    assert main(["--engine", "committee", "--preset", "xor", "--grid", "K=2,3", "--grid", "eps=0,0.5",
                 "--eta-w", "0.4", "--alphas", "4,8", "--eps-test", "0.5", "--quiet",
                 "--out", str(out)]) == 0
    ds = open_result(out)
    for K in (2, 3):
        for eps in (0.0, 0.5):
            for eta_w in (0.4,):
                p = CommitteeParams(preset="xor", K=K, eps=eps, eta_w=eta_w)
                tr = integrate(p, [0.0, 4.0, 8.0], eps_test=0.5)
                pt = ds.sel(K=K, eps=eps)
                R = tr.y[1:, [j for j, n in enumerate(tr.names) if n.startswith("R")]]
                for name, want in (("E", tr.E[1:]), ("S", tr.S[1:]), ("Rmax", np.max(np.abs(R), axis=1))):
                    assert np.max(np.abs(pt[name].values - want)) < 1e-12, (K, eps, eta_w, name)
                below = np.flatnonzero(tr.E[1:] < 0.4)
                assert (np.isnan(pt["alpha_plateau_end"].values) if below.size == 0
                        else pt["alpha_plateau_end"].values == [4.0, 8.0][below[0]])


def test_committee_sweep_rejects_bad_points(capsys):
    from simulate.sweep import main

    with pytest.raises(SystemExit) as exc:
        main(["--engine", "committee", "--grid", "K=0,2", "--alphas", "4", "--quiet"])
    assert exc.value.code == 2 and "K" in capsys.readouterr().err
