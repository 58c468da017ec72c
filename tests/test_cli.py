"""The shell commands, run in-process through ``course_utils.cli.main`` (the same code as ``python -m``)."""
import json

import numpy as np
import pytest
import torch

from course_utils.cli import main
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


def test_evaluate_reports_accuracy_and_fid(mnist_sized_pipeline, tmp_path):
    from course_utils.tasks import evaluate_file, sample_to_file
    path = sample_to_file(mnist_sized_pipeline, tmp_path / "s.npz", per_class=2, steps=2, sampler="dpm")
    report = evaluate_file(path)
    assert report["dataset"] == "mnist" and report["num_samples"] == 20
    assert 0 <= report["class_accuracy"] <= 1 and report["fid"] > report["fid_real_vs_real"] >= 0
    assert report["judge_test_accuracy"] >= 0.99


def test_cli_errors_are_short_and_helpful(tmp_path, capsys):
    assert main(["sample", str(tmp_path), "--out", str(tmp_path / "x.npz")]) == 2
    assert "not a saved pipeline" in capsys.readouterr().err
    np.savez(tmp_path / "n.npz", images=np.zeros((2, 1, 28, 28), np.float32), labels=np.array([0, 12]))
    assert main(["evaluate", str(tmp_path / "n.npz"), "--dataset", "mnist"]) == 2
    assert "label 12 is out of range" in capsys.readouterr().err
    np.savez(tmp_path / "m.npz", images=np.zeros((2, 1, 28, 28), np.float32), labels=np.array([0, 1]))
    assert main(["evaluate", str(tmp_path / "m.npz")]) == 2
    assert "--dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sample", str(tmp_path), "--out", "x.npz", "--sampler", "euler"])


def test_train_sample_evaluate_sprites_offline(tmp_path, capsys):
    """Lesson 2 from the shell: Twemoji stands in for the sprite files; the run's pipeline has a label encoder."""
    run = tmp_path / "sprites"
    assert main(["train", "sprites", "--preset", "smoke", "--out", str(run), "--source", "offline"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] == "twemoji16" and metrics["steps"] == 8 and metrics["num_samples"] == 20
    assert (run / "pipeline" / "label_encoder" / "config.json").exists() and (run / "samples.png").exists()
    out = tmp_path / "s.npz"
    assert main(["sample", str(run), "--per-class", "2", "--steps", "2", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["images"].shape == (10, 3, 16, 16) and str(f["dataset"]) == "twemoji16"
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["num_samples"] == 10


def test_train_sprites_from_real_files(tmp_path, monkeypatch):
    from course_utils.tasks import train_class_conditioned
    from course_fixtures import write_sprite_files
    write_sprite_files(tmp_path, n=80)
    metrics = train_class_conditioned("sprites", "smoke", tmp_path / "run", data_path=tmp_path, evaluate=False,
                                      progress=False)
    assert metrics["dataset"] == "sprites" and metrics["num_train"] == 70 and metrics["data_source"].startswith("files")
    assert main(["train", "sprites", "--preset", "smoke", "--out", str(tmp_path / "r2"),
                 "--data", str(tmp_path / "nowhere")]) == 2


def test_train_sample_evaluate_emoji32_with_a_config_file(tmp_path, capsys):
    """Lesson 4 from the shell: the YAML config (an edited copy), EMA and raw weights judged, sample, evaluate."""
    from course_utils.presets import config_path
    mine = tmp_path / "mine.yaml"
    mine.write_text(config_path("emoji32").read_text().replace("max_steps: 6,", "max_steps: 3,"))
    run = tmp_path / "emoji32"
    assert main(["train", "emoji32", "--preset", "smoke", "--config", str(mine), "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["config"] == str(mine)
    assert {"ema", "raw"} <= set(metrics) and metrics["ema"]["num_samples"] == 20
    assert (run / "denoising.gif").exists()
    out = tmp_path / "s.npz"
    assert main(["sample", str(run), "--per-class", "1", "--steps", "2", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["images"].shape == (5, 3, 32, 32) and str(f["dataset"]) == "twemoji32"
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["num_samples"] == 5


def test_config_is_refused_outside_lesson_4(tmp_path, capsys):
    assert main(["train", "mnist", "--preset", "smoke", "--config", "x.yaml", "--out", str(tmp_path / "m")]) == 2
    assert "lesson 4" in capsys.readouterr().err
