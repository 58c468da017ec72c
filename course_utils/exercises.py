"""Checks for the lessons' exercises: the learner's result against a reference range measured here, written in the
task's config (``exercise.reference`` or the named section's ``reference``) with the bench command that measured it.

A check can fail: it says which figure is outside its range and what the range is. On a preset with no measured
reference (``smoke`` runs a few steps; ``gpu`` was not measured) it says so instead of passing silently.
Introduced in lesson 1.
"""
from __future__ import annotations

from .configs import load_config

# exercise name -> (task whose config holds the reference, the config section)
EXERCISES = {
    "fashion_mnist": ("fashion_mnist", "exercise"),
    "mnist_embedding": ("mnist", "embedding"),
    "sprites_mixing": ("sprites", "exercise"),
    "captions_dropout": ("captions", "exercise"),
    "emoji32_guidance": ("emoji32", "exercise"),
}


class ExerciseCheckError(AssertionError):
    """The learner's result is outside the range measured here."""


def reference(name: str, preset: str) -> dict | None:
    """The reference an exercise's result is checked against at ``preset``, or ``None`` if none was measured."""
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; choose one of {', '.join(EXERCISES)}")
    task, section = EXERCISES[name]
    return (load_config(task, preset).get(section) or {}).get("reference")


def _values(result) -> dict:
    if hasattr(result, "class_accuracy"):  # a QualityReport
        return {"class_accuracy": result.class_accuracy}
    return {str(k): v for k, v in dict(result).items()}


def check_exercise(name: str, preset: str, result) -> bool:
    """Compare ``result`` (a :class:`~course_utils.evaluation.QualityReport`, or a mapping of figures) with the
    reference ranges ``{figure: [low, high]}`` measured for ``preset``. Prints the comparison; raises
    :class:`ExerciseCheckError` when a figure is outside its range. Returns whether anything was compared.

    Introduced in lesson 1.
    """
    ref = reference(name, preset)
    if not ref:
        print(f"[check] {name}: no reference was measured for the {preset!r} preset (smoke runs a few steps, the "
              "gpu preset was not run here), so there is nothing to compare; run at `cpu` to be checked.")
        return False
    ranges = {k: v for k, v in ref.items() if k != "measured_by"}
    values = _values(result)
    missing = [k for k in ranges if k not in values]
    if missing:
        raise ExerciseCheckError(f"{name}: the result has no {', '.join(missing)}; it should give {sorted(ranges)}")
    bad = []
    for key, (low, high) in ranges.items():
        ok = low <= values[key] <= high
        print(f"[check] {name}, {key}: {values[key]:.3f} {'within' if ok else 'OUTSIDE'} the range measured here "
              f"[{low}, {high}]")
        if not ok:
            bad.append(f"{key} {values[key]:.3f} not in [{low}, {high}]")
    if bad:
        raise ExerciseCheckError(f"{name}: {'; '.join(bad)} (measured by {ref.get('measured_by', 'the bench')}); "
                                 "compare your code with the solution")
    print(f"[check] {name}: passed (reference measured by {ref.get('measured_by', 'the bench')})")
    return True
