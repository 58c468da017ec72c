"""The code a lesson shows in the open is the code the package runs: each class or function a notebook defines for
the learner to read and edit is, statement for statement (docstrings and type annotations aside), the package's
own. If one changes without the other, this says which."""
import ast
import inspect
import textwrap
from pathlib import Path

import jupytext
import pytest

import course_utils as cu
from course_utils import sampling, training

ROOT = Path(__file__).resolve().parents[1]

# lesson -> {name defined in the notebook: the package object it mirrors}
MIRRORS = {
    "01_class_conditioned_mnist": {"ClassConditionedUnet": cu.models.ClassConditionedUnet,
                                   "diffusion_loss": training.diffusion_loss,
                                   "training_loss": training.training_loss},
    "03_text_guidance": {"guided_prediction": sampling.guided_prediction},
}


def _strip(node):
    """The node without docstrings and type annotations (the notebook writes ``cu.TrainConfig`` where the package
    writes ``TrainConfig``), as a comparable string."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.arg):
            sub.annotation = None
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
            sub.returns = None
        body = getattr(sub, "body", None)
        if (isinstance(sub, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            sub.body = body[1:] or [ast.Pass()]
    return ast.dump(node, annotate_fields=False)


def _notebook_definitions(lesson):
    tree = ast.parse("\n".join(c.source for c in jupytext.read(ROOT / "notebooks" / "en" / f"{lesson}.py").cells
                               if c.cell_type == "code" and "solution" not in c.metadata.get("tags", [])
                               and not c.source.lstrip().startswith(("%", "!"))))
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


@pytest.mark.parametrize("lesson", sorted(MIRRORS))
def test_the_code_shown_is_the_code_run(lesson):
    shown = _notebook_definitions(lesson)
    for name, obj in MIRRORS[lesson].items():
        assert name in shown, f"{lesson} no longer defines {name}"
        package = ast.parse(textwrap.dedent(inspect.getsource(obj))).body[0]
        if isinstance(package, ast.ClassDef):  # compare the methods; the bases and decorators are shown as imported
            mine = {n.name: _strip(n) for n in shown[name].body if isinstance(n, ast.FunctionDef)}
            theirs = {n.name: _strip(n) for n in package.body if isinstance(n, ast.FunctionDef)}
            assert mine == theirs, f"{lesson}: {name}'s methods differ from {obj.__module__}.{name}"
        else:
            assert _strip(shown[name]) == _strip(package), f"{lesson}: {name} differs from {obj.__module__}.{name}"


def test_a_changed_line_is_caught():
    """The comparison can fail: one changed constant in a copy of training_loss is a difference."""
    source = textwrap.dedent(inspect.getsource(training.training_loss))
    changed = ast.parse(source.replace("config.cond_drop_prob > 0", "config.cond_drop_prob > 0.5")).body[0]
    assert _strip(changed) != _strip(ast.parse(source).body[0])
