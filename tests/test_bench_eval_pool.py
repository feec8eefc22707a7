"""bench/eval_vs_autoattack.py merge: runs over consecutive image ranges are pooled into one run (robust flags and
the attack log concatenated in image order, CPU summed); overlapping or gapped ranges are not. Synthetic run
files, no attack runs (milliseconds)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("bench_eval_vs_autoattack", ROOT / "bench" / "eval_vs_autoattack.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(suite, offset, robust, first=None):
    rec = {"eps": 2.0, "attack": suite, "accuracy": sum(robust) / len(robust), "wall_seconds": 1.0,
           "cpu_seconds": 10.0, "all_points_in_set": True, "robust": robust}
    if first is not None:
        rec.update({"attacks": ["apgd-ce", "apgd-t", "fab-t", "square"], "first_broken_by": first,
                    "broken_by_attack": {a: first.count(a) for a in ("apgd-ce", "apgd-t", "fab-t", "square")},
                    "cpu_seconds_per_attack": {"apgd-ce": 1.0, "apgd-t": 2.0, "fab-t": 3.0, "square": 4.0}})
    return {"suite": suite, "model": "m.pt", "n": len(robust), "offset": offset, "clean": 1.0,
            "threats": {"l2": rec}, "provenance": {"params": {"seed": 0}, "git_sha": "abc"}}


def test_consecutive_ranges_pool_in_image_order(tmp_path):
    bench = _bench()
    files = []
    # the second range is passed first: pooling orders by offset
    for name, run in [("b", _run("new", 3, [0, 1], ["square", "robust"])),
                      ("a", _run("new", 0, [1, 1, 0], ["robust", "robust", "apgd-ce"])),
                      ("r1", _run("ref", 0, [1, 0, 0])), ("r2", _run("ref", 3, [0, 1]))]:
        (tmp_path / f"{name}.json").write_text(json.dumps(run))
        files.append(str(tmp_path / f"{name}.json"))
    assert bench.main(["merge", *files, "--out", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    new = m["rows"]["new"]["l2"]
    assert new["n"] == 5 and abs(new["accuracy_mean"] - 3 / 5) < 1e-12
    assert new["cpu_seconds_mean"] == 20.0
    assert new["broken_by_attack"]["0"] == {"apgd-ce": 1, "apgd-t": 0, "fab-t": 0, "square": 1}
    assert m["per_example"]["new/seed0/l2"]["robust"] == [1, 1, 0, 0, 1]
    assert m["per_example"]["new/seed0/l2"]["example_index"] == [0, 1, 2, 3, 4]
    # the APGD-pair prefix: robust unless APGD-CE/-T broke it (the Square break counts as robust there)
    assert m["per_example"]["apgd (prefix of new)/seed0/l2"]["robust"] == [1, 1, 0, 1, 1]
    # per example: new leaves image 1 robust where ref breaks it, ref leaves none that new breaks
    assert m["new_vs_ref"]["l2"]["robust_new_broken_by_ref"] == {"0": 1}
    assert m["new_vs_ref"]["l2"]["robust_ref_broken_by_new"] == {"0": 0}


def test_gapped_ranges_stay_separate():
    bench = _bench()
    runs = [(0, "a", _run("new", 0, [1, 0]), None), (5, "b", _run("new", 5, [1]), None)]
    runs = [(o, f, d, d["threats"]["l2"]) for o, f, d, _ in runs]
    assert len(bench._pooled(runs)) == 2
    runs[1] = (2, "b", {**runs[1][2], "offset": 2}, runs[1][3])
    assert len(bench._pooled(runs)) == 1


def test_a_partial_run_counts_only_with_include_partial(tmp_path):
    bench = _bench()
    a = _run("new", 0, [1, 0])
    b = _run("new", 2, [1, 1])
    b["n"] = 6  # planned 6 images, stopped after 2
    b["threats"]["l2"].update({"partial": True, "n_done": 2})
    for name, run in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps(run))
    files = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    assert bench.main(["merge", *files, "--out", str(tmp_path / "m1.json")]) == 0
    assert json.loads((tmp_path / "m1.json").read_text())["rows"]["new"]["l2"]["n"] == 2
    assert bench.main(["merge", *files, "--include-partial", "--out", str(tmp_path / "m2.json")]) == 0
    row = json.loads((tmp_path / "m2.json").read_text())["rows"]["new"]["l2"]
    assert row["n"] == 4 and abs(row["accuracy_mean"] - 0.75) < 1e-12


def test_an_existing_out_is_kept_unless_overwrite(tmp_path, capsys):
    """run and merge refuse an existing --out (one line, exit 2, file untouched); merge --overwrite replaces it."""
    import pytest

    bench = _bench()
    (tmp_path / "a.json").write_text(json.dumps(_run("new", 0, [1, 0])))
    out = tmp_path / "m.json"
    out.write_text("keep")
    for argv in (["run", "--suite", "new", "--model", "m.pt", "--out", str(out)],
                 ["merge", str(tmp_path / "a.json"), "--out", str(out)]):
        with pytest.raises(SystemExit) as e:
            bench.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "--overwrite" in err and err.count("\n") == 1
        assert out.read_text() == "keep"
    assert bench.main(["merge", str(tmp_path / "a.json"), "--out", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["rows"]["new"]["l2"]["n"] == 2


def test_a_partial_run_has_the_clean_accuracy_of_its_finished_images(tmp_path):
    """A file's 'clean' is over all its planned images; a partial record pools with the clean accuracy of the
    images it finished (from the per-example flags), or None where the file has no flags."""
    bench = _bench()
    a = _run("new", 0, [1, 0])
    b = _run("new", 2, [1, 0])
    b.update({"n": 4, "clean": 0.5, "clean_correct": [1, 1, 0, 0]})  # finished 2 of 4, both clean-correct
    b["threats"]["l2"].update({"partial": True, "n_done": 2})
    for name, run in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps(run))
    files = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    assert bench.main(["merge", *files, "--include-partial", "--out", str(tmp_path / "m1.json")]) == 0
    row = json.loads((tmp_path / "m1.json").read_text())["rows"]["new"]["l2"]
    assert row["n"] == 4 and row["clean_on_these_images"] == 1.0
    del b["clean_correct"]
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert bench.main(["merge", *files, "--include-partial", "--out", str(tmp_path / "m2.json")]) == 0
    assert json.loads((tmp_path / "m2.json").read_text())["rows"]["new"]["l2"]["clean_on_these_images"] is None
