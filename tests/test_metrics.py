import pytest
import torch

from course_utils.evaluation import (
    JudgeClassifier,
    class_accuracy,
    evaluate_samples,
    frechet_distance,
    per_class_accuracy,
    train_judge,
)


def test_frechet_distance_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g)
    b = torch.randn(20000, 3, generator=g) * 2 + torch.tensor([1.0, 0.0, 0.0])
    # N(0, I) vs N(m, 4I): |m|^2 + sum (1 + 4 - 2*2) = 1 + 3
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        frechet_distance(a[:1], b)


def test_judge_learns_a_toy_task_and_reports():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (256,), generator=g)
    images = torch.zeros(256, 1, 12, 12, dtype=torch.uint8)
    images[labels == 1, :, :6] = 255  # class 1: top half lit
    images[labels == 0, :, 6:] = 255  # class 0: bottom half lit
    judge = train_judge(images, labels, 2, epochs=3, batch_size=32, progress=False)
    x = images.float() / 255
    assert class_accuracy(judge, x, labels) > 0.95
    assert class_accuracy(judge, x, 1 - labels) < 0.05
    assert per_class_accuracy(judge, x, labels)[1] > 0.95
    report = evaluate_samples(judge, x[:64], labels[:64], images[64:], judge_test_accuracy=1.0)
    assert report.class_accuracy > 0.95 and report.fid >= 0 and report.fid_real_vs_real >= 0
    noise = torch.rand(64, 1, 12, 12)
    worse = evaluate_samples(judge, noise, labels[:64], images[64:], judge_test_accuracy=1.0)
    assert worse.fid > report.fid, "noise is farther from the real images than real images are"
    assert "real vs real" in str(report)


def test_class_accuracy_needs_images():
    with pytest.raises(ValueError):
        class_accuracy(JudgeClassifier(), torch.empty(0, 1, 28, 28), torch.empty(0, dtype=torch.long))
