"""The main command, python -m simulate.ode, called in-process."""

import csv
import json

import pytest

from simulate.ode import main


def test_main_prints_table_and_summary(capsys):
    assert main(["--rho", "2", "--eps", "1", "--alpha-max", "60"]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "fixed point" in out and "robustness curve" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("10 ", "50 "))]
    assert len(rows) == 2 and all(len(r) == 5 for r in rows)


@pytest.mark.parametrize("argv,name", [
    (["--rho", "0"], "--rho"),
    (["--rho", "-2"], "--rho"),
    (["--prior", "1.2"], "--prior"),
    (["--prior", "0"], "--prior"),
    (["--eps", "-1"], "--eps"),
    (["--v1", "-1"], "--v1"),
    (["--v2", "0"], "--v2"),
    (["--eps", "nan"], "--eps"),
    (["--rho", "inf"], "--rho"),
    (["--alpha-max", "-5"], "--alpha-max"),
    (["--eps-test", "-1"], "--eps-test"),
    (["--rho", "two"], "--rho"),
    (["--bogus"], "unrecognized arguments"),
    (["--out", "x.txt"], "--out"),
])
def test_invalid_input_gives_a_one_line_error_and_exit_2(argv, name, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and "Traceback" not in err


def test_csv_and_json_outputs_carry_the_trajectory_and_provenance(tmp_path):
    csv_path, json_path = tmp_path / "t.csv", tmp_path / "t.json"
    assert main(["--prior", "0.7", "--quiet", "--out", str(csv_path)]) == 0
    assert main(["--prior", "0.7", "--quiet", "--out", str(json_path)]) == 0
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["alpha", "R", "b", "E", "S"]
    alphas = [float(r["alpha"]) for r in rows]
    assert {10.0, 50.0, 200.0} <= set(alphas)
    side = json.loads((tmp_path / "t.csv.json").read_text())["provenance"]
    assert side["params"]["prior"] == 0.7 and "git_sha" in side and "versions" in side
    data = json.loads(json_path.read_text())
    assert data["trajectory"]["R"][-1] == pytest.approx(float(rows[-1]["R"]), abs=1e-15)
    assert data["provenance"]["params"]["prior"] == 0.7


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs the figures extra")
    png = tmp_path / "t.png"
    assert main(["--alpha-max", "20", "--quiet", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
