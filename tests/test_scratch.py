"""Lesson 4: the hand-written UNet and DDPM equations, checked piece by piece (and against diffusers)."""
import json

import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel

from course_utils.scratch import (
    CosineDDPM,
    CrossAttention,
    Downsample,
    FiLM,
    LabelTokens,
    ResBlock,
    ScratchUNet,
    SelfAttention,
    TimeEmbedding,
    Upsample,
    attention,
    cosine_betas,
    shape_trace,
    sinusoidal_embedding,
)

TINY = dict(sample_size=16, in_channels=3, num_labels=5, channels=(8, 16, 16), num_res_blocks=1,
            attention_resolutions=(8,), heads=2, groups=4, label_dim=8)


def tiny_unet(**kw):
    torch.manual_seed(0)
    return ScratchUNet(**{**TINY, **kw})


def test_sinusoidal_embedding_shape_range_and_distinct_steps():
    e = sinusoidal_embedding(torch.tensor([0, 1, 500, 999]), 32)
    assert e.shape == (4, 32)
    assert e.abs().max() <= 1
    assert torch.allclose(e[0, :16], torch.zeros(16)) and torch.allclose(e[0, 16:], torch.ones(16))  # sin 0, cos 0
    assert torch.cdist(e, e).fill_diagonal_(1).min() > 0.1  # every timestep gets its own vector
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(torch.tensor([1]), 7)


def test_film_scales_and_shifts_per_channel_and_changes_with_t():
    torch.manual_seed(0)
    film, time = FiLM(16, 4), TimeEmbedding(8, 16)
    h = torch.randn(2, 4, 5, 5)
    out_a = film(h, time(torch.tensor([10, 10])))
    out_b = film(h, time(torch.tensor([900, 900])))
    assert out_a.shape == h.shape
    assert not torch.allclose(out_a, out_b)
    with torch.no_grad():  # zero projection: scale 0 and shift 0, the identity
        film.proj.weight.zero_()
        film.proj.bias.zero_()
    assert torch.equal(film(h, time(torch.tensor([10, 900]))), h)


def test_resblock_shapes_and_time_dependence():
    torch.manual_seed(0)
    block, time = ResBlock(8, 16, 32, groups=4), TimeEmbedding(8, 32)
    x = torch.randn(2, 8, 6, 6)
    out = block(x, time(torch.tensor([5, 5])))
    assert out.shape == (2, 16, 6, 6)
    assert not torch.allclose(out, block(x, time(torch.tensor([700, 700]))))


def test_attention_matches_the_softmax_formula():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 6, 8), torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    out = attention(q, k, v, heads=2)
    qh, kh, vh = (x.reshape(2, -1, 2, 4).transpose(1, 2) for x in (q, k, v))
    by_hand = torch.softmax(qh @ kh.transpose(-1, -2) / 4 ** 0.5, dim=-1) @ vh
    assert torch.allclose(out, by_hand.transpose(1, 2).reshape(2, 6, 8), atol=1e-5)


def test_attention_and_resampling_shapes():
    x = torch.randn(2, 8, 8, 8)
    assert SelfAttention(8, heads=2, groups=4)(x).shape == x.shape
    assert CrossAttention(8, 5, heads=2, groups=4)(x, torch.randn(2, 3, 5)).shape == x.shape
    assert Downsample(8)(x).shape == (2, 8, 4, 4)
    assert Upsample(8)(x).shape == (2, 8, 16, 16)
    with pytest.raises(ValueError, match="heads"):
        SelfAttention(6, heads=4)


def test_cross_attention_responds_to_the_condition():
    torch.manual_seed(0)
    layer, x = CrossAttention(8, 4, heads=2, groups=4), torch.randn(1, 8, 4, 4)
    a, b = layer(x, torch.randn(1, 2, 4)), layer(x, torch.randn(1, 2, 4))
    assert not torch.allclose(a, b)


def test_label_tokens_one_per_label_present_or_absent():
    tokens = LabelTokens(4, 6)
    out = tokens(torch.tensor([[1.0, 0, 0, 1], [0, 0, 0, 0]]))
    assert out.shape == (2, 4, 6)
    assert torch.equal(out[0, 0], tokens.present[0]) and torch.equal(out[0, 1], tokens.absent[1])
    assert torch.equal(out[1], tokens.absent)  # no label at all: the null condition


def test_unet_output_shape_and_how_its_size_follows_the_widths():
    model = tiny_unet()
    x = torch.randn(3, 3, 16, 16)
    out = model(x, torch.tensor([1, 500, 999]), torch.tensor([0, 2, 4]))
    assert out.shape == x.shape
    # nearly every weight is a C_in x C_out matrix or kernel, so twice the widths is about four times the parameters;
    # a width setting that some block ignored would break the ratio
    wide = tiny_unet(channels=tuple(2 * c for c in TINY["channels"]), label_dim=2 * TINY["label_dim"])
    ratio = sum(p.numel() for p in wide.parameters()) / sum(p.numel() for p in model.parameters())
    assert 3.6 < ratio < 4.05


def test_shape_trace_halves_then_doubles():
    rows = shape_trace(tiny_unet())
    names = [n for n, _ in rows]
    assert names[0].startswith("conv_in") and names[-1].startswith("conv_out")
    sizes = [s[-1] for _, s in rows]
    assert min(sizes) == 4 and sizes[0] == sizes[-1] == 16
    assert any("CrossAttention" in n for n in names) and any("SelfAttention" in n for n in names)


def test_unet_output_depends_on_time_and_on_the_label():
    model = tiny_unet()
    x = torch.randn(2, 3, 16, 16)
    t = torch.tensor([300, 300])
    base = model(x, t, torch.tensor([1, 1]))
    assert not torch.allclose(base, model(x, torch.tensor([800, 800]), torch.tensor([1, 1])))
    assert not torch.allclose(base, model(x, t, torch.tensor([3, 3])))
    multi = model(x, t, torch.tensor([[1.0, 0, 1, 0, 0], [1.0, 0, 1, 0, 0]]))  # multi-hot
    assert not torch.allclose(base, multi)


def test_bad_input_gives_clear_errors():
    model = tiny_unet()
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        model(x, torch.tensor([1, 1]), torch.ones(2, 4))  # a multi-hot vector of the wrong length
    with pytest.raises(ValueError, match="out of range"):
        model(x, torch.tensor([1, 1]), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="divisible by 4"):
        ScratchUNet(**{**TINY, "sample_size": 18})  # 18 cannot be halved twice
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 3, 8, 8), torch.tensor([1, 1]), torch.tensor([0, 1]))


def test_save_load_round_trip(tmp_path):
    model = tiny_unet(label_names=list("abcde"))
    model.save_pretrained(tmp_path / "unet")
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").exists()
    again = ScratchUNet.from_pretrained(tmp_path / "unet")
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([3, 900]), torch.tensor([0, 4])
    assert torch.equal(model(x, t, y), again(x, t, y))
    assert again.config.label_names == list("abcde")


def test_cosine_betas_equal_diffusers_squaredcos_cap_v2():
    ours = cosine_betas(1000)
    theirs = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").betas
    assert torch.allclose(ours, theirs, atol=1e-7)
    assert ours.max() == pytest.approx(0.999)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_forward_process_and_target_match_diffusers(prediction_type):
    ours = CosineDDPM(prediction_type=prediction_type)
    theirs = ours.to_diffusers()
    x0, noise, t = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), torch.tensor([0, 10, 500, 999])
    assert torch.allclose(ours.add_noise(x0, noise, t), theirs.add_noise(x0, noise, t), atol=1e-6)
    assert torch.allclose(ours.get_velocity(x0, noise, t), theirs.get_velocity(x0, noise, t), atol=1e-6)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("num_inference_steps", [1000, 25])
def test_hand_written_step_matches_ddpm_scheduler_step(prediction_type, num_inference_steps):
    ours = CosineDDPM(prediction_type=prediction_type)
    theirs = ours.to_diffusers()
    theirs.set_timesteps(num_inference_steps)
    steps = ours.timesteps(num_inference_steps)
    assert steps == theirs.timesteps.tolist()
    torch.manual_seed(0)
    x, pred = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    for i in (0, len(steps) // 2, len(steps) - 1):  # the noisiest step, one in the middle, the last
        t = steps[i]
        prev_t = steps[i + 1] if i + 1 < len(steps) else -1
        expected = theirs.step(pred, t, x, generator=torch.Generator().manual_seed(i)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(i))
        assert torch.allclose(ours.step(pred, t, x, noise, prev_t=prev_t), expected, atol=1e-5), t


def test_l_simple_and_hand_sampling_run_on_the_unet():
    model, ddpm = tiny_unet(), CosineDDPM()
    x0 = torch.rand(4, 3, 16, 16) * 2 - 1
    loss = ddpm.l_simple(model, x0, torch.tensor([0, 1, 2, 3]), torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and loss > 0
    loss.backward()
    images, frames = ddpm.sample(model, torch.tensor([0, 4]), num_inference_steps=4,
                                 generator=torch.Generator().manual_seed(0), keep_every=2)
    assert images.shape == (2, 3, 16, 16) and len(frames) == 2 and images.abs().max() < 10


def test_ema_update_arithmetic():
    """shadow <- d * shadow + (1 - d) * weight, with diffusers' warm-up of d: 0 on the first step (a copy),
    then (1 + n) / (10 + n), capped at the decay asked for."""
    layer = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    ema = EMAModel(layer.parameters(), decay=0.9, use_ema_warmup=False)
    expected = 0.0
    for n, value in enumerate([1.0, 3.0, -2.0, 5.0, 5.0, 5.0] + [7.0] * 100, start=1):
        with torch.no_grad():
            layer.weight.fill_(value)
        d = 0.0 if n == 1 else min(0.9, n / (9 + n))
        expected = d * expected + (1 - d) * value
        ema.step(layer.parameters())
        assert ema.shadow_params[0].item() == pytest.approx(expected, rel=1e-5), n
    assert ema.cur_decay_value == pytest.approx(0.9)


def test_hand_sampler_equals_diffusers_ddpm_in_the_shared_sampler():
    """Same seed, same noise drawn in the same order: our loop and diffusers' DDPMScheduler agree."""
    from course_utils.sampling import sample_images
    model, ddpm = tiny_unet(), CosineDDPM(prediction_type="v_prediction")
    labels = torch.tensor([0, 3, 4])
    ours, _ = ddpm.sample(model, labels, num_inference_steps=5, generator=torch.Generator().manual_seed(7))
    theirs = sample_images(model, ddpm.to_diffusers(), labels, num_inference_steps=5, sampler="ddpm", seed=7)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_pipeline_round_trip_with_the_scratch_unet(tmp_path):
    from course_utils.pipelines import ConditionalDDPMPipeline, load_pipeline
    pipe = ConditionalDDPMPipeline(unet=tiny_unet(), scheduler=CosineDDPM().to_diffusers())
    pipe.save_pretrained(tmp_path / "pipe")
    again = load_pipeline(tmp_path / "pipe", expected_model="ScratchUNet")
    kw = dict(num_inference_steps=2, output_type="pt")
    a = pipe([0, 4], generator=torch.Generator().manual_seed(0), **kw).images
    vectors = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 1]])
    b = again(vectors, generator=torch.Generator().manual_seed(0), **kw).images
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        again(torch.ones(1, 3), **kw)


def test_a_scratch_pipeline_loads_before_course_utils_scratch_is_imported(tmp_path, monkeypatch):
    import sys

    import course_utils
    from course_utils.pipelines import ConditionalDDPMPipeline, load_pipeline
    ConditionalDDPMPipeline(unet=tiny_unet(), scheduler=CosineDDPM().to_diffusers()).save_pretrained(tmp_path / "p")
    # as in a fresh session: `import course_utils` has not imported its scratch module yet
    monkeypatch.setattr(course_utils, "scratch", sys.modules["course_utils.scratch"])
    monkeypatch.delitem(sys.modules, "course_utils.scratch")
    assert type(load_pipeline(tmp_path / "p").unet).__name__ == "ScratchUNet"


def test_yaml_configs_load_for_every_task_and_preset(tmp_path):
    from course_utils.configs import PRESET_NAMES, config_text, load_config
    for task in ("emoji32", "cifar10", "celeba"):
        for preset in PRESET_NAMES:
            cfg = load_config(task, preset)
            assert {"dataset", "model", "train", "sample", "exercise"} <= set(cfg)
            assert ("multi_hot" in cfg) == (task == "emoji32")  # CIFAR-10 and CelebA mix with the main model
            ScratchUNet(sample_size=cfg.get("image_size", 32), num_labels=3, **cfg["model"])  # the widths fit
    edited = tmp_path / "mine.yaml"
    edited.write_text("dataset: twemoji32\nmodel_class: ScratchUNet\npresets:\n  cpu:\n    model: {channels: [8, 16]}\n"
                      "    train: {}\n    sample: {sampler: dpm, steps: 2}\n")
    assert load_config("emoji32", "cpu", edited)["model"]["channels"] == (8, 16)
    with pytest.raises(ValueError, match="no preset 'gpu'"):
        load_config("emoji32", "gpu", edited)
    resolved = tmp_path / "resolved.yaml"  # what `config emoji32 --preset cpu` prints, edited, serves as a config
    text = config_text("emoji32", "cpu")  # the train section prints as a block or on one line, by its length
    mine = text.replace("\ntrain:\n", "\ntrain:\n  seed: 7\n", 1).replace("\ntrain: {", "\ntrain: {seed: 7, ", 1)
    assert mine.count("seed: 7") == 1
    resolved.write_text(mine)
    cfg = load_config("emoji32", "cpu", resolved)
    assert cfg["train"]["seed"] == 7 and cfg["model"] == load_config("emoji32", "cpu")["model"]
    with pytest.raises(ValueError, match="no config file at .*config TASK"):
        load_config("emoji32", "cpu", tmp_path / "missing.yaml")


@pytest.mark.slow
def test_train_scratch_smoke_writes_pipeline_gif_and_resumes(tmp_path):
    from course_utils.jobs import train
    from course_utils.pipelines import load_pipeline
    out = tmp_path / "run"
    first = train("emoji32", "smoke", out, evaluate=False, progress=False, overrides={"max_steps": 2})
    assert first["steps"] == 2
    for name in ("samples.png", "denoising.gif", "loss.png", "metrics.json"):
        assert (out / name).exists(), name
    second = train("emoji32", "smoke", out, evaluate=False, progress=False, overrides={"max_steps": 4})
    assert second["steps"] == 4 and len(json.loads((out / "losses.json").read_text())) == 4  # resumed, not restarted
    assert load_pipeline(out, expected_model="ScratchUNet").num_classes == 5


def test_labels_in_film_adds_the_label_to_the_time_vector():
    model = tiny_unet(labels_in_film=True)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([300, 300])
    with torch.no_grad():  # silence the cross-attention path: any label effect left comes through FiLM
        model.label_tokens.present.zero_()
        model.label_tokens.absent.zero_()
    assert not torch.allclose(model(x, t, torch.tensor([1, 1])), model(x, t, torch.tensor([3, 3])))


def test_patch_size_folds_pixels_into_channels_and_back():
    folded = tiny_unet(patch_size=2)
    x = torch.randn(2, 3, 16, 16)
    assert folded(x, torch.tensor([3, 900]), torch.tensor([0, 4])).shape == x.shape
    trace = shape_trace(folded)
    assert trace[0] == ("fold (PixelUnshuffle)", (1, 12, 8, 8))
    assert trace[-1] == ("unfold (PixelShuffle)", (1, 3, 16, 16))
    assert not any(n.startswith(("fold", "unfold")) for n, _ in shape_trace(tiny_unet()))  # unfolded: no such rows
    rows = dict(trace)
    conv_in = next(s for n, s in rows.items() if n.startswith("conv_in"))
    assert conv_in[1:] == (8, 8, 8)  # 2x2 pixels folded: the first level works at 8x8
    assert folded.conv_in.in_channels == 12 and folded.conv_out.out_channels == 12
    assert min(s[-1] for s in rows.values()) == 2  # two halvings below the folded 8x8
    with pytest.raises(ValueError, match="divisible by 8"):
        ScratchUNet(**{**TINY, "sample_size": 12, "patch_size": 2})  # 12 / 2 = 6 cannot be halved twice


def test_guided_sampling_with_integer_classes_guides_away_from_no_label_not_from_class_0():
    # evaluate_model and the lessons pass integer classes; with torch.zeros_like as the null condition, an integer 0
    # would be class 0, so class 0 would not be guided at all and the others pushed away from class 0
    from course_utils.sampling import sample_images

    model, sched = tiny_unet(), DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    classes = torch.tensor([0, 0, 3])

    def draw(conditions, scale):
        return sample_images(model, sched, conditions, 3, "ddpm", seed=0, guidance_scale=scale,
                             null_condition=torch.zeros_like)

    one_hot = torch.eye(5)[classes]
    torch.testing.assert_close(draw(classes, 3.0), draw(one_hot, 3.0))  # integers are one-hot vectors
    # against the all-zero "no label", the scale changes class 0's samples too
    assert not torch.allclose(draw(classes, 2.0)[:2], draw(classes, 3.0)[:2])
