"""Pieces of the training machinery: the MSD attack, the JSD of MNG-AC, augmentation, checkpoints."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from empirical.attacks import get_attack  # noqa: E402
from empirical.attacks.msd import MSDAttack  # noqa: E402
from empirical.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state  # noqa: E402
from empirical.data import load_mnist  # noqa: E402
from empirical.mng import jensen_shannon  # noqa: E402
from empirical.models import MnistCNN  # noqa: E402
from empirical.threats import get_threat  # noqa: E402
from empirical.train import crop_flip  # noqa: E402


@pytest.fixture(scope="module")
def batch(data_dir):
    torch.set_num_threads(1)
    x, y = load_mnist(data_dir, "test", limit=16)
    torch.manual_seed(0)
    model = MnistCNN().eval()
    return model, x, y


def test_msd_result_lies_in_the_union_and_raises_the_loss(batch):
    model, x, y = batch
    threats = [get_threat("linf"), get_threat("l2"), get_threat("l1")]
    attack = get_attack("msd", threats, steps=5)
    assert isinstance(attack, MSDAttack)
    x_adv = attack(model, x, y, generator=torch.Generator().manual_seed(0))
    inside = torch.stack([t.contains(x_adv, x) for t in threats]).any(0)
    assert bool(inside.all()), "an MSD point lies outside every threat's set"
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy
        before = ce(model(x), y, reduction="none")
        after = ce(model(x_adv), y, reduction="none")
    assert bool((after >= before - 1e-6).all()) and float(after.mean()) > float(before.mean())
    # Deterministic without a random start.
    assert torch.equal(x_adv, attack(model, x, y))


def test_msd_rejects_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        MSDAttack([get_threat("linf")], steps=0)
    with pytest.raises(ValueError, match="l_p threats"):
        MSDAttack([get_threat("rt")])


def test_jensen_shannon():
    a = torch.randn(5, 10, generator=torch.Generator().manual_seed(1))
    b = torch.randn(5, 10, generator=torch.Generator().manual_seed(2))
    assert float(jensen_shannon(a, a, a)) == pytest.approx(0.0, abs=1e-6)
    v = float(jensen_shannon(a, b, a))
    assert 0 < v <= torch.log(torch.tensor(3.0)).item()  # JSD of 3 distributions is at most log 3
    assert v == pytest.approx(float(jensen_shannon(b, a, a)), rel=1e-5)  # symmetric in its arguments


def test_crop_flip_without_padding_is_identity_or_mirror():
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = crop_flip(x, torch.Generator().manual_seed(3), pad=0)
    same = (out == x).flatten(1).all(1)
    mirror = (out == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirror).all()) and 10 < int(mirror.sum()) < 54
    padded = crop_flip(x, torch.Generator().manual_seed(3), pad=4)
    assert padded.shape == x.shape and not torch.equal(padded, x)


def test_checkpoint_roundtrip_restores_generators(tmp_path):
    g = torch.Generator().manual_seed(5)
    state = rng_state({"attack": g})
    save_checkpoint(tmp_path / "c.pt", {"rng": state, "w": torch.ones(3)})
    first = torch.rand(4, generator=g)
    ck = load_checkpoint(tmp_path / "c.pt")
    set_rng_state(ck["rng"], {"attack": g})
    assert torch.equal(torch.rand(4, generator=g), first)
    assert not list(tmp_path.glob(".c.pt.*.tmp"))  # no temporary file left behind
