"""Data loaders on the real files (a few images) and on deliberately broken copies (clear DataError)."""

import gzip
import hashlib
import shutil

import pytest

torch = pytest.importorskip("torch")

from empirical import data  # noqa: E402
from empirical.models import MnistCNN, PreActResNet18, LinearErf, TwoClassLogits, get_model  # noqa: E402


@pytest.mark.data
def test_mnist_test_split_is_the_exact_original(full_data_dir):
    data_dir = full_data_dir
    x, y = data.load_mnist(data_dir, "test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (10000,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    # Pixel-exact: the uint8 payload round-trips to the MD5 given in the data README.
    raw = (x * 255).round().to(torch.uint8).numpy().tobytes()
    with gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz", "rb") as fh:
        assert hashlib.md5(fh.read()).hexdigest() == "2646ac647ad5339dbf082846283269ea"
    assert hashlib.md5(raw).hexdigest() == hashlib.md5(
        gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz").read()[16:]).hexdigest()
    assert y[:5].tolist() == [7, 2, 1, 0, 4]


def test_limit_and_binary_task(data_dir):
    x, y = data.load_mnist(data_dir, "train", limit=7)
    assert x.shape[0] == 7
    xb, tau = data.mnist_binary(data_dir, "test", limit=50)
    _, yall = data.load_mnist(data_dir, "test")
    expected = yall[(yall == 3) | (yall == 7)][:50]
    assert torch.equal(tau, torch.where(expected == 3, 1.0, -1.0))
    with pytest.raises(ValueError, match="digits"):
        data.mnist_binary(data_dir, "test", digits=(3, 3))


def test_cifar_subset_on_the_fixture(data_dir):
    x, y = data.load_cifar10(data_dir, "test")
    assert x.shape == (40, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert y.min() >= 0 and y.max() <= 9
    xt, yt = data.load_cifar10(data_dir, "train", limit=25)
    assert xt.shape == (25, 3, 32, 32) and yt.shape == (25,)


@pytest.mark.data
def test_cifar_subset_and_jpeg(full_data_dir):
    data_dir = full_data_dir
    x, y = data.load_cifar10(data_dir, "test")
    assert x.shape == (1000, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert y.min() >= 0 and y.max() <= 9
    xj, yj = data.load_cifar10(data_dir, "test", source="jpeg", limit=20)
    assert xj.shape == (20, 3, 32, 32)
    assert yj[:10].tolist() == list(range(10))  # classes interleaved: a prefix is balanced


def test_fashion_mnist_if_installed():
    if not data.FASHION_MNIST_DIR.is_dir():
        pytest.skip(f"Fashion-MNIST not installed at {data.FASHION_MNIST_DIR}: apt-get install dataset-fashion-mnist")
    x, y = data.load_fashion_mnist(split="test", limit=10)
    assert x.shape == (10, 1, 28, 28) and y.max() <= 9


def test_missing_and_malformed_files(tmp_path, data_dir):
    with pytest.raises(data.DataError, match="not a folder"):
        data.load_mnist(tmp_path / "nope", "test")
    with pytest.raises(data.DataError, match="missing data file"):
        data.load_mnist(tmp_path, "test")
    # A truncated payload is caught by the size check, not silently reshaped.
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(data_dir / "mnist" / name, tmp_path / name)
    raw = gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz").read()
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(raw[:-100])
    with pytest.raises(data.DataError, match="payload"):
        data.load_mnist(tmp_path, "test")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(data.DataError):
        data.load_mnist(tmp_path, "test")
    with pytest.raises(data.DataError, match="missing"):
        data.load_cifar10(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        data.load_mnist(data_dir, "validation")


def test_models_shapes():
    torch.manual_seed(0)
    assert MnistCNN()(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert PreActResNet18()(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    m = LinearErf(784, erf_scale=2.0)
    with torch.no_grad():
        m.w.mul_(3.0)
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(m.unit_w().norm(), torch.tensor(1.0))
    s = m(x)
    assert s.shape == (4,) and bool((s.abs() < 1).all())
    assert torch.allclose(s, torch.erf((x.flatten(1)[:, 0] - m.b) / 2.0))
    logits = TwoClassLogits(m)(x)
    assert torch.allclose(logits[:, 1] - logits[:, 0], m.preactivation(x))
    with pytest.raises(ValueError, match="model name"):
        get_model("vgg")


def test_the_cnns_pool_equals_torchs_max_pool_to_the_bit():
    """max_pool2 (channels-last where no gradient is recorded) against torch's own F.max_pool2d: the same values
    to the bit with and without autograd, on ReLU outputs with ties at 0 and on a non-contiguous input, the same
    input gradient; the CNNs' logits under no_grad equal a forward written with F.max_pool2d."""
    import torch.nn.functional as F

    from empirical.models import SmallMnistCNN, max_pool2

    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(5, 16, 28, 28, generator=g))
    with torch.no_grad():
        assert torch.equal(max_pool2(x), F.max_pool2d(x, 2)) and max_pool2(x).is_contiguous()
        xt = x.transpose(2, 3)
        assert torch.equal(max_pool2(xt), F.max_pool2d(xt, 2))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.randn(5, 16, 14, 14, generator=g)
    (ga,) = torch.autograd.grad((max_pool2(xa) * w).sum(), xa)
    (gb,) = torch.autograd.grad((F.max_pool2d(xb, 2) * w).sum(), xb)
    assert torch.equal(ga, gb)
    for cls in (MnistCNN, SmallMnistCNN):
        torch.manual_seed(1)
        m = cls().eval()
        im = torch.rand(7, 1, 28, 28, generator=g)
        with torch.no_grad():
            h = F.max_pool2d(F.relu(m.conv2(F.max_pool2d(F.relu(m.conv1(im)), 2))), 2)
            assert torch.equal(m(im), m.fc2(F.relu(m.fc1(h.flatten(1)))))
