import os

import pytest

from course_fixtures import TINY_UNET

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_configure(config):
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return  # pytest-xdist's controller runs no test: it need not spend seconds importing torch
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", min(2, os.cpu_count() or 1))))


@pytest.fixture
def tiny_model():
    import torch

    from course_utils.models import ClassConditionedUnet
    torch.manual_seed(0)
    return ClassConditionedUnet(num_classes=10, sample_size=8, in_channels=1, **TINY_UNET)


@pytest.fixture
def tiny_dataset():
    """64 random 8x8 'images' with labels, in the real ImageDataset container."""
    import torch

    from course_utils.data import ImageDataset
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,), generator=g)
    return ImageDataset(images, labels, [str(i) for i in range(10)], source="fixture", name="tiny")
