"""python -m figures all --quick, and the plotted data against the theory functions."""

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="figures need the figures extra (matplotlib)")

from figures.__main__ import main  # noqa: E402
from figures.core import REGISTRY  # noqa: E402
from simulate.ode import integrate  # noqa: E402
from simulate.scenarios import TALK_SCENARIOS  # noqa: E402
from theory import Params, adversarial_error, best_linear_adversarial_error, drift  # noqa: E402


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    assert main(["all", "--quick", "--out", str(out), "--quiet"]) == 0
    return out / "quick"


def test_all_quick_makes_nonempty_images(quick_out, capsys):
    made = {p.stem for p in quick_out.glob("*.png")}
    assert {"scenarios", "robustness", "phase", "tradeoffs", "finite_size", "mnist_bridge"} <= made
    for name in made:
        png = quick_out / f"{name}.png"
        assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
        assert not (quick_out / f"{name}.pdf").exists(), "the quick pass writes PNG only"
        # a supplement (NAME_suffix.png) shares the data sidecar of its figure NAME
        figure = max((n for n in REGISTRY if name == n or name.startswith(n + "_")), key=len)
        side = json.loads((quick_out / f"{figure}.json").read_text())
        assert "git_sha" in side["provenance"] and side["key"]


def test_a_full_pass_writes_png_and_pdf(tmp_path):
    import matplotlib.pyplot as plt

    from figures.core import save_figure_files

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = save_figure_files(fig, "line", tmp_path)
    assert [p.name for p in paths] == ["line.png", "line.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_cached_data_are_reused(quick_out, capsys):
    assert main(["robustness", "--quick", "--out", str(quick_out.parent)]) == 0
    assert "reused data" in capsys.readouterr().out


def _data(quick_out, name):
    with np.load(quick_out / f"{name}.npz") as npz:
        return {k: npz[k] for k in npz.files}


def test_scenario_curves_equal_the_ode(quick_out):
    d = _data(quick_out, "scenarios")
    for name, p in TALK_SCENARIOS.items():
        traj = integrate(p, d["alpha"], eps_test=1.0)
        for q in ("R", "b", "E", "S"):
            np.testing.assert_allclose(d[f"{name}/{q}"], getattr(traj, q), rtol=0, atol=1e-12)


def test_robustness_curves_equal_the_theory(quick_out):
    d = _data(quick_out, "robustness")
    p = TALK_SCENARIOS["scenario2-adversarial"]
    traj = integrate(p, [0.0, 200.0])
    np.testing.assert_allclose(d["scenario2-adversarial/S"], adversarial_error(traj.R[-1], traj.b[-1], d["eps"], p),
                               atol=1e-12)
    best = [best_linear_adversarial_error(float(e), Params(prior=0.7))[0] for e in d["eps"]]
    np.testing.assert_allclose(d["prior0.7/best"], best, atol=1e-12)


def test_phase_flow_equals_the_drift(quick_out):
    d = _data(quick_out, "phase")
    RR, BB = np.meshgrid(d["R_grid"], d["b_grid"])
    p = Params(prior=0.7)
    dR, db = drift(RR, BB, rho=p.rho, prior=p.prior, v1=p.v1, v2=p.v2, eta_w=p.eta_w, eta_b=p.eta_b, eps=p.eps)
    np.testing.assert_allclose(d["v0/dR"], dR, atol=1e-14)
    np.testing.assert_allclose(d["v0/db"], db, atol=1e-14)


def test_unknown_figure_is_a_clean_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["nonsense"])
    assert exc.value.code == 2


def test_tradeoff_curves_equal_the_theory(quick_out):
    from theory.tradeoff import Threat
    from theory.tradeoff_lp import LinearClassifier, LpModel, affine_accuracy, union_accuracy

    d = _data(quick_out, "tradeoffs")
    model = LpModel(d=200, a=2.0, p0=0.95)
    t_inf, t_1 = Threat("linf", 2 * model.eta), Threat("l1", 2.0)
    k = len(d["theta"]) // 3
    clf = LinearClassifier.symmetric(200, np.cos(d["theta"][k]), np.sin(d["theta"][k]), 0.0)
    assert d["mix_union"][k] == pytest.approx(union_accuracy(model, clf, [t_inf, t_1]), abs=1e-12)
    mixed = LinearClassifier.symmetric(200, np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0)
    np.testing.assert_allclose(d["affine_mixed"], affine_accuracy(model, mixed, t_inf, t_1, d["beta"]), atol=1e-12)
    assert np.all(d["affine_mixed"] >= float(d["union_mixed"]) - 1e-12)


def test_finite_size_data_equal_the_simulation(quick_out):
    pytest.importorskip("numba", reason="the Monte Carlo needs the mc extra")
    from figures.finite_size import finite_size_params
    from simulate.mc import run_mc

    d = _data(quick_out, "finite_size")
    params = finite_size_params(True)
    p = TALK_SCENARIOS[params["scenario"]]
    ode = integrate(p, d["alpha"], eps_test=1.0)
    np.testing.assert_allclose(d["ode_S"], ode.S, atol=1e-12)
    res = run_mc(p, N=params["Ns"][0], replicas=params["replicas"], alphas=d["alpha"], seed=params["seed"],
                 engine=params["engine"], eps_test=1.0, progress=False)
    np.testing.assert_allclose(d["dev_R"][0], res.mean("R") - ode.R, atol=1e-12)
    np.testing.assert_allclose(d["spread_b"][0], res.std("b"), atol=1e-12)


def test_mnist_bridge_ode_curves_equal_the_theory(quick_out):
    import json

    from figures.mnist_bridge import RESULTS

    if not RESULTS.exists():
        pytest.skip(f"{RESULTS} not present (written by python -m empirical.online)")
    d = _data(quick_out, "mnist_bridge")
    res = json.loads(RESULTS.read_text())
    est, rp = res["estimated"], res["params"]
    eps = float(d["eps_values"][-1])
    p = Params(rho=est["rho"], prior=est["prior"], v1=est["v1_along_B"], v2=est["v2_along_B"], eta_w=rp["eta_w"],
               eta_b=rp["eta_b"], eps=eps, erf_scale=rp["erf_scale"])
    traj = integrate(p, d[f"eps{eps:g}/ode_alpha"], eps_test=rp["eps_test"])
    np.testing.assert_allclose(d[f"eps{eps:g}/ode_along_B_S"], traj.S, atol=1e-12)


def test_empirical_figure_reads_result_tables(tmp_path, monkeypatch):
    """The plumbing of figure 7 on a small table in the format of empirical.reproduce (values made up here
    only to exercise the reader and the plot; no result of the project is claimed)."""
    import json

    import figures.empirical_results as er
    from figures.core import run_figure

    table = {"note": "test table", "params": {"dataset": "mnist", "eval_limit": 10},
             "published_union": {"max": {"union": 0.5, "source": "paper"}},
             "rows": [{"row": "Nat", "clean": 0.9, "per_threat": {"linf": 0.0, "l1": 0.1, "l2": 0.2}, "union": 0.0,
                       "average": 0.1},
                      {"row": "max", "clean": 0.8, "per_threat": {"linf": 0.4, "l1": 0.3, "l2": 0.5}, "union": 0.25,
                       "average": 0.4, "budget_curves": {"linf": {"eps": [0.0, 0.3], "accuracy": [0.8, 0.4]}}},
                      {"row": "MSD", "error": "training exited with 1"}],
             "provenance": {"created": "now"}}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "mnist_test_table.json").write_text(json.dumps(table))
    stale = {**table, "stale": "measured with the previous attacks"}
    (tmp_path / "results" / "mnist_old_table.json").write_text(json.dumps(stale))
    monkeypatch.setattr(er, "RESULTS_DIR", tmp_path / "results")
    paths = run_figure("empirical", quick=True, out_dir=tmp_path / "out", log=lambda s: None)
    assert all(p.stat().st_size > 5000 for p in paths)
    with np.load(tmp_path / "out" / "quick" / "empirical.npz") as npz:
        assert list(npz["t0/rows"]) == ["Nat", "max"]
        np.testing.assert_allclose(npz["t0/acc"][1], [0.8, 0.4, 0.3, 0.5, 0.25, 0.4])
        np.testing.assert_allclose(npz["t0/curve/max/linf/acc"], [0.8, 0.4])
        assert int(npz["n_tables"]) == 1 and "t1/rows" not in npz.files  # the stale table is not drawn
        assert [s.split(" ")[0] for s in npz["skipped"]] == ["mnist_old_table.json"]


def test_readme_redraws_every_image_in_docs():
    """`python -m figures readme` covers every PNG in docs/img and every image the README and docs show."""
    import re
    from pathlib import Path

    from figures.__main__ import README_FIGURES, _register_optional

    _register_optional()
    root = Path(__file__).resolve().parent.parent
    shown = set()
    for md in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        shown |= set(re.findall(r"img/([\w-]+)\.png", md.read_text()))
    in_docs = {p.stem for p in (root / "docs" / "img").glob("*.png")}
    assert shown <= set(README_FIGURES) | {n for n in shown if n.endswith("_supplement")}, shown - set(README_FIGURES)
    assert in_docs <= {*README_FIGURES, *(f"{n}_supplement" for n in README_FIGURES)}, in_docs
    assert set(README_FIGURES) <= set(REGISTRY)
