"""The shell commands, run in-process through ``course_utils.cli.main`` (the same code as ``python -m``)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from course_utils.cli import main
from course_utils.configs import config_path
from course_utils.jobs import evaluate_file, sample_to_file, train
from course_utils.models import ClassConditionedUnet
from course_utils.pipelines import ConditionalDDPMPipeline
from course_utils.schedulers import make_noise_scheduler

from course_fixtures import TINY_UNET


@pytest.fixture
def mnist_sized_pipeline(tmp_path):
    torch.manual_seed(0)
    unet = ClassConditionedUnet(**{**TINY_UNET, "block_out_channels": (8, 8, 16),
                                   "down_block_types": ("DownBlock2D",) * 3, "up_block_types": ("UpBlock2D",) * 3})
    path = tmp_path / "run" / "pipeline"
    ConditionalDDPMPipeline(unet=unet, scheduler=make_noise_scheduler()).save_pretrained(path)
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"task": "mnist"}))
    return tmp_path / "run"


def one_line_error(capsys) -> str:
    """The error a command printed: one line starting with "error: ", the last thing it said, no traceback."""
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and not any("Traceback" in line for line in lines), lines
    return errors[0]


def test_sample_then_evaluate(mnist_sized_pipeline, tmp_path, capsys):
    out = tmp_path / "s.npz"
    assert main(["sample", str(mnist_sized_pipeline), "--per-class", "2", "--steps", "2", "--sampler", "ddim",
                 "--seed", "1", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["images"].shape == (20, 1, 28, 28) and f["images"].dtype == np.float32
        assert f["labels"].dtype == np.int64 and f["labels"].tolist() == sorted(list(range(10)) * 2)
        assert 0 <= f["images"].min() and f["images"].max() <= 1 and str(f["dataset"]) == "mnist"
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(printed[printed.index("{"):])
    assert report["num_samples"] == 20 and report["sampler"] == "ddim" and report["steps"] == 2


def test_sample_draws_on_the_default_device(mnist_sized_pipeline, tmp_path, monkeypatch):
    # the pipeline goes where default_device says (the GPU when there is one), not always to the CPU
    import course_utils.jobs as jobs
    from course_utils import pipelines

    asked, loaded_on = [], []
    monkeypatch.setattr(jobs, "default_device", lambda *a, **k: asked.append(1) or torch.device("cpu"))
    real_load = pipelines.load_pipeline
    monkeypatch.setattr(jobs, "load_pipeline",
                        lambda path, *a, **k: loaded_on.append(k.get("device")) or real_load(path, *a, **k))
    sample_to_file(mnist_sized_pipeline, tmp_path / "s.npz", per_class=1, steps=1, sampler="ddim")
    assert asked and loaded_on == [torch.device("cpu")]


def test_evaluate_reports_accuracy_and_fid(mnist_sized_pipeline, tmp_path):
    path = sample_to_file(mnist_sized_pipeline, tmp_path / "s.npz", per_class=2, steps=2, sampler="dpm")
    report = evaluate_file(path)
    assert report["dataset"] == "mnist" and report["num_samples"] == 20
    assert 0 <= report["class_accuracy"] <= 1 and report["fid"] > report["fid_real_vs_real"] >= 0
    assert report["judge_test_accuracy"] >= 0.99


def test_cli_errors_are_short_and_helpful(tmp_path, capsys):
    assert main(["sample", str(tmp_path), "--out", str(tmp_path / "x.npz")]) == 2
    assert "not a saved pipeline" in one_line_error(capsys)
    np.savez(tmp_path / "n.npz", images=np.zeros((2, 1, 28, 28), np.float32), labels=np.array([0, 12]))
    assert main(["evaluate", str(tmp_path / "n.npz"), "--dataset", "mnist"]) == 2
    assert "label 12 is out of range" in one_line_error(capsys)
    np.savez(tmp_path / "m.npz", images=np.zeros((2, 1, 28, 28), np.float32), labels=np.array([0, 1]))
    assert main(["evaluate", str(tmp_path / "m.npz")]) == 2
    assert "--dataset" in one_line_error(capsys)
    with pytest.raises(SystemExit):
        main(["sample", str(tmp_path), "--out", "x.npz", "--sampler", "euler"])


def test_a_truncated_weights_file_is_one_line(mnist_sized_pipeline, tmp_path, capsys):
    weights = mnist_sized_pipeline / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert main(["sample", str(mnist_sized_pipeline), "--out", str(tmp_path / "x.npz")]) == 2
    err = one_line_error(capsys)
    assert "could not be loaded" in err and "train again" in err


def test_zero_sampling_steps_is_one_line(mnist_sized_pipeline, tmp_path, capsys):
    assert main(["sample", str(mnist_sized_pipeline), "--steps", "0", "--out", str(tmp_path / "x.npz")]) == 2
    assert "--steps must be at least 1" in one_line_error(capsys)


def test_malformed_yaml_config_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: twemoji32\npresets:\n  smoke: {model: [unclosed\n")
    assert main(["train", "emoji32", "--preset", "smoke", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = one_line_error(capsys)
    assert "is not valid YAML at line" in err and "config TASK" in err


def test_a_file_that_is_not_npz_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.npz").write_text("these are not samples")
    assert main(["evaluate", str(tmp_path / "notes.npz")]) == 2
    assert "is not a samples file" in one_line_error(capsys)
    np.save(tmp_path / "array.npy", np.zeros(3))
    assert main(["evaluate", str(tmp_path / "array.npy")]) == 2
    assert "not a samples file" in one_line_error(capsys)


def test_config_prints_the_yaml_to_copy_and_its_resolved_preset(capsys):
    assert main(["config", "mnist"]) == 0
    assert capsys.readouterr().out == config_path("mnist").read_text()
    assert main(["config", "fashion_mnist", "--preset", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "dataset: fashion_mnist" in printed and "class_emb_size: 16" in printed
    assert "snr_gamma" not in printed or "learning_rate" in printed


def test_help_does_not_load_torch():
    code = ("import sys; from course_utils.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'diffusers', 'accelerate', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_train_sample_evaluate_sprites_offline(tmp_path, capsys):
    """Lesson 2 from the shell: Twemoji stands in for the sprite files; the run's pipeline has a label encoder."""
    run = tmp_path / "sprites"
    assert main(["train", "sprites", "--preset", "smoke", "--out", str(run), "--source", "offline"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] == "twemoji16" and metrics["steps"] == 8 and metrics["num_samples"] == 20
    assert metrics["preset"] == "smoke"
    # the preset's label dropout and guidance (lesson 2's recipe): judged with two model evaluations per step
    assert metrics["cond_drop_prob"] == 0.1 and metrics["guidance_scale"] == 2.0
    assert metrics["model_evals_per_sample"] == 2 * metrics["sampling_steps"]
    assert (run / "pipeline" / "label_encoder" / "config.json").exists() and (run / "samples.png").exists()
    out = tmp_path / "s.npz"
    # guided only on the noisier steps (lesson 1's guidance interval), as the shell asks for it
    assert main(["sample", str(run), "--per-class", "2", "--steps", "2", "--out", str(out), "--guidance-scale", "2",
                 "--guidance-interval", "500", "1000"]) == 0
    with np.load(out) as f:
        assert f["images"].shape == (10, 3, 16, 16) and str(f["dataset"]) == "twemoji16"
        assert f["guidance_interval"].tolist() == [500.0, 1000.0]
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(printed[printed.index("{"):])
    assert report["num_samples"] == 10 and report["guidance_interval"] == [500.0, 1000.0]
    assert main(["sample", str(run), "--per-class", "1", "--steps", "2", "--guidance-scale", "3",
                 "--out", str(out)]) == 0
    with np.load(out) as f:
        assert float(f["guidance_scale"]) == 3.0
    # a pipeline trained without label dropout: guidance is refused with the reason
    index = run / "pipeline" / "model_index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "label_dropout": 0.0}))
    assert main(["sample", str(run), "--guidance-scale", "3", "--out", str(out)]) == 2
    assert "without label dropout" in one_line_error(capsys)


@pytest.mark.slow
def test_train_sprites_from_real_files(tmp_path):
    from course_fixtures import write_sprite_files
    write_sprite_files(tmp_path, n=80)
    metrics = train("sprites", "smoke", tmp_path / "run", data_path=tmp_path, evaluate=False, progress=False)
    assert metrics["dataset"] == "sprites" and metrics["num_train"] == 70 and metrics["data_source"].startswith("files")
    assert main(["train", "sprites", "--preset", "smoke", "--out", str(tmp_path / "r2"),
                 "--data", str(tmp_path / "nowhere")]) == 2


@pytest.mark.slow
def test_the_preset_name_is_recorded_when_the_environment_chose_it(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PRESET", "smoke")
    metrics = train("mnist", None, tmp_path / "run", evaluate=False, progress=False, overrides={"max_steps": 1})
    assert metrics["preset"] == "smoke"


@pytest.mark.slow
def test_train_mnist_with_an_edited_config(tmp_path, capsys):
    assert main(["config", "mnist"]) == 0
    mine = tmp_path / "mine.yaml"
    mine.write_text(capsys.readouterr().out.replace("train: {max_steps: 8,", "train: {max_steps: 2,"))
    run = tmp_path / "m"
    assert main(["train", "mnist", "--preset", "smoke", "--config", str(mine), "--out", str(run), "--no-eval"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["config"] == str(mine)
    mine.write_text(mine.read_text().replace("max_steps: 2,", "max_stepz: 2,"))
    assert main(["train", "mnist", "--preset", "smoke", "--config", str(mine), "--out", str(run)]) == 2
    assert "unknown train setting(s) max_stepz" in one_line_error(capsys)
    mine.write_text(mine.read_text().replace("max_stepz: 2,", "max_steps: 2,").replace(
        "sample: {sampler: dpm, steps: 3}", "sample: {sampler: dpm, steps: 3, guidance_by_steps: [[2, 1.5]]}"))
    assert main(["train", "mnist", "--preset", "smoke", "--config", str(mine), "--out", str(tmp_path / "g")]) == 2
    assert "set sample.guidance_scale too" in one_line_error(capsys)  # said before any training
    assert not (tmp_path / "g" / "metrics.json").exists()


@pytest.mark.slow
def test_train_sample_evaluate_emoji32_with_a_config_file(tmp_path, capsys):
    """Lesson 4 from the shell: the YAML config (an edited copy, with label dropout), EMA and raw weights judged,
    guided sampling, evaluate."""
    mine = tmp_path / "mine.yaml"
    text = config_path("emoji32").read_text()
    edited = text.replace("max_steps: 6,", "max_steps: 3,").replace("log_every: 2, cond_drop_prob: 0.1}",
                                                                      "log_every: 2, cond_drop_prob: 0.2}")
    assert edited.count("max_steps: 3,") == 1 and "cond_drop_prob: 0.2}" in edited
    mine.write_text(edited)
    run = tmp_path / "emoji32"
    assert main(["train", "emoji32", "--preset", "smoke", "--config", str(mine), "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["config"] == str(mine) and metrics["cond_drop_prob"] == 0.2
    assert metrics["num_samples"] == 20 and metrics["raw"]["num_samples"] == 20
    assert (run / "denoising.gif").exists()
    out = tmp_path / "s.npz"
    assert main(["sample", str(run), "--per-class", "1", "--steps", "2", "--guidance-scale", "2",
                 "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["images"].shape == (5, 3, 32, 32) and str(f["dataset"]) == "twemoji32"
        assert float(f["guidance_scale"]) == 2.0
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["num_samples"] == 5
