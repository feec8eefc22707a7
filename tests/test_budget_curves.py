"""empirical.budget_curves on a small untrained model and a few real test images."""

import json

import pytest

torch = pytest.importorskip("torch", reason="the empirical part needs the empirical extra (torch)")


def test_budget_curves_cli(tmp_path, data_dir):
    from empirical.budget_curves import main
    from empirical.models import MnistCNN

    torch.set_num_threads(1)
    torch.manual_seed(0)
    (tmp_path / "runs" / "natural").mkdir(parents=True)
    torch.save(MnistCNN().state_dict(), tmp_path / "runs" / "natural" / "model.pt")
    out = tmp_path / "curves.json"
    assert main(["--runs", str(tmp_path / "runs"), "--data-dir", str(data_dir), "--n", "8", "--threats", "linf,l2",
                 "--budgets", "linf=0.1,0.3;l2=1", "--strength", "train", "--out", str(out), "--quiet"]) == 0
    d = json.loads(out.read_text())
    curve = d["curves"]["Nat"]["linf"]
    assert curve["eps"] == [0.0, 0.1, 0.3]
    assert all(a <= curve["accuracy"][0] for a in curve["accuracy"][1:])  # robust counts only clean-correct examples
    assert d["curves"]["Nat"]["l2"]["eps"] == [0.0, 1.0]
    assert "git_sha" in d["provenance"]


def test_budget_curves_rejects_bad_input(tmp_path, capsys):
    from empirical.budget_curves import main

    with pytest.raises(SystemExit) as exc:
        main(["--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2
