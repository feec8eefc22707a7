"""The reproduction driver (empirical.reproduce) on a tiny real-MNIST run, CPU.

* under a --time-limit that leaves no time, nothing is trained or written and the call exits 75
  (unfinished, the convention of every command); the same command without the limit then finishes every
  row and writes the table;
* the table lists rows in the canonical order whatever the start order, with union <= per-threat <= clean;
* bad input exits with status 2;
* --merge puts rows of separate calls into one table in the canonical order, keeps each row as written,
  names every merged file with its provenance, and refuses tables that are not one table's parts (other
  parameters, a row measured twice differently, stale or failed rows, run flags beside --merge).
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


def _row(name, union, train_s):
    """A row in the format of run_one (values made up to exercise the merge; no result is claimed)."""
    return {"key": name.lower(), "row": name, "clean": 0.9, "per_threat": {"linf": 0.5, "l1": 0.4, "l2": 0.6},
            "union": union, "average": 0.5, "n_test": 10, "union_se": (union * (1 - union) / 10) ** 0.5,
            "train_seconds": train_s, "eval_seconds": 2.0 * train_s, "wall_seconds_this_call": 0.5}


def _fake_table(rows, sha, **params):
    p = {"dataset": "mnist", "preset": "cpu-long", "test_limit": 10, **params}
    return {"note": "n", "rows": rows, "published_union": {}, "params": p,
            "provenance": {"params": p, "seeds": {"seed": 0}, "git_sha": sha}}


def test_merge_keeps_rows_and_names_every_file(tmp_path):
    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "m.json"
    a.write_text(json.dumps(_fake_table([_row("max", 0.2, 10.0), _row("Nat", 0.0, 1.0)], "aaa")))
    again = {**_row("Nat", 0.0, 1.0), "wall_seconds_this_call": 9.0}  # the same run read back by another call
    b.write_text(json.dumps(_fake_table([_row("SAT", 0.1, 3.0), again], "bbb")))
    assert RP.main(["--merge", str(a), str(b), "--out", str(out), "--quiet"]) == 0
    m = json.loads(out.read_text())
    assert [r["row"] for r in m["rows"]] == ["Nat", "max", "SAT"]  # the table's order
    assert m["rows"][1] == _row("max", 0.2, 10.0)  # rows as written
    assert m["train_seconds_total"] == 14.0 and m["eval_seconds_total"] == 28.0
    assert m["params"] == json.loads(a.read_text())["params"]
    merged = m["provenance"]["merged_from"]
    assert [f["file"] for f in merged] == [str(a), str(b)]
    assert [f["provenance"]["git_sha"] for f in merged] == ["aaa", "bbb"]
    assert [f["rows"] for f in merged] == [["max", "Nat"], ["SAT", "Nat"]]
    assert len(m["table_text"].splitlines()) == 4
    # an existing --out is kept without --overwrite; with it, a table merged into itself is unchanged
    with pytest.raises(SystemExit):
        RP.main(["--merge", str(out), "--out", str(out), "--quiet"])
    assert RP.main(["--merge", str(out), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert json.loads(out.read_text())["rows"] == m["rows"]


@pytest.mark.parametrize("case", ["params", "row differs", "stale", "failed row", "flag", "not json", "too large"])
def test_merge_refuses_what_is_not_one_table(case, tmp_path, capsys, monkeypatch):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_fake_table([_row("Nat", 0.0, 1.0)], "aaa")))
    tb = _fake_table([_row("SAT", 0.1, 3.0)], "bbb")
    extra = []
    if case == "params":
        tb = _fake_table([_row("SAT", 0.1, 3.0)], "bbb", test_limit=20)
    elif case == "row differs":
        tb["rows"].append(_row("Nat", 0.1, 1.0))
    elif case == "stale":
        tb["stale"] = "measured with the previous attacks"
    elif case == "failed row":
        tb["rows"].append({"row": "MSD", "error": "training exited with 1"})
    elif case == "flag":
        extra = ["--schemes", "Nat"]
    elif case == "too large":  # the limit lowered to the size of the first table: the second one is larger
        monkeypatch.setattr(RP, "MAX_TABLE_BYTES", len(a.read_bytes()))
        tb["note"] = "n" * 100
    b.write_text("{" if case == "not json" else json.dumps(tb))
    with pytest.raises(SystemExit) as exc:
        RP.main(["--merge", str(a), str(b), "--out", str(tmp_path / "m.json"), *extra])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("python -m empirical.reproduce: error: --merge")
    assert case != "too large" or "larger than" in last
    assert not (tmp_path / "m.json").exists()
