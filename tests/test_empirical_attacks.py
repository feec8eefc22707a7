"""Correctness of the attacks: closed-form optimum on linear models, geometry of rotation-translation,
one shared smoke test over every registered attack, determinism given the generator."""

import math

import pytest

torch = pytest.importorskip("torch")

from empirical.attacks import ATTACKS, APGD, APGDT, FABT, PGD, SLIDE, Square, attack_for, get_attack  # noqa: E402
from empirical.attacks.apgd import checkpoints  # noqa: E402
from empirical.attacks.losses import get_loss, margin  # noqa: E402
from empirical.threats import (AffineCombination, L1Ball, L2Ball, LinfBall, RotationTranslation,  # noqa: E402
                               get_threat, rotate_translate)

torch.set_num_threads(1)

# Linear model: d = 16 inputs shaped [1, 4, 4], 2 classes. Points lie in [0.4, 0.6]^d and the budgets keep
# the optimal perturbation inside the box: l_inf 0.1 (x +- 0.1), l_2 0.3 (|r_i| <= 0.3), l_1 0.3 (one pixel).
EPS = {"linf": 0.1, "l2": 0.3, "l1": 0.3}
DUAL = {"linf": 1.0, "l2": 2.0, "l1": math.inf}  # dual norm order q: 1/p + 1/q = 1
REL_TOL = 0.01  # the criterion: the attack reaches the closed-form margin drop within 1%


def _margins(model, x, y):
    with torch.no_grad():
        return -margin(model(x), y)  # z_y - z_other


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize("attack", ["pgd", "apgd"])
def test_linear_model_reaches_closed_form_optimum(norm, attack):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(16, generator=g, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).double()
    eps = EPS[norm]
    expected = eps * torch.linalg.vector_norm(w, ord=DUAL[norm])  # margin w.x + c falls by eps |w|_q
    # Bias c: every point stays class 1 with margin >= 2 after the optimal attack (so the attack's best
    # point is the lowest-margin one), yet small enough that the cross-entropy does not round to 0.
    c = 0.6 * float(w.abs().sum()) + float(expected) + 2.0
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([-w / 2, w / 2]))
        model[1].bias.copy_(torch.tensor([-c / 2, c / 2], dtype=torch.float64))
    x = 0.4 + 0.2 * torch.rand(16, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.ones(16, dtype=torch.long)
    threat = get_threat(norm, eps=eps)
    # PGD with step eps/4 (Madry's 2.5 eps/steps converges on the l_2 sphere only like (1 - 2.5/steps)^k);
    # APGD with its own adaptive step size.
    hyper = dict(step_size=eps / 4) if attack == "pgd" else {}
    atk = get_attack(attack, threat, steps=100, loss="ce", **hyper)
    x_adv = atk(model, x, y, generator=torch.Generator().manual_seed(2))
    assert bool(threat.contains(x_adv, x).all())
    drop = _margins(model, x, y) - _margins(model, x_adv, y)
    rel = (drop - expected).abs() / expected
    assert float(rel.max()) <= REL_TOL, (f"{attack}-{norm}: worst relative gap {float(rel.max()):.4f} "
                                         f"(abs {float((drop - expected).abs().max()):.3g})")
    # No attack may beat the optimum (beyond rounding): a check that the set is respected.
    assert bool((drop <= expected * (1 + 1e-9) + 1e-9).all())


def test_margin_loss_and_apgd_checkpoints():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 0])
    assert torch.allclose(margin(logits, y), torch.tensor([-1.0, 3.0]))
    assert torch.allclose(get_loss("dlr")(logits, y), torch.tensor([-1.0 / 2.0, 3.0 / 3.0]), atol=1e-6)
    with pytest.raises(ValueError, match="loss"):
        get_loss("hinge")
    # Croce & Hein's checkpoints for 100 iterations: 0, 22, 41, 57, 70, 80, 87, 93, 99.
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_rotation_and_translation_by_zero_are_identity():
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = rotate_translate(x, torch.zeros(3, 3))
    # grid_sample recomputes pixel positions in float32: bilinear weights off by ~1e-7, so tolerance 1e-5.
    assert torch.allclose(out, x, atol=1e-5)
    out64 = rotate_translate(x.double(), torch.zeros(3, 3))
    assert torch.allclose(out64, x.double(), atol=1e-12)


def test_rotation_by_90_degrees_permutes_pixels_exactly():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = rotate_translate(x, torch.tensor([[90.0, 0, 0], [-90.0, 0, 0]]))
    # Counter-clockwise on screen = torch.rot90 with k=1 over (H, W); float64: exact to 1e-12.
    assert torch.allclose(out[0], torch.rot90(x[0], 1, dims=(1, 2)), atol=1e-12)
    assert torch.allclose(out[1], torch.rot90(x[1], -1, dims=(1, 2)), atol=1e-12)
    # Same multiset of pixel values (a permutation), and 4 quarter turns give back the image.
    assert torch.allclose(out[0].flatten().sort().values, x[0].flatten().sort().values, atol=1e-12)
    y = x
    for _ in range(4):
        y = rotate_translate(y, torch.tensor([[90.0, 0, 0]] * 2))
    assert torch.allclose(y, x, atol=1e-12)


def test_integer_translation_shifts_pixels():
    x = torch.rand(1, 1, 10, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = rotate_translate(x, torch.tensor([[0.0, 2.0, -1.0]]))  # 2 px right, 1 px up
    assert torch.allclose(out[0, 0, :-1, 2:], x[0, 0, 1:, :-2], atol=1e-12)
    assert float(out[0, 0, :, :2].abs().max()) == 0.0 and float(out[0, 0, -1, :].abs().max()) == 0.0


def _tiny_cnn(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 14 * 14, 10)).eval()


_THREAT_FOR = {"pgd": ["linf", "l2", "l1"], "slide": ["l1"], "apgd": ["linf", "l2", "l1"], "rt_grid": ["rt"],
               "apgd_t": ["linf", "l2", "l1"], "square": ["linf", "l2", "l1"], "fab_t": ["linf", "l2", "l1"],
               "rt_random": ["rt"], "affine": ["affine:linf:l1:0.5", "affine:rt:linf:0.5"],
               "msd": [("linf", "l2", "l1")]}
_SMALL = {"pgd": dict(steps=5), "slide": dict(steps=5), "apgd": dict(steps=5),
          "apgd_t": dict(steps=5, n_target_classes=2), "square": dict(n_queries=20), "fab_t": dict(steps=5, n_target_classes=2), "rt_grid": dict(n_angles=5, n_shifts=3),
          "rt_random": dict(k=4), "affine": dict(steps=5, restarts=2), "msd": dict(steps=5)}


def _in_set(threat, x_adv, x):
    if isinstance(threat, list):  # a union of l_p threats (MSD)
        return bool(torch.stack([t.contains(x_adv, x) for t in threat]).any(0).all())
    if isinstance(threat, (LinfBall, L2Ball, L1Ball)):
        return bool(threat.contains(x_adv, x).all())
    return bool(((x_adv >= 0) & (x_adv <= 1)).all())


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_registered_attack_smoke(name, data_dir):
    """Shared smoke test: valid output in the set, never better for the model than clean, deterministic
    given the generator, model untouched (mode and gradients), bad threat rejected."""
    from empirical.data import load_mnist

    assert name in _THREAT_FOR, f"attack {name!r} registered without a smoke-test threat: add it to _THREAT_FOR"
    x, y = load_mnist(data_dir, "test", limit=6)
    model = _tiny_cnn()
    for tname in _THREAT_FOR[name]:
        threat = [get_threat(t) for t in tname] if isinstance(tname, tuple) else get_threat(tname)
        atk = get_attack(name, threat, **_SMALL[name])
        a1 = atk(model, x, y, generator=torch.Generator().manual_seed(5))
        a2 = atk(model, x, y, generator=torch.Generator().manual_seed(5))
        assert a1.shape == x.shape and a1.dtype == x.dtype and torch.isfinite(a1).all()
        assert torch.equal(a1, a2), f"{name} on {tname} is not deterministic given the generator"
        assert _in_set(threat, a1, x)
        assert not model.training and all(p.grad is None for p in model.parameters())
        ce = torch.nn.functional.cross_entropy
        with torch.no_grad():
            assert ce(model(a1), y, reduction="none").ge(ce(model(x), y, reduction="none") - 1e-5).all() or \
                (model(a1).argmax(1) != y).any()
    with pytest.raises((ValueError, TypeError)):
        get_attack(name, object())


def test_registry_and_defaults():
    assert isinstance(get_attack("pgd", get_threat("l1")), SLIDE)
    with pytest.raises(ValueError, match="attack name"):
        get_attack("cw", get_threat("linf"))
    assert isinstance(attack_for(get_threat("linf"), "train"), PGD)
    ev = attack_for(get_threat("l1"), "eval")
    # AutoAttack's standard suite: APGD-CE (l_1: 5 restarts, 3/2/1 eps schedule), APGD-T, FAB-T, Square-5000.
    ce, tg, fab, sq = ev.attacks
    assert ev.names() == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert type(ce) is APGD and ce.loss == "ce" and ce.restarts == 5 and ce.use_largereps
    assert isinstance(tg, APGDT) and tg.n_target_classes == 5 and tg.use_largereps
    assert isinstance(fab, FABT) and (fab.steps, fab.n_target_classes, fab.restarts) == (100, 9, 1)
    assert isinstance(sq, Square) and (sq.n_queries, sq.p_init, sq.restarts) == (5000, 0.8, 1)
    ce_inf, tg_inf, fab_inf, sq_inf = attack_for(get_threat("linf"), "eval").attacks
    assert ce_inf.restarts == 1 and not ce_inf.use_largereps and tg_inf.n_target_classes == 9
    assert (fab_inf.alpha_max, fab_inf.eta, fab_inf.beta) == (0.1, 1.05, 0.9)
    # the cheaper named level: the APGD pair only
    assert [type(a) for a in attack_for(get_threat("l2"), "apgd").attacks] == [APGD, APGDT]
    # overrides reach the attacks that take them; one that none takes is an error
    ev2 = attack_for(get_threat("linf"), "eval", steps=7, n_queries=11, eps=0.1)
    assert [getattr(a, "steps", None) for a in ev2.attacks][:3] == [7, 7, 7] and ev2.attacks[3].n_queries == 11
    assert all(a.threat.eps == 0.1 for a in ev2.attacks)
    with pytest.raises(ValueError, match="no attack"):
        attack_for(get_threat("linf"), "eval", n_querys=11)
    with pytest.raises(ValueError, match="strength"):
        attack_for(get_threat("linf"), "full")
    assert get_attack("pgd", get_threat("linf"), eps=0.1).threat.eps == 0.1
    with pytest.raises(ValueError, match="steps"):
        get_attack("pgd", get_threat("linf"), steps=0)
    with pytest.raises(ValueError, match="threat name"):
        get_threat("l3")
    with pytest.raises(ValueError, match="eps"):
        get_threat("linf", eps=-1.0)
    assert isinstance(get_threat("affine:rt:l2:0.3"), AffineCombination)
    assert get_threat("rt", "mnist") == RotationTranslation(30.0, 3.0)
    assert get_threat("linf", "cifar10").eps == pytest.approx(8 / 255)


def test_pgd_breaks_an_undefended_model_and_restarts_do_not_hurt(data_dir):
    from empirical.data import load_mnist

    x, y = load_mnist(data_dir, "test", limit=16)
    model = _tiny_cnn(1)
    th = get_threat("linf", eps=0.3)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        r1 = model(PGD(th, steps=10)(model, x, y, generator=g)).argmax(1) == y
        r3 = model(PGD(th, steps=10, restarts=3)(model, x, y, generator=g)).argmax(1) == y
    assert float(r1.float().mean()) <= 0.1  # a random-weight CNN has no robustness at eps 0.3
    assert int(r3.sum()) <= int(r1.sum()) + 1
