"""The lessons' exercise checks: each has a reference measured here at `cpu`, says which command measured it, passes
a result inside its ranges, and fails one outside them with the figure and the range."""
import pytest

from course_utils.exercises import EXERCISES, ExerciseCheckError, check_exercise, reference
from course_utils.evaluation import QualityReport


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_every_exercise_has_a_measured_reference_at_cpu(name):
    ref = reference(name, "cpu")
    assert ref and ref.get("measured_by"), f"{name}: no reference measured at cpu"
    for key, value in ref.items():
        if key != "measured_by":
            low, high = value
            assert 0 <= low < high <= 1, (name, key, value)


def test_a_result_inside_passes_and_one_outside_fails():
    ref = reference("emoji32_guidance", "cpu")
    middle = {k: sum(v) / 2 for k, v in ref.items() if k != "measured_by"}
    assert check_exercise("emoji32_guidance", "cpu", middle) is True
    with pytest.raises(ExerciseCheckError, match=r"s=3 0\.100 not in"):
        check_exercise("emoji32_guidance", "cpu", {**middle, "s=3": 0.1})
    with pytest.raises(ExerciseCheckError, match="has no s=1"):
        check_exercise("emoji32_guidance", "cpu", {"s=0": 0.2, "s=3": 0.9})


def test_a_quality_report_is_read_for_its_class_accuracy(capsys):
    lo, hi = reference("fashion_mnist", "cpu")["class_accuracy"]
    report = QualityReport(class_accuracy=(lo + hi) / 2, per_class_accuracy=[0.5] * 10, fid=1.0, fid_real_vs_real=0.5,
                           judge_test_accuracy=0.9, num_samples=10)
    assert check_exercise("fashion_mnist", "cpu", report) is True


def test_smoke_has_no_reference_and_says_so(capsys):
    assert check_exercise("fashion_mnist", "smoke", {"class_accuracy": 0.1}) is False
    assert "no reference was measured" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown exercise"):
        reference("nope", "cpu")
