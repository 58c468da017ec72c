import json

import pytest
import torch

from course_utils.configs import load_config
from course_utils.errors import ConfigError
from course_utils.schedulers import make_noise_scheduler
from course_utils.training import (TrainConfig, diffusion_loss, list_checkpoints, random_flip, steps_for_epochs,
                                   train_diffusion)

CFG = dict(batch_size=16, learning_rate=1e-3, ema_decay=0.9, mixed_precision="no", log_every=1, seed=3,
           lr_schedule="cosine", warmup_steps=2)


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_loss_decreases_on_a_fixed_batch(tiny_model, tiny_dataset):
    res = train_diffusion(tiny_model, make_noise_scheduler(), tiny_dataset.subset(16),
                          TrainConfig(max_steps=30, **{**CFG, "learning_rate": 3e-3}), progress=False)
    assert res.step == 30 and len(res.losses) == 30
    assert sum(res.losses[-5:]) / 5 < sum(res.losses[:5]) / 5


def _fresh_tiny_unet():
    from course_utils.models import ClassConditionedUnet

    from course_fixtures import TINY_UNET

    torch.manual_seed(0)
    return ClassConditionedUnet(num_classes=10, sample_size=8, **TINY_UNET)


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_dataset, tmp_path):
    fresh = _fresh_tiny_unet
    sched = make_noise_scheduler()
    full = train_diffusion(fresh(), sched, tiny_dataset, TrainConfig(max_steps=6, **CFG), progress=False)

    class Interrupt(Exception):
        pass

    def crash_at_5(step, loss):
        if step == 5:
            raise Interrupt

    out = tmp_path / "run"
    with pytest.raises(Interrupt):
        train_diffusion(fresh(), sched, tiny_dataset, TrainConfig(max_steps=6, checkpoint_every=2, keep_last=2, **CFG),
                        out_dir=out, on_step=crash_at_5, progress=False)
    names = [p.name for p in list_checkpoints(out / "checkpoints")]
    assert names == ["step-0000002", "step-0000004"], "keep-last-2 of the checkpoints every 2 steps"
    (out / "checkpoints" / "step-0000006.tmp").mkdir()  # a half-written checkpoint must be ignored

    resumed = train_diffusion(fresh(), sched, tiny_dataset, TrainConfig(max_steps=6, checkpoint_every=2, **CFG),
                              out_dir=out, progress=False)
    assert resumed.step == 6 and len(resumed.losses) == 6
    state = json.loads((out / "checkpoints" / "step-0000006" / "trainer_state.json").read_text())
    assert state["step"] == 6
    torch.testing.assert_close(resumed.losses, full.losses, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(_params(resumed.raw_model), _params(full.raw_model), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(_params(resumed.model), _params(full.model), rtol=1e-4, atol=1e-6)


def test_resume_refuses_a_checkpoint_of_another_model(tiny_model, tiny_dataset, tmp_path):
    from course_utils.evaluation import JudgeClassifier
    sched = make_noise_scheduler()
    train_diffusion(tiny_model, sched, tiny_dataset, TrainConfig(max_steps=1, **CFG), out_dir=tmp_path, progress=False)
    state_file = list_checkpoints(tmp_path / "checkpoints")[-1] / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["model_class"] = JudgeClassifier.__name__
    state_file.write_text(json.dumps(state))
    with pytest.raises(ValueError, match="checkpoint of JudgeClassifier"):
        train_diffusion(tiny_model, sched, tiny_dataset, TrainConfig(max_steps=2, **CFG), out_dir=tmp_path,
                        progress=False)


def test_time_limit_stops_early(tiny_model, tiny_dataset, tmp_path):
    res = train_diffusion(tiny_model, make_noise_scheduler(), tiny_dataset,
                          TrainConfig(max_steps=1000, time_limit_s=0.0, **CFG), out_dir=tmp_path, progress=False)
    assert res.stopped_early and res.step == 1
    # run again on the same folder: the run's time is spent, so it resumes and stops without another step
    again = train_diffusion(_fresh_tiny_unet(), make_noise_scheduler(), tiny_dataset,
                            TrainConfig(max_steps=1000, time_limit_s=0.0, **CFG), out_dir=tmp_path, progress=False)
    assert again.stopped_early and again.step == 1 and len(again.losses) == 1
    torch.testing.assert_close(_params(again.raw_model), _params(res.raw_model))


def test_ema_weights_lag_behind_the_raw_weights(tiny_model, tiny_dataset):
    # EMA warm-up: the decay is 0 at the first step (EMA = raw), then grows, so the two part ways
    res = train_diffusion(tiny_model, make_noise_scheduler(), tiny_dataset, TrainConfig(max_steps=5, **CFG),
                          progress=False)
    assert not torch.allclose(_params(res.model), _params(res.raw_model))
    no_ema = train_diffusion(tiny_model, make_noise_scheduler(), tiny_dataset,
                             TrainConfig(max_steps=1, **{**CFG, "ema_decay": None}), progress=False)
    assert no_ema.model is no_ema.raw_model


def test_fused_optimizer_and_ema_do_the_arithmetic_of_the_loops(tiny_dataset):
    # fused_optimizer (the default) only changes how AdamW and the EMA run, not what they compute
    runs = [train_diffusion(_fresh_tiny_unet(), make_noise_scheduler(), tiny_dataset,
                            TrainConfig(max_steps=4, fused_optimizer=fused, **CFG), progress=False)
            for fused in (True, False)]
    fused, loops = runs
    assert fused.raw_model is not loops.raw_model
    torch.testing.assert_close(fused.losses, loops.losses, rtol=1e-4, atol=1e-6)
    # up to rounding: AdamW's m / sqrt(v) on tiny gradients rounds apart by a few hundredths of one step (lr 1e-3),
    # so no weight may differ by more than a tenth of one step
    step = CFG["learning_rate"] / 10
    torch.testing.assert_close(_params(fused.raw_model), _params(loops.raw_model), rtol=0, atol=step)
    torch.testing.assert_close(_params(fused.model), _params(loops.model), rtol=0, atol=step)
    assert not torch.allclose(_params(fused.model), _params(fused.raw_model))  # the EMA did average


def test_random_flip_mirrors_about_half_the_images_and_only_left_right():
    torch.manual_seed(0)
    images = torch.rand(400, 3, 4, 5)
    flipped = random_flip(images)
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    kept = (flipped == images).flatten(1).all(1)
    assert bool((mirrored ^ kept).all()), "each image is either kept or mirrored left-right, nothing else"
    assert 160 < int(mirrored.sum()) < 240


def test_random_flip_is_a_train_setting_and_the_run_trains_on_flipped_images(tiny_dataset):
    import course_utils.training as training

    assert TrainConfig.from_config({"train": {"random_flip": True}}, 10).random_flip
    seen = []

    def loss_fn(model, noise_scheduler, x0, cond, config, null_condition=None):
        seen.append(x0.detach().clone())
        return training.training_loss(model, noise_scheduler, x0, cond, config, null_condition)

    data = tiny_dataset.subset(16)  # one batch
    for flip in (False, True):
        seen.clear()
        train_diffusion(_fresh_tiny_unet(), make_noise_scheduler(), data,
                        TrainConfig(max_steps=1, random_flip=flip, **CFG), loss_fn=loss_fn, progress=False)
        batch = seen[0]
        originals = [data[i][0] for i in range(len(data))]
        as_stored = [any(torch.equal(x, o) for o in originals) for x in batch]
        if not flip:
            assert all(as_stored)
        else:  # mirrored images are not in the data set (the tiny images are not symmetric)
            assert not all(as_stored) and any(as_stored)


def test_min_snr_weighting_downweights_low_noise_steps():
    sched = make_noise_scheduler()
    pred, target = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    t = torch.tensor([1, 900])
    plain = diffusion_loss(pred, target, sched, t)
    weighted = diffusion_loss(pred, target, sched, t, snr_gamma=5.0)
    assert plain.item() == pytest.approx(1.0)
    # at t=1 SNR is huge, so its weight gamma/SNR is tiny; at t=900 SNR < 5 and the weight is 1
    assert weighted.item() == pytest.approx(0.5, abs=0.01)


def test_condition_dropout_needs_a_null_condition(tiny_model, tiny_dataset):
    with pytest.raises(ValueError, match="null_condition"):
        train_diffusion(tiny_model, make_noise_scheduler(), tiny_dataset,
                        TrainConfig(max_steps=1, cond_drop_prob=0.1, **CFG), progress=False)


def test_train_config_defaults_are_the_course_recipe():
    cfg = TrainConfig()
    recipe = (cfg.snr_gamma, cfg.loss_weighting, cfg.lr_schedule, cfg.learning_rate)
    assert recipe == (5.0, "clipped_snr", "cosine", 2e-3)
    # the configs rely on it: lesson 1's cpu preset writes none of these and gets the recipe
    mnist = TrainConfig.from_config(load_config("mnist", "cpu"), 60000)
    assert (mnist.snr_gamma, mnist.loss_weighting, mnist.warmup_steps) == (5.0, "clipped_snr", 50)
    # and lesson 4's CIFAR-10 asks for plain L_simple explicitly
    assert TrainConfig.from_config(load_config("cifar10", "gpu"), 50000).snr_gamma is None


def test_train_config_from_a_config_section_and_epochs():
    cfg = load_config("emoji32", "cpu")
    exercise = TrainConfig.from_config(cfg, 753, "exercise")
    assert exercise.cond_drop_prob == 0.1 and exercise.batch_size == 32 and exercise.max_steps == 1100
    gpu = TrainConfig.from_config(load_config("mnist", "gpu"), 60000)
    assert gpu.max_steps == 4680  # 10 epochs of batch 128
    sprites = TrainConfig.from_config(load_config("sprites", "gpu"), 753)
    assert sprites.max_steps == 4000  # 32 epochs of the offline emoji are fewer than min_steps
    with pytest.raises(ConfigError, match="unknown train setting.*lerning_rate"):
        TrainConfig.from_config({"train": {"lerning_rate": 1e-3}}, 10)


def test_the_benches_source_recipe_is_lesson_1s_gpu_preset_unguided():
    """The side-by-side benches measure the cpu preset against the recipe as the source course ran it: lesson 1's gpu
    preset, without the label dropout and the guided sampler that the preset adds (README)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from common import preset_recipes

    gpu = load_config("mnist", "gpu")
    assert gpu["model"]["null_class"] and gpu["train"]["cond_drop_prob"] == 0.1 and gpu["sample"]["guidance_scale"]
    source = preset_recipes("mnist", ["source"])["source recipe (gpu preset)"]
    assert not source["model"]["null_class"] and source["train"]["cond_drop_prob"] == 0.0
    assert source["sample"] == {"sampler": "ddpm", "steps": 25, "guidance_scale": None, "guidance_interval": None}
    assert source["model"]["block_out_channels"] == gpu["model"]["block_out_channels"]
    assert TrainConfig.from_config(source, 60000).max_steps == 4680
    # lesson 2's gpu preset has no label dropout: its source recipe is the preset itself
    assert preset_recipes("sprites", ["source"])["source recipe (gpu preset)"] == load_config("sprites", "gpu")


def test_train_config_reads_yaml_values_as_their_types():
    import yaml

    # YAML reads 4e-3 (no dot) as a string and a list for the betas: both arrive as the numbers they mean
    cfg = {"train": yaml.safe_load("{learning_rate: 4e-3, adam_betas: [0.9, 0.99], max_steps: 1e3, ema_decay: null}")}
    config = TrainConfig.from_config(cfg, 10)
    assert config.learning_rate == 0.004 and config.adam_betas == (0.9, 0.99)
    assert config.max_steps == 1000 and isinstance(config.max_steps, int) and config.ema_decay is None
    for bad, message in [({"learning_rate": "fast"}, "train.learning_rate .* must be a number, got 'fast'"),
                         ({"batch_size": 2.5}, "train.batch_size .* must be a whole number"),
                         ({"adam_betas": [0.9]}, "train.adam_betas .* must be a list of two numbers"),
                         ({"ema_warmup": "yes"}, "train.ema_warmup .* must be true or false"),
                         ({"learning_rate": None}, "must be a number, got None")]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig.from_config({"train": bad}, 10)


def test_steps_for_epochs():
    assert steps_for_epochs(10, 60000, 128) == 4680
    with pytest.raises(ValueError, match="fewer than one batch"):
        from course_utils.data import ImageDataset
        ds = ImageDataset(torch.zeros(3, 1, 8, 8, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), ["a"])
        train_diffusion(torch.nn.Linear(1, 1), make_noise_scheduler(), ds, TrainConfig(batch_size=16), progress=False)
