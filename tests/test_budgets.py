"""One mapping from a data set to its default budgets (empirical.threats.budget_table), used by training,
evaluation and the budget curves: Fashion-MNIST gets its own table (l_inf 0.1), not MNIST's (0.3)."""

import pytest

torch = pytest.importorskip("torch", reason="the empirical part needs the empirical extra (torch)")

from empirical.data import DATASETS  # noqa: E402
from empirical.threats import DEFAULT_BUDGETS, budget_table, make_threats  # noqa: E402

# the literature's l_inf budgets (Tramer & Boneh 2019; Maini et al. 2020; Croce & Hein 2020)
LINF = {"mnist": 0.3, "mnist37": 0.3, "fashion_mnist": 0.1, "cifar10": 8 / 255, "cifar10_jpeg": 8 / 255}


def test_every_data_set_has_a_budget_table():
    assert set(LINF) == set(DATASETS)
    for d in DATASETS:
        assert budget_table(d) in DEFAULT_BUDGETS
        assert make_threats(["linf"], d)[0].eps == LINF[d], d
    with pytest.raises(ValueError, match="dataset must be one of"):
        budget_table("svhn")


def test_training_uses_the_data_set_budgets():
    from empirical.train import PRESETS, TrainConfig

    trainable = [d for d in DATASETS if d in PRESETS]  # the data sets TrainConfig accepts
    assert "fashion_mnist" in trainable
    for d in trainable:
        (linf,) = TrainConfig(dataset=d, scheme="adv", threats=("linf",)).threat_objects(["linf"])
        assert linf.eps == LINF[d], d


def test_evaluation_uses_the_data_set_budgets(monkeypatch, tmp_path):
    """evaluate's command builds its threats for the data set it is given (stopped right after, at the
    missing weights)."""
    import empirical.threats as T
    from empirical.evaluate import main

    made = []
    real = T.make_threats

    def spy(names, dataset="mnist", budgets=None):
        made.extend(real(names, dataset, budgets))
        return made

    monkeypatch.setattr(T, "make_threats", spy)
    with pytest.raises(SystemExit) as exc:
        main(["--weights", str(tmp_path / "absent.pt"), "--dataset", "fashion_mnist", "--threats", "linf"])
    assert exc.value.code == 2
    assert [t.eps for t in made] == [0.1]
