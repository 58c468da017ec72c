"""Lesson 4's data: CIFAR-10's pickle batches and foolbox's 20 images, a CelebA folder and scikit-image's LFW
faces, and the multi-hot Twemoji labels. Every real format is exercised on a fixture written here, offline."""
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import data
from course_utils.data import CELEBA_ATTRIBUTES, TWEMOJI_CATEGORIES, DatasetUnavailableError, load_celeba, load_dataset


@pytest.fixture(autouse=True)
def no_download(monkeypatch, tmp_path):
    """No test may reach the network: both downloads fail at once, and DATA is an empty folder."""
    def offline(*a, **k):
        raise OSError("network unreachable (test)")
    monkeypatch.setattr(data.cifar10, "_download_cifar10", offline)
    monkeypatch.setattr(data.celeba, "_download_celeba", offline)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty-data-root"))
    monkeypatch.delenv("COURSE_CELEBA_DIR", raising=False)


# ---------------------------------------------------------------- CIFAR-10

def write_cifar10_batches(root, per_batch=4, seed=0):
    """CIFAR-10's python layout: ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch}, pickle protocol 2."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, per_batch).tolist()
        batch = {b"batch_label": name.encode(), b"labels": y, b"data": x,
                 b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        written[name] = (x, y)
    return written


def test_cifar10_pickle_batches_are_read_in_channel_order(tmp_path):
    written = write_cifar10_batches(tmp_path)
    train_x, train_y = data.read_cifar10_batches(tmp_path, "train")
    test_x, test_y = data.read_cifar10_batches(tmp_path / "cifar-10-batches-py", "test")  # the folder itself works too
    assert train_x.shape == (20, 3, 32, 32) and train_x.dtype == torch.uint8 and test_x.shape == (4, 3, 32, 32)
    assert train_y.dtype == torch.long
    assert train_y.tolist() == [y for i in range(1, 6) for y in written[f"data_batch_{i}"][1]]
    assert test_y.tolist() == written["test_batch"][1]
    # Pixel (row 5, column 7) of the test batch's second image: red at 5*32+7, green 1024 later, blue 2048 later.
    row = written["test_batch"][0][1]
    assert test_x[1, :, 5, 7].tolist() == [row[5 * 32 + 7], row[1024 + 5 * 32 + 7], row[2048 + 5 * 32 + 7]]


def test_cifar10_files_under_root_are_used_without_download(tmp_path, capsys):
    write_cifar10_batches(tmp_path)
    ds = data.load_cifar10("test", root=tmp_path)
    assert len(ds) == 4 and ds.name == "cifar10" and ds.classes == data.CIFAR10_CLASSES
    assert ds.source.startswith("torchvision files") and "download failed" not in capsys.readouterr().err


def test_cifar10_missing_batches_give_a_clear_error(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"")
    with pytest.raises(DatasetUnavailableError, match="data_batch_1.*cifar-10-python.tar.gz"):
        data.read_cifar10_batches(tmp_path, "train")


def test_cifar10_offline_is_foolbox_20_images_and_says_so(tmp_path, capsys):
    ds = data.load_cifar10("train", root=tmp_path)  # auto: nothing under root, the download fails
    err = capsys.readouterr().err
    assert "download failed" in err and "smoke runs only" in err and "twemoji32" in err
    assert ds.images.shape == (20, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.long and set(ds.labels.tolist()) <= set(range(10))
    # The label is in each file's name, cifar10_{index:02d}_{label}.png, in index order.
    assert ds.labels.tolist() == [int(p.stem.split("_")[2]) for p in data.cifar10.cifar10_offline_files()]
    assert ds.labels[:4].tolist() == [3, 8, 8, 0]  # the first four of CIFAR-10's test set
    test = data.load_cifar10("test", source="offline", verbose=False)
    assert torch.equal(test.images, ds.images) and "smoke runs only" in test.source
    assert ds.images.float().std() > 30, "real photographs, not a blank stand-in"


def test_cifar10_torchvision_source_requires_the_real_data(tmp_path):
    with pytest.raises(OSError, match="network unreachable"):
        data.load_cifar10("train", root=tmp_path, source="torchvision", verbose=False)


# ---------------------------------------------------------------- CelebA

BODY = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (40, 200, 200), (200, 40, 200)]


def write_celeba_folder(folder, partition=(0, 0, 0, 1, 2, 2), seed=0, attr_file=True):
    """CelebA's layout: img_align_celeba/NNNNNN.jpg (178x218), list_attr_celeba.txt and list_eval_partition.txt.
    Each face is a solid colour with 20-pixel black bands above and below: exactly what the central 178x178
    crop removes."""
    rng = np.random.default_rng(seed)
    (folder / "img_align_celeba").mkdir(parents=True)
    files = [f"{i + 1:06d}.jpg" for i in range(len(partition))]
    for f, colour in zip(files, BODY):
        pixels = np.zeros((218, 178, 3), dtype=np.uint8)
        pixels[20:198] = colour
        Image.fromarray(pixels).save(folder / "img_align_celeba" / f, quality=95)
    values = rng.choice([-1, 1], (len(files), 40))
    if attr_file:
        lines = [str(len(files)), " ".join(CELEBA_ATTRIBUTES)]
        lines += [f"{f} " + " ".join(f"{v:2d}" for v in row) for f, row in zip(files, values)]  # " 1" / "-1"
        (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (folder / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, partition)))
    return files, values


def test_celeba_folder_gives_chosen_attributes_split_and_crop(tmp_path):
    _, values = write_celeba_folder(tmp_path)
    chosen = ["Smiling", "Male", "Eyeglasses"]
    columns = [CELEBA_ATTRIBUTES.index(a) for a in chosen]
    train = load_celeba("train", path=tmp_path, attributes=chosen, size=32, verbose=False)
    test = load_celeba("test", path=tmp_path, attributes=chosen, size=32, verbose=False)
    valid = load_celeba("valid", path=tmp_path, attributes=chosen, size=32, verbose=False)
    assert (len(train), len(valid), len(test)) == (3, 1, 2)
    assert train.images.shape == (3, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.classes == chosen and train.name == "celeba" and train.source.startswith("files:")
    assert train.labels.dtype == torch.float32
    assert torch.equal(train.labels, torch.from_numpy((values[:3][:, columns] > 0).astype(np.float32)))
    assert torch.equal(test.labels, torch.from_numpy((values[4:][:, columns] > 0).astype(np.float32)))
    # The black bands are cropped away: every row is near the face's colour. (JPEG's 8x8 blocks smear the
    # bands' edges into the outermost rows a little; an uncropped or shifted face would have black rows.)
    for image, colour in zip(test.images, BODY[4:]):
        off = (image.float() - torch.tensor(colour).view(3, 1, 1)).abs().amax(0)
        assert off[1:-1].amax() < 40 and off.amax() < 120


def test_celeba_without_partition_file_splits_90_10_in_file_order(tmp_path):
    write_celeba_folder(tmp_path, partition=(0,) * 6)
    (tmp_path / "list_eval_partition.txt").unlink()
    train = data.read_celeba_folder(tmp_path, "train", None, 16)
    test = data.read_celeba_folder(tmp_path, "test", None, 16)
    assert (len(train[0]), len(test[0])) == (5, 1) and train[1].shape == (5, len(data.DEFAULT_CELEBA_ATTRIBUTES))
    assert len(data.read_celeba_folder(tmp_path, "train", ["Young"], 16, limit=2)[0]) == 2


def test_celeba_errors_say_what_to_do(tmp_path):
    write_celeba_folder(tmp_path)
    with pytest.raises(ValueError, match="Smilling.*Smiling"):  # names the valid attributes
        load_celeba("train", path=tmp_path, attributes=["Smilling"], verbose=False)
    bare = tmp_path / "no_attr"
    write_celeba_folder(bare, attr_file=False)
    with pytest.raises(DatasetUnavailableError, match="list_attr_celeba.txt not found.*--data"):
        load_celeba("train", path=bare, verbose=False)


def test_celeba_offline_is_lfw_faces_with_zero_labels_and_says_so(capsys):
    ds = load_celeba("train", attributes=["Male", "Young", "Bald"], size=32)  # auto: no folder, download fails
    err = capsys.readouterr().err
    assert "Google Drive" in err and "COURSE_CELEBA_DIR" in err and "no CelebA attributes" in err
    assert ds.images.shape == (100, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:, 0], ds.images[:, 2]), "grey faces repeated to 3 channels"
    assert torch.equal(ds.labels, torch.zeros(100, 3)) and ds.classes == ["Male", "Young", "Bald"]
    assert ds.source.startswith("offline") and "smoke runs only" in ds.source
    assert ds.images.float().std() > 20, "real faces, not a blank stand-in"
    assert load_celeba(source="offline", size=64, verbose=False).images.shape == (100, 3, 64, 64)


# ---------------------------------------------------------------- Twemoji multi-hot

def test_twemoji_multi_hot_has_one_category_and_one_own_subcategory_bit():
    ds = data.load_twemoji_multi_hot(16, "all", verbose=False)
    k = len(TWEMOJI_CATEGORIES)
    subs = ds.classes[k:]
    assert ds.classes[:k] == TWEMOJI_CATEGORIES and ds.labels.shape == (len(ds), k + len(subs))
    assert len(subs) == len(set(subs)) > k and ds.name == "twemoji16_multihot"
    assert torch.equal(ds.labels[:, :k].sum(1), torch.ones(len(ds)))
    assert torch.equal(ds.labels[:, k:].sum(1), torch.ones(len(ds)))
    assert (ds.labels[:, k:].sum(0) > 0).all(), "every subcategory bit is used"
    catalogue = json.loads(data.twemoji.twemoji_files()[1].read_text())
    parent = {e["subcategory"]: e["category"] for e in catalogue}
    for label in ds.labels:
        category, sub = int(label[:k].argmax()), subs[int(label[k:].argmax())]
        assert parent[sub] == TWEMOJI_CATEGORIES[category]


def test_twemoji_multi_hot_keeps_the_one_hot_images_and_split():
    one_hot = data.load_twemoji(16, "test", verbose=False)
    multi = data.load_twemoji_multi_hot(16, "test", verbose=False)
    assert torch.equal(multi.images, one_hot.images) and multi.names == one_hot.names
    assert torch.equal(multi.class_indices, one_hot.labels)  # the category bits come first


# ---------------------------------------------------------------- load_dataset

def test_load_dataset_dispatches_lesson4_names(tmp_path):
    write_cifar10_batches(tmp_path / "cifar")
    assert len(load_dataset("cifar10", "test", root=tmp_path / "cifar", verbose=False)) == 4
    assert len(load_dataset("CIFAR-10", "test", path=tmp_path / "cifar", verbose=False)) == 4
    assert load_dataset("cifar10", source="offline", verbose=False).images.shape == (20, 3, 32, 32)
    write_celeba_folder(tmp_path / "celeba")
    faces = load_dataset("celeba", "test", path=tmp_path / "celeba", attributes=["Young"], verbose=False)
    assert faces.images.shape == (2, 3, 64, 64) and faces.classes == ["Young"]  # size 64 unless given
    lfw = load_dataset("celeba", source="offline", size=32, verbose=False)
    assert lfw.images.shape == (100, 3, 32, 32) and lfw.classes == data.DEFAULT_CELEBA_ATTRIBUTES
    multi = load_dataset("twemoji16_multihot", "test", verbose=False)
    assert multi.name == "twemoji16_multihot" and multi.labels.shape[1] == len(multi.classes) > 5
    assert load_dataset("twemoji16", "test", verbose=False).labels.shape[1] == 5, "the one-hot variant is unchanged"
    with pytest.raises(ValueError, match="attributes= and size= are for celeba"):
        load_dataset("mnist", attributes=["Male"])
    with pytest.raises(ValueError, match="cifar10"):
        load_dataset("cifar100")


# ---------------------------------------------------------------- the training job on each data set

@pytest.mark.slow
def test_train_cifar10_from_its_folder_judges_with_that_folder(tmp_path, monkeypatch):
    """`train cifar10 --data DIR`: trained on DIR's batches, and the judge and the FID reference are asked of DIR
    too (not of a download that fails offline and would fall back to 20 images)."""
    from course_utils import jobs
    write_cifar10_batches(tmp_path / "cifar", per_batch=8)
    asked = {}

    class Judged:
        def to_dict(self):
            return {"class_accuracy": 0.5}

    def judged(models, *args, data_path=None, **kwargs):
        asked["data_path"] = data_path
        return {name: Judged() for name in models}

    monkeypatch.setattr(jobs, "evaluate_models", judged)
    metrics = jobs.train("cifar10", "smoke", tmp_path / "run", data_path=tmp_path / "cifar", progress=False)
    assert metrics["num_train"] == 40 and metrics["data_source"].startswith("torchvision files")
    assert asked["data_path"] == tmp_path / "cifar" and metrics["class_accuracy"] == 0.5
    assert metrics["raw"]["class_accuracy"] == 0.5


@pytest.mark.slow
def test_offline_cifar10_trains_but_no_judge_is_made_from_20_images(tmp_path):
    """foolbox's 20 images run every code path; no judge is trained or cached on them, and the run says why."""
    from course_utils.evaluation import judge_dirs, load_or_train_judge
    from course_utils.jobs import train
    metrics = train("cifar10", "smoke", tmp_path / "run", progress=False)  # evaluate=True by default
    assert metrics["steps"] == 4 and (tmp_path / "run" / "pipeline" / "model_index.json").exists()
    assert "class_accuracy" not in metrics and "smoke runs only" in metrics["evaluation"]
    with pytest.raises(DatasetUnavailableError, match="real training data.*--data DIR"):
        load_or_train_judge("cifar10", verbose=False)
    assert not judge_dirs("cifar10")[0].exists(), "nothing cached that a later real run would trust"


@pytest.mark.slow
def test_train_celeba_from_its_folder_conditions_on_the_chosen_attributes(tmp_path):
    from course_utils.jobs import train
    from course_utils.pipelines import load_pipeline
    write_celeba_folder(tmp_path / "celeba", partition=(0,) * 6)
    metrics = train("celeba", "smoke", tmp_path / "run", data_path=tmp_path / "celeba", progress=False,
                            overrides={"batch_size": 4, "max_steps": 2})
    assert metrics["steps"] == 2 and metrics["num_train"] == 6 and metrics["data_source"].startswith("files:")
    assert metrics["evaluation"] == "skipped: no judge for this data set"
    unet = load_pipeline(tmp_path / "run", expected_model="ScratchUNet").unet
    assert unet.config.label_names == ["Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young"]  # celeba.yaml
    assert unet.config.sample_size == 32  # the smoke preset's image_size
