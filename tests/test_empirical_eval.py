"""Union evaluation: the per-example x per-threat matrix, its summary, the CLI, and the gradient-masking
self-checks."""

import json
import warnings

import pytest

torch = pytest.importorskip("torch")

from empirical.evaluate import main, robustness_matrix, summarize  # noqa: E402
from empirical.models import MnistCNN, SmallMnistCNN  # noqa: E402
from empirical.gradient_masking import GradientMaskingWarning, gradient_masking_warnings  # noqa: E402
from empirical.threats import get_threat  # noqa: E402

torch.set_num_threads(1)


def _tiny_cnn(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 14 * 14, 10)).eval()


def test_summarize_by_hand():
    clean = torch.tensor([1, 1, 1, 0], dtype=torch.bool)
    M = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1]], dtype=torch.bool)  # last row: clean wrong -> not robust
    s = summarize(clean, M, ["a", "b"])
    assert s["clean"] == 0.75 and s["per_threat"] == {"a": 0.5, "b": 0.5}
    assert s["union"] == 0.25 and s["average"] == 0.5
    with pytest.raises(ValueError, match="does not match"):
        summarize(clean, M, ["a"])


def test_union_accuracy_is_at_most_every_single_threat(data_dir):
    from empirical.data import load_mnist

    x, y = load_mnist(data_dir, "test", limit=40)
    # A model that is right on most clean points but not trivially broken: a few natural-training steps.
    model = _tiny_cnn(0)
    xt, yt = load_mnist(data_dir, "train", limit=512)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    model.eval()
    names = ["linf", "l2", "l1", "rt"]
    threats = [get_threat("linf", eps=0.05), get_threat("l2", eps=0.5), get_threat("l1", eps=2.0),
               get_threat("rt", eps=(10.0, 1))]
    M = robustness_matrix(model, x, y, threats, strength="train", batch_size=16,
                          generator=torch.Generator().manual_seed(0))
    assert M.shape == (40, 4) and M.dtype == torch.bool
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    s = summarize(clean, M, names)
    assert s["clean"] > 0.5, "the tiny model did not train: the test would be vacuous"
    assert 0 < min(s["per_threat"].values()) and max(s["per_threat"].values()) <= s["clean"]
    for v in s["per_threat"].values():
        assert s["union"] <= v
    assert bool((M.all(1) <= M[:, 0]).all())
    # Same generator seed, same matrix.
    M2 = robustness_matrix(model, x, y, threats, strength="train", batch_size=16,
                           generator=torch.Generator().manual_seed(0))
    assert torch.equal(M, M2)


def test_cli_writes_table_and_json(tmp_path, data_dir, capsys):
    model = SmallMnistCNN()
    torch.save({"model": model.state_dict(), "model_name": "mnist_cnn_small"}, tmp_path / "ck.pt")
    out = tmp_path / "eval.json"
    rc = main(["--weights", str(tmp_path / "ck.pt"), "--data-dir", str(data_dir), "--threats", "linf,l1,rt",
               "--eps", "linf=0.1,l1=2,rt=5/1", "--strength", "train", "--test-limit", "6", "--batch-size", "3",
               "--threads", "1", "--sanity", "4", "--out", str(out)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "union" in table and "linf" in table
    res = json.loads(out.read_text())
    assert set(res["summary"]["per_threat"]) == {"linf", "l1", "rt"}
    assert len(res["robust_matrix"]) == 6 and len(res["robust_matrix"][0]) == 3
    assert set(res["gradient_masking_warnings"]) == {"linf", "l1"}  # the l_p threats only
    assert res["provenance"]["seeds"] == {"attack": 0} and "git_sha" in json.dumps(res["provenance"])
    assert res["summary"]["strength"] == "train" and "strength: train" in table
    # the per-example attack log agrees with the matrix: "robust" exactly where M is 1, "clean_wrong" where the
    # clean image is misclassified
    log = res["attack_log"]
    assert log["example_index"] == list(range(6))
    for j, t in enumerate(["linf", "l1", "rt"]):
        labels = log["first_broken_by"][t]
        assert [v == "robust" for v in labels] == [bool(r[j]) for r in res["robust_matrix"]]
        assert [v == "clean_wrong" for v in labels] == [not c for c in res["clean_correct"]]
        assert set(labels) <= {"robust", "clean_wrong", *log["attacks"][t]}


@pytest.mark.parametrize("argv, msg", [
    (["--threats", "l7"], "threat name"),
    (["--eps", "linf"], "name=value"),
    (["--test-limit", "0"], "--test-limit"),
])
def test_cli_bad_input_exits_2(tmp_path, data_dir, argv, msg, capsys):
    torch.save(MnistCNN().state_dict(), tmp_path / "m.pt")
    with pytest.raises(SystemExit) as exc:
        main(["--weights", str(tmp_path / "m.pt"), "--data-dir", str(data_dir), *argv])
    assert exc.value.code == 2
    assert msg in capsys.readouterr().err


def test_cli_missing_model_and_data(tmp_path, data_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--weights", str(tmp_path / "none.pt"), "--data-dir", str(data_dir)])
    assert exc.value.code == 2
    torch.save(MnistCNN().state_dict(), tmp_path / "m.pt")
    with pytest.raises(SystemExit) as exc:
        main(["--weights", str(tmp_path / "m.pt"), "--data-dir", str(tmp_path)])
    assert exc.value.code == 2 and "missing" in capsys.readouterr().err


class _Masked(torch.nn.Module):
    """Gradient masking by construction: the input is quantised (zero gradient almost everywhere) before a
    linear classifier, so gradient attacks see no signal while random points of the set still break it."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        xq = torch.round(x * 4) / 4  # d round / dx = 0
        z = xq.flatten(1) @ self.w
        return torch.stack([-z, z], 1)


def test_sanity_checks_flag_masked_model_and_pass_linear_model():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, generator=g)
    x = torch.rand(40, 1, 4, 4, generator=g)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    with torch.no_grad():
        linear[1].weight.copy_(torch.stack([-w, w]))
        linear[1].bias.zero_()
        y = linear(x).argmax(1)
    threat = get_threat("linf", eps=0.05)
    assert gradient_masking_warnings(linear, x, y, threat, generator=g, emit=False, n_queries=1000) == []
    masked = _Masked(w.clone())
    with torch.no_grad():
        ym = masked(x).argmax(1)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        found = gradient_masking_warnings(masked, x, ym, get_threat("linf", eps=0.2), generator=g, n_queries=1000)
    assert any(w_.startswith("large_budget") for w_ in found) or any(w_.startswith("gradient_free") for w_ in found)
    # The gradient-free Square attack breaks points that APGD-CE + APGD-T (zero gradients) left robust.
    assert any(w_.startswith("square") for w_ in found), found
    assert any(issubclass(r.category, GradientMaskingWarning) for r in rec)


def test_check_linf_training_is_empirical_train_and_resumes_to_the_same_model(tmp_path, data_dir):
    """check_linf train is empirical.train with the check's configuration: a run stopped by --time-limit 0
    (one step per call, exit 75) and resumed ends with exactly the parameters of an uninterrupted run; a
    run with another seed does not (so the comparison can fail)."""
    from empirical.check_linf import main as check_main

    common = ["train", "--data-dir", str(data_dir), "--train-limit", "200", "--attack-steps", "1", "--epochs", "2",
              "--quiet"]
    assert check_main([*common, "--out", str(tmp_path / "whole")]) == 0
    res = json.loads((tmp_path / "whole" / "result.json").read_text())
    cfg = res["config"]
    assert (cfg["scheme"], cfg["threats"], cfg["model"], cfg["attack_steps"]) == ("adv", ["linf"], "mnist_cnn_small", 1)
    assert cfg["eps_warmup"] == pytest.approx(0.5) and res["steps"] == 4
    codes = [check_main([*common, "--out", str(tmp_path / "part"), "--time-limit", "0"]) for _ in range(4)]
    assert codes == [75, 75, 75, 0]

    def params(run):
        return torch.load(tmp_path / run / "model.pt", weights_only=True)

    whole, part = params("whole"), params("part")
    assert all(torch.equal(whole[k], part[k]) for k in whole)
    assert check_main([*common, "--out", str(tmp_path / "other"), "--seed", "1"]) == 0
    other = params("other")
    assert not all(torch.equal(whole[k], other[k]) for k in whole)


def test_check_linf_eval_reports_the_full_suite_and_its_attack_log(tmp_path, data_dir):
    """check_linf eval adds AutoAttack's standard suite per l_p threat: its columns, the union with the
    rotation-translation grid and the per-example log of the suite agree with each other (the log's "robust"
    count is the column's accuracy, a union is at most each of its columns)."""
    from empirical.check_linf import SUITE_COLUMNS, main as check_main

    # a model trained at a small budget, five images and large budgets: the suite's first two attacks break every
    # clean-correct example (APGD-T one at l_2), so the log holds three labels and Square's 5,000 queries on a
    # robust example (about 10 CPU s) are not spent; the suite's attacks have their own oracle tests
    run = tmp_path / "run"
    assert check_main(["train", "--data-dir", str(data_dir), "--train-limit", "1000", "--attack-steps", "1",
                       "--epochs", "1", "--eps", "linf=0.05", "--quiet", "--out", str(run)]) == 0
    n = 5
    eval_argv = ["eval", "--data-dir", str(data_dir), "--weights", str(run / "model.pt"), "--test-limit", str(n),
                 "--batch-size", str(n), "--eps", "linf=0.3,l2=3,l1=40", "--quiet", "--out", str(tmp_path / "e.json")]
    # stopped after its first column (exit 75, progress beside the output), then resumed by the same command
    assert check_main([*eval_argv, "--time-limit", "0"]) == 75 and (tmp_path / "e.json.part").is_file()
    assert check_main(eval_argv) == 0 and not (tmp_path / "e.json.part").exists()
    out = json.loads((tmp_path / "e.json").read_text())
    log = out["attack_log"]
    assert log["example_index"] == list(range(n))
    for column in SUITE_COLUMNS:
        assert log["attacks"][column] == ["apgd-ce", "apgd-t", "fab-t", "square"]
        labels = log["first_broken_by"][column]
        assert len(labels) == n and set(labels) <= {"robust", "clean_wrong", *log["attacks"][column]}
        assert labels.count("robust") / n == pytest.approx(out["attacks"][column]["robust_accuracy"])
        assert (n - labels.count("clean_wrong")) / n == pytest.approx(out["clean_accuracy"])
        assert out["union_accuracy_suite_rt"] <= out["attacks"][column]["robust_accuracy"]
    assert out["union_accuracy_suite_rt"] <= out["attacks"]["rt/grid"]["robust_accuracy"]
    assert {label for labels in log["first_broken_by"].values() for label in labels} >= {"apgd-ce", "clean_wrong"}


def test_check_linf_bad_input_exits_2(tmp_path, capsys):
    from empirical.check_linf import main as check_main

    for argv in (["train", "--eps", "linf=-1"], ["train", "--eps", "l2=1"], ["eval", "--weights", str(tmp_path / "x.pt"),
                                                                          "--out", str(tmp_path / "o.json")]):
        with pytest.raises(SystemExit) as exc:
            check_main([*argv[:1], *argv[1:], *(["--out", str(tmp_path / "r")] if argv[0] == "train" else [])])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "error: " in err[0] and "--" in err[0], err


def test_evaluation_resumes_from_its_progress_file_to_the_uninterrupted_result(tmp_path):
    """A run stopped after every batch (time_limit 0) and resumed from its progress file ends with the matrix, the
    attack log and the generator state of one uninterrupted run; without the saved generator state the resumed
    batches would draw other random starts, and the final generator state would differ."""
    from empirical.evaluate import TimeLimitReached, robustness_matrix_and_log

    model = _tiny_cnn()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(6, 1, 28, 28, generator=g), torch.randint(0, 10, (6,), generator=g)
    threats = [get_threat("linf", eps=0.1), get_threat("l2", eps=1.0)]
    kw = dict(strength="train", batch_size=2, params={"name": "test"})
    g_whole = torch.Generator().manual_seed(0)
    M, first, names = robustness_matrix_and_log(model, x, y, threats, generator=g_whole, **kw)
    part, stops = tmp_path / "e.json.part", 0
    while True:
        g_part = torch.Generator().manual_seed(0)
        try:
            M2, first2, names2 = robustness_matrix_and_log(model, x, y, threats, generator=g_part, part=part,
                                                           time_limit=0, **kw)
            break
        except TimeLimitReached as exc:
            stops += 1
            assert exc.done == stops and exc.total == 6
    assert stops == 5  # 2 threats x 3 batches, one batch per call
    assert torch.equal(M, M2) and torch.equal(first, first2) and names == names2
    assert torch.equal(g_whole.get_state(), g_part.get_state())
    # another evaluation's progress file is not resumed: other params start afresh
    g_other = torch.Generator().manual_seed(0)
    M3, _, _ = robustness_matrix_and_log(model, x, y, threats, generator=g_other, part=part,
                                         **{**kw, "params": {"name": "other"}})
    assert torch.equal(M3, M) and torch.equal(g_other.get_state(), g_whole.get_state())


def test_cli_time_limit_exits_75_and_the_same_command_resumes(tmp_path, data_dir, capsys):
    model = SmallMnistCNN()
    torch.save({"model": model.state_dict(), "model_name": "mnist_cnn_small"}, tmp_path / "ck.pt")
    argv = ["--weights", str(tmp_path / "ck.pt"), "--data-dir", str(data_dir), "--threats", "linf,l2",
            "--eps", "linf=0.1,l2=1", "--strength", "train", "--test-limit", "4", "--batch-size", "2", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "whole.json")]) == 0
    out = tmp_path / "parts.json"
    assert main([*argv, "--out", str(out), "--time-limit", "0"]) == 75
    assert "run the same command again to resume" in capsys.readouterr().err
    assert (tmp_path / "parts.json.part").is_file() and not out.exists()
    assert main([*argv, "--out", str(out)]) == 0
    assert not (tmp_path / "parts.json.part").exists()
    whole, parts = (json.loads((tmp_path / f).read_text()) for f in ("whole.json", "parts.json"))
    for key in ("summary", "robust_matrix", "clean_correct", "attack_log"):
        assert whole[key] == parts[key], key
    with pytest.raises(SystemExit) as e:
        main([*argv, "--time-limit", "5"])
    assert e.value.code == 2 and "--time-limit: needs --out" in capsys.readouterr().err
