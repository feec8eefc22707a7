"""empirical.budget_curves: accuracy versus budget, checked against the exact robust accuracy of a linear
classifier.

For a two-class linear score s(x) = w.x + b (the 3-versus-7 classifier below, other classes switched off
by a bias of -1000), the worst case over an l_inf ball intersected with the pixel box is a closed form
(coordinate i moves to max(x_i - eps, 0) or min(x_i + eps, 1), against the sign of tau w_i), and over an
l_1 ball intersected with the box a greedy fractional knapsack (spend the budget on the coordinates of
largest |w_i| up to their box face).  Neither shares code with the attacks.  An attack returns points of
the set, so its accuracy can never fall below the exact one; a linear margin has no local optimum, so
PGD reaches the l_inf vertex exactly (tolerance 0 examples) and SLIDE's sparse l_1 steps come within
``tolerances.L1_ATTACK_GAP`` of the exact l_1 accuracy.  A budget_curve that ignores its budgets fails
the same comparison.
"""

import json

import numpy as np
import pytest

from tests import tolerances as TOL

torch = pytest.importorskip("torch", reason="the empirical part needs the empirical extra (torch)")

LINF = [0.02, 0.05, 0.1, 0.15]
L1 = [2.0, 5.0, 10.0]


@pytest.fixture(scope="module")
def linear_37(data_dir):
    from empirical.data import load_mnist

    torch.set_num_threads(1)
    xt, yt = load_mnist(data_dir, "train", limit=2000)
    x, y = load_mnist(data_dir, "test", limit=400)
    keep = (y == 3) | (y == 7)
    x, y = x[keep][:60], y[keep][:60]
    m3, m7 = xt[yt == 3].flatten(1).mean(0).double(), xt[yt == 7].flatten(1).mean(0).double()
    w = m3 - m7
    b = -float(w @ (m3 + m7)) / 2
    lin = torch.nn.Linear(784, 10)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.fill_(-1e3)
        lin.weight[3], lin.weight[7] = (w / 2).float(), (-w / 2).float()
        lin.bias[3], lin.bias[7] = b / 2, -b / 2
    return torch.nn.Sequential(torch.nn.Flatten(), lin).eval(), x, y, w.numpy(), b


def _margins(x, y, w, b):
    X = x.flatten(1).double().numpy()
    tau = np.where(y.numpy() == 3, 1.0, -1.0)
    return X, tau, tau[:, None] * w[None, :], tau * (X @ w + b)


def exact_linf(x, y, w, b, eps):
    """Fraction of examples whose margin stays > 0 for every x' with |x' - x|_inf <= eps, 0 <= x' <= 1."""
    X, tau, g, _ = _margins(x, y, w, b)
    worst = np.where(g > 0, np.maximum(X - eps, 0.0), np.minimum(X + eps, 1.0))
    return float(np.mean(tau * (worst @ w + b) > 0))


def exact_l1(x, y, w, b, eps):
    """The same over |x' - x|_1 <= eps: greedy on |w_i| (exact for a linear objective, fractional knapsack)."""
    X, tau, g, margin = _margins(x, y, w, b)
    robust = []
    for i in range(len(X)):
        room = np.where(g[i] > 0, X[i], 1.0 - X[i])  # distance to the box face the attacker pushes towards
        gain = np.abs(g[i])
        order = np.argsort(-gain)
        spend = np.minimum(room[order], np.maximum(0.0, eps - np.concatenate([[0.0], np.cumsum(room[order])[:-1]])))
        robust.append(margin[i] - float(spend @ gain[order]) > 0)
    return float(np.mean(robust))


def _gaps(curve, exact):
    """attack accuracy - exact accuracy at every budget (budget 0 included)."""
    return np.asarray(curve["accuracy"]) - np.asarray(exact)


def _curves(linear_37, budget_curve):
    model, x, y, w, b = linear_37
    linf = budget_curve(model, x, y, "linf", LINF, "mnist", "train", 0, 60)
    # the APGD pair (the 'apgd' level): the exact l_1 optimum is within TOL.L1_ATTACK_GAP of it already; FAB-T
    # and Square of the full suite are checked against closed forms in test_attacks_fab_square.py
    l1 = budget_curve(model, x, y, "l1", L1, "mnist", "apgd", 0, 60)
    ex_linf = [exact_linf(x, y, w, b, e) for e in [0.0, *LINF]]
    ex_l1 = [exact_l1(x, y, w, b, e) for e in [0.0, *L1]]
    return linf, l1, ex_linf, ex_l1


def _linf_agrees(linear_37, budget_curve) -> bool:
    """The l_inf half of the comparison below (the l_1 half costs 15 s more and fails the same way)."""
    model, x, y, w, b = linear_37
    linf = budget_curve(model, x, y, "linf", LINF, "mnist", "train", 0, 60)
    return bool(np.all(np.abs(_gaps(linf, [exact_linf(x, y, w, b, e) for e in [0.0, *LINF]])) <= 1e-6))


def test_budget_curve_matches_the_exact_robust_accuracy(linear_37):
    from empirical.budget_curves import budget_curve

    linf, l1, ex_linf, ex_l1 = _curves(linear_37, budget_curve)
    assert linf["eps"] == [0.0, *LINF] and l1["eps"] == [0.0, *L1]
    assert ex_linf[-1] < ex_linf[0] - 0.2, "the budgets must matter, or the comparison is vacuous"
    assert np.all(np.abs(_gaps(linf, ex_linf)) <= 1e-6), TOL.report("l_inf accuracy", linf["accuracy"], ex_linf)
    g = _gaps(l1, ex_l1)
    assert np.all(g >= -1e-6), TOL.report("l_1 accuracy below the exact minimum", l1["accuracy"], ex_l1)
    assert np.all(g <= TOL.L1_ATTACK_GAP), TOL.report("l_1 accuracy", l1["accuracy"], ex_l1)


def test_a_budget_curve_that_ignores_its_budgets_fails(linear_37, monkeypatch):
    import empirical.budget_curves as BC

    real = BC.get_threat
    assert _linf_agrees(linear_37, BC.budget_curve)
    monkeypatch.setattr(BC, "get_threat", lambda name, dataset="mnist", eps=None: real(name, dataset))
    assert not _linf_agrees(linear_37, BC.budget_curve)


def test_budget_curves_cli(tmp_path, data_dir):
    """The CLI's wiring: requested budgets per threat, one row per run folder, clean accuracy at budget 0
    equal to the model's own argmax accuracy on the same images, provenance."""
    from empirical.budget_curves import main
    from empirical.data import load_mnist
    from empirical.models import MnistCNN

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = MnistCNN().eval()
    (tmp_path / "runs" / "natural").mkdir(parents=True)
    torch.save(model.state_dict(), tmp_path / "runs" / "natural" / "model.pt")
    out = tmp_path / "curves.json"
    assert main(["--runs", str(tmp_path / "runs"), "--data-dir", str(data_dir), "--test-limit", "8",
                 "--threats", "linf,l2", "--eps", "linf=0.1,linf=0.3,l2=1", "--strength", "train",
                 "--out", str(out), "--quiet"]) == 0
    d = json.loads(out.read_text())
    assert set(d["curves"]) == {"Nat"}
    assert d["curves"]["Nat"]["linf"]["eps"] == [0.0, 0.1, 0.3] and d["curves"]["Nat"]["l2"]["eps"] == [0.0, 1.0]
    x, y = load_mnist(data_dir, "test", limit=8)
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    assert d["curves"]["Nat"]["linf"]["accuracy"][0] == pytest.approx(clean, abs=1e-9)
    assert d["params"]["budgets"] == {"linf": [0.1, 0.3], "l2": [1.0]} and "git_sha" in d["provenance"]


def test_budget_curves_rejects_bad_input(tmp_path, capsys):
    from empirical.budget_curves import main

    with pytest.raises(SystemExit) as exc:
        main(["--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2
    assert "--runs" in capsys.readouterr().err


def _two_untrained_runs(tmp_path) -> None:
    """runs/natural and runs/adv_linf under ``tmp_path``: two differently seeded untrained CNNs."""
    from empirical.models import MnistCNN

    torch.set_num_threads(1)
    for i, name in enumerate(("natural", "adv_linf")):
        torch.manual_seed(i)
        (tmp_path / "runs" / name).mkdir(parents=True)
        torch.save(MnistCNN().eval().state_dict(), tmp_path / "runs" / name / "model.pt")


def test_budget_curves_resume_after_an_interruption(tmp_path, data_dir, monkeypatch):
    """A run stopped after its first model resumes from ``<out>.part``: the finished model's curves are not
    computed again, and the result equals an uninterrupted run's (same seed, same attacks)."""
    import empirical.budget_curves as BC

    _two_untrained_runs(tmp_path)
    argv = ["--runs", str(tmp_path / "runs"), "--data-dir", str(data_dir), "--test-limit", "6", "--threats",
            "linf", "--eps", "linf=0.1,linf=0.3", "--strength", "train", "--quiet", "--out"]
    assert BC.main([*argv, str(tmp_path / "whole.json")]) == 0

    real, calls = BC.budget_curve, []

    def stop_at_the_second_model(model, *a, **kw):
        calls.append(model)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(model, *a, **kw)

    out = tmp_path / "resumed.json"
    monkeypatch.setattr(BC, "budget_curve", stop_at_the_second_model)
    from simulate.cli import UNFINISHED

    assert BC.main([*argv, str(out)]) == UNFINISHED
    assert not out.exists() and (tmp_path / "resumed.json.part").is_file()
    calls.clear()
    monkeypatch.setattr(BC, "budget_curve", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    assert BC.main([*argv, str(out)]) == 0
    assert len(calls) == 1, "the finished model was attacked again"
    assert not (tmp_path / "resumed.json.part").exists()
    whole, resumed = json.loads((tmp_path / "whole.json").read_text()), json.loads(out.read_text())
    assert resumed["curves"] == whole["curves"] and resumed["params"]["nested"] is True


def test_nested_budgets_attack_only_what_the_smaller_budget_left(linear_37, monkeypatch):
    """With ascending budgets each attack runs on the examples robust at the budget before (counted), and the
    curve equals the exact one (the nested sets of a linear model), as in the test above."""
    import empirical.budget_curves as BC

    model, x, y, w, b = linear_37
    sizes, real = [], BC.robustness_matrix
    monkeypatch.setattr(BC, "robustness_matrix", lambda m, xs, *a, **kw: sizes.append(len(xs)) or real(m, xs, *a, **kw))
    c = BC.budget_curve(model, x, y, "linf", LINF, "mnist", "train", 0, 60)
    exact = [exact_linf(x, y, w, b, e) for e in [0.0, *LINF]]
    assert np.all(np.abs(np.asarray(c["accuracy"]) - exact) <= 1e-6), TOL.report("l_inf", c["accuracy"], exact)
    assert sizes == [round(a * len(x)) for a in c["accuracy"][:-1]], sizes


def test_budget_curves_in_worker_processes_equal_the_sequential_run(tmp_path, data_dir):
    """``--jobs 2`` computes the (model, threat) curves in two spawned processes, in whatever order they end;
    each curve is seeded by --seed alone, so the file's curves equal the sequential run's exactly, in the same
    row and threat order."""
    import empirical.budget_curves as BC

    _two_untrained_runs(tmp_path)
    argv = ["--runs", str(tmp_path / "runs"), "--data-dir", str(data_dir), "--test-limit", "6", "--threats",
            "linf,l2", "--eps", "linf=0.1,linf=0.3,l2=1", "--strength", "train", "--threads", "1", "--quiet",
            "--out"]
    assert BC.main([*argv, str(tmp_path / "one.json")]) == 0
    assert BC.main(["--jobs", "2", *argv, str(tmp_path / "two.json")]) == 0
    one, two = json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two.json").read_text())
    assert json.dumps(two["curves"]) == json.dumps(one["curves"])
    assert not (tmp_path / "two.json.part").exists()
