"""The commands that can run for more than a few seconds show a progress bar on stderr, and ``--quiet``
silences them (stdout and stderr empty); ``simulate.mc_committee`` exits non-zero when its check fails.

Each command runs in-process at settings that take about a second; the bar is recognised by tqdm's
"NN%|" on stderr.
"""

from __future__ import annotations

import re

import pytest

BAR = re.compile(r"\d+%\|")


def _run(main, argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


CASES = {
    "simulate.committee": ("simulate.committee", ["--K", "1", "--alpha-max", "2", "--alpha-step", "1"]),
    "simulate.protocol": ("simulate.linear.protocol", ["--alpha-F", "2", "--segments", "2", "--no-mc"]),
    "simulate.tradeoff lp": ("simulate.tradeoffs.bounds", ["lp", "--d", "100", "--a", "2", "--p0", "0.9",
                                                           "--n-theta", "9", "--n-psi", "3", "--n-tau", "1"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_progress_on_stderr_and_quiet_silences_it(name, capsys):
    pytest.importorskip("tqdm")
    import importlib

    module, argv = CASES[name]
    main = importlib.import_module(module).main
    code, out, err = _run(main, argv, capsys)
    assert code == 0 and BAR.search(err), f"{name}: no progress bar on stderr: {err[-300:]!r}"
    assert out.strip(), f"{name}: no result on stdout"
    code, out, err = _run(main, argv + ["--quiet"], capsys)
    assert code == 0 and not out.strip() and not err.strip(), f"{name} --quiet printed: {out[-200:]!r} {err[-200:]!r}"


def test_figures_show_progress_and_quiet_silences_it(tmp_path, capsys):
    pytest.importorskip("tqdm")
    pytest.importorskip("matplotlib")
    from figures.__main__ import main

    argv = ["tradeoffs", "--quick", "--out", str(tmp_path)]
    code, out, err = _run(main, argv, capsys)
    assert code == 0 and BAR.search(err) and "tradeoffs" in out, (out, err[-300:])
    code, out, err = _run(main, argv + ["--quiet"], capsys)
    assert code == 0 and not out.strip() and not err.strip(), (out, err)


def _fake_tables(passed: bool):
    def physics_tables(N, replicas, seed, n_test, progress=True):
        rows = [{"case": "talk-K2-standard", "alpha": 10.0, "quantity": "E", "ode": 0.3, "mc": 0.35, "se": 0.001,
                 "z": 50.0, "N": N, "replicas": replicas, "mc_wall_s": 0.0}]
        verdicts = {"talk-K2-standard": {"passed": passed, "q": 3.0, "comparisons": 1,
                                         "failures": [] if passed else ["E at alpha 10: z = 50"], "max_abs_z": 50.0}}
        return rows, verdicts
    return physics_tables


@pytest.mark.parametrize("N, replicas, size_named", [(40, 2, True), (1000, 16, False)])
def test_mc_committee_exits_1_on_a_failed_check(N, replicas, size_named, monkeypatch, capsys):
    """The verdicts are injected (the tables take minutes); what is tested is the command's exit status,
    its message on stderr (naming the size as the likely cause only when the size is below the calibrated
    one) and --quiet."""
    from simulate.committee import mc as mc_committee

    monkeypatch.setattr(mc_committee, "physics_tables", _fake_tables(passed=False))
    argv = ["--N", str(N), "--replicas", str(replicas), "--quiet"]
    code, out, err = _run(mc_committee.main, argv, capsys)
    assert code == 1 and not out.strip(), (code, out)
    assert "FAILED" in err and len(err.strip().splitlines()) == 1, err
    assert ("size is the likely cause" in err) == size_named, err
    code, out, err = _run(mc_committee.main, argv[:-1], capsys)
    assert code == 1 and "FAILED" in out and "z" in out
    monkeypatch.setattr(mc_committee, "physics_tables", _fake_tables(passed=True))
    code, out, err = _run(mc_committee.main, argv, capsys)
    assert code == 0 and not out.strip() and not err.strip(), (out, err)


def test_evaluate_shows_progress_and_quiet_silences_it(tmp_path, data_dir, capsys):
    torch = pytest.importorskip("torch")
    from empirical import evaluate
    from empirical.models import MnistCNN

    weights = tmp_path / "m.pt"
    torch.save(MnistCNN().state_dict(), weights)
    threads = torch.get_num_threads()
    argv = ["--weights", str(weights), "--data-dir", str(data_dir), "--test-limit", "4", "--threats", "linf",
            "--strength", "train", "--threads", "1"]
    try:
        code, out, err = _run(evaluate.main, argv, capsys)
        assert code == 0 and BAR.search(err) and "union" in out, (out, err[-300:])
        code, out, err = _run(evaluate.main, argv + ["--quiet"], capsys)
        assert code == 0 and not out.strip() and not err.strip(), (out, err)
    finally:
        torch.set_num_threads(threads)
