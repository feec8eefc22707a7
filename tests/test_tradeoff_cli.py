"""The command python -m simulate.tradeoff, called in-process."""

import json

import pytest

from simulate.tradeoff import main

SMALL = ["--n-theta", "61", "--n-psi", "31"]


def test_lp_table_and_json(tmp_path, capsys):
    out = tmp_path / "lp.json"
    assert main(["lp", "--d", "200", "--a", "1", "2", "--p0", "0.95", *SMALL, "--n-tau", "2", "--clf", "1", "1", "0",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "bound" in text and len([ln for ln in text.splitlines() if not ln.startswith("#")]) == 2
    data = json.loads(out.read_text())
    assert data["provenance"]["git_sha"] and data["provenance"]["params"]["d"] == 200
    rows = data["rows"]["table"]
    assert [r["a"] for r in rows] == [1.0, 2.0]
    assert all(r["coupling_bound"] == 1.0 and r["best_sum"] <= 1.0 + 1e-12 for r in rows)
    assert set(data["rows"]["classifier"][0]["affine_linf_l1"]) == {"0", "0.25", "0.5", "0.75", "1"}


def test_ring_and_bridge(capsys, tmp_path):
    assert main(["ring", "--d", "100", "--a", "2", "--p0", "0.9", "--t", "1", *SMALL]) == 0
    assert "rotation-translation" in capsys.readouterr().out
    out = tmp_path / "bridge.json"
    assert main(["bridge", "--alpha", "5", "--eps", "0.5", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "S_inf(al)" in text
    rows = json.loads(out.read_text())["rows"]
    assert [r["alpha"] for r in rows] == [0.0, 5.0]


@pytest.mark.parametrize("argv, word", [
    (["lp", "--p0", "1.5"], "p0"), (["lp", "--a", "-1"], "--a: a = -1"), (["lp", "--eps-1", "-2"], "--eps-1"),
    (["lp", "--d", "0"], "--d"), (["ring", "--d", "7"], "even"), (["ring", "--t", "-1"], "--t"),
    (["bridge", "--rho", "-1"], "rho"), (["lp", "--n-theta", "2"], "n-theta"),
])
def test_bad_input_exits_2_with_one_line(argv, word, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err
