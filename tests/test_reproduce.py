"""The reproduction driver (empirical.reproduce) on a tiny real-MNIST run, CPU.

* under a --time-limit that leaves no time, nothing is trained or written and the call exits 75
  (unfinished, the convention of every command); the same command without the limit then finishes every
  row and writes the table;
* the table lists rows in the canonical order whatever the start order, with union <= per-threat <= clean;
* bad input exits with status 2.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from empirical import reproduce as RP  # noqa: E402

# Two rows on 64 images: one step of batch 64 with 1-step training attacks; 4 test images.
TINY = ["--dataset", "mnist", "--schemes", "SAT,Nat", "--test-limit", "4",
        "--extra=--train-limit 64 --batch-size 64 --epochs 1 --attack-steps 1"]


def test_time_limit_then_resume_writes_the_table(tmp_path, data_dir):
    common = [*TINY, "--data-dir", str(data_dir), "--runs", str(tmp_path / "runs")]
    out = tmp_path / "table.json"
    # 5 s: the driver keeps a margin of 10 s, so no run may start; exit 75 = unfinished
    assert RP.main([*common, "--time-limit", "5", "--out", str(out)]) == RP.UNFINISHED
    assert not out.exists()
    assert not any((tmp_path / "runs").glob("*/result.json"))
    assert RP.main([*common, "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert [r["row"] for r in table["rows"]] == ["Nat", "SAT"]  # canonical order, not the start order
    for r in table["rows"]:
        assert r["n_test"] == 4 and r["eval_strength"] == "eval" and r["eval_device"]
        assert r["union"] <= min(r["per_threat"].values()) <= max(r["per_threat"].values()) <= r["clean"]
        # every clean-correct example that is not robust was broken first by exactly one attack of the suite
        for t, acc in r["per_threat"].items():
            assert sum(r["broken_by_attack"][t].values()) == round((r["clean"] - acc) * r["n_test"])
    assert table["train_seconds_total"] == pytest.approx(sum(r["train_seconds"] for r in table["rows"]))
    assert table["provenance"]["git_sha"]


@pytest.mark.parametrize("bad", [["--time-limit", "-1"], ["--time-limit", "nan"], ["--schemes", "Nat,XYZ"],
                                 ["--jobs", "0"], ["--test-limit", "0"]])
def test_bad_input_exits_2(bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        RP.main(["--out", str(tmp_path / "t.json"), *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--" in err  # names the flag
