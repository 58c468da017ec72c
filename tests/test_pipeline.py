import json

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from course_utils.files import load_samples_npz, pretrained_dir, save_samples_npz
from course_utils.pipelines import CheckpointError, ConditionalDDPMPipeline, load_pipeline
from course_utils.sampling import labels_per_class, sample_images
from course_utils.schedulers import make_noise_scheduler


@pytest.fixture
def pipe(tiny_model):
    return ConditionalDDPMPipeline(unet=tiny_model, scheduler=make_noise_scheduler())


def test_call_returns_images_in_unit_range(pipe):
    out = pipe([1, 2, 3], num_inference_steps=3, generator=torch.manual_seed(0), output_type="pt")
    assert out.images.shape == (3, 1, 8, 8) and 0 <= out.images.min() and out.images.max() <= 1
    pil = pipe([4], num_inference_steps=2, generator=torch.manual_seed(0)).images
    assert pil[0].size == (8, 8)


def test_save_load_round_trip_gives_identical_images(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    assert (tmp_path / "p" / "unet" / "diffusion_pytorch_model.safetensors").exists()
    loaded = load_pipeline(tmp_path / "p")
    a = pipe([0, 5, 9], num_inference_steps=4, generator=torch.manual_seed(7), output_type="pt").images
    b = loaded([0, 5, 9], num_inference_steps=4, generator=torch.manual_seed(7), output_type="pt").images
    assert type(loaded.unet).__name__ == "ClassConditionedUnet"
    saved, restored = pipe.unet.state_dict(), loaded.unet.state_dict()
    assert saved.keys() == restored.keys() and all(torch.equal(saved[k], restored[k]) for k in saved)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # same weights; float reordering only


@pytest.mark.parametrize("cls", [DDIMScheduler, DPMSolverMultistepScheduler])
def test_scheduler_swap(pipe, cls):
    pipe.scheduler = cls.from_config(pipe.scheduler.config)
    out = pipe([1, 2], num_inference_steps=3, generator=torch.manual_seed(0), output_type="np").images
    assert out.shape == (2, 8, 8, 1) and np.isfinite(out).all()


def test_sample_images_is_seeded(tiny_model):
    sched = make_noise_scheduler()
    labels = labels_per_class(10, 1)
    a = sample_images(tiny_model, sched, labels, 3, "ddim", seed=1)
    b = sample_images(tiny_model, sched, labels, 3, "ddim", seed=1)
    c = sample_images(tiny_model, sched, labels, 3, "ddim", seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    imgs, traj = sample_images(tiny_model, sched, labels[:2], 4, "ddpm", seed=1, keep_every=2)
    assert len(traj) == 2 and torch.equal(traj[-1], imgs)


def test_loading_something_else_fails_clearly(tmp_path, pipe):
    with pytest.raises(CheckpointError, match="not a saved pipeline"):
        load_pipeline(tmp_path)
    pipe.save_pretrained(tmp_path / "p")
    index = tmp_path / "p" / "model_index.json"
    meta = json.loads(index.read_text())
    meta["unet"] = ["diffusers", "UNet2DConditionModel"]
    index.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="holds a UNet2DConditionModel.*needs a ClassConditionedUnet"):
        load_pipeline(tmp_path / "p", expected_model="ClassConditionedUnet")
    with pytest.raises(CheckpointError, match="could not be loaded.*train again"):  # weights of another model
        load_pipeline(tmp_path / "p")


def test_the_sampler_hands_its_seeded_generator_to_every_step_on_any_device(tiny_model, monkeypatch):
    """The same seed gives the same DDPM samples on a GPU as well: the per-step noise comes from the seeded generator
    whatever the device. Checked with PyTorch's meta device standing in for CUDA (no GPU here)."""
    from course_utils import sampling
    seen = []

    def spy(model_fn, scheduler, x, steps, generator=None, **kwargs):
        seen.append((x.device.type, generator))
        return torch.zeros(x.shape), []

    monkeypatch.setattr(sampling, "denoise", spy)
    sample_images(tiny_model.to("meta"), make_noise_scheduler(), [1, 2, 3], 2, "ddpm", seed=5, device="meta")
    (device, generator), = seen
    assert device == "meta" and generator is not None
    assert generator.initial_seed() == 5


def test_empty_labels(pipe):
    with pytest.raises(ValueError, match="empty"):
        pipe([], num_inference_steps=2)


def test_samples_file_round_trip_and_checks(tmp_path):
    imgs, labels = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    path = save_samples_npz(tmp_path / "s.npz", imgs, labels, dataset="mnist", steps=3)
    with np.load(path) as f:
        assert f["images"].dtype == np.float32 and f["labels"].dtype == np.int64
    i2, l2, meta = load_samples_npz(path)
    assert torch.equal(i2, imgs) and torch.equal(l2, labels) and meta["dataset"] == "mnist"
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 1, 8, 8), np.float32), labels=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="'labels' must have shape"):
        load_samples_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad2.npz", images=np.full((2, 1, 8, 8), 2.0, np.float32), labels=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_samples_npz(tmp_path / "bad2.npz")
    with pytest.raises(FileNotFoundError, match="course_utils sample"):
        load_samples_npz(tmp_path / "missing.npz")


@pytest.mark.parametrize("name, num_classes, shape", [("mnist-cpu", 10, (1, 28, 28)), ("sprites-cpu", 5, (3, 16, 16)),
                                                      ("emoji32-cpu", 5, (3, 32, 32))])
def test_shipped_checkpoints_load_sample_and_their_cards_give_what_the_command_wrote(name, num_classes, shape):
    """Each shipped label checkpoint loads with one call, samples each class, and its card quotes the training
    command's own step count (the card says how it was trained; a retrained checkpoint needs a new card)."""
    folder = pretrained_dir(name)
    pipe = load_pipeline(folder)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(labels_per_class(num_classes, 1), num_inference_steps=2, generator=torch.manual_seed(0),
               output_type="pt").images
    assert out.shape == (num_classes, *shape) and torch.isfinite(out).all()
    written = json.loads((folder / "train_metrics.json").read_text())
    assert written["task"] == name.removesuffix("-cpu") and written["preset"] == "cpu"
    assert f"{written['steps']:,} steps" in (folder / "README.md").read_text()
