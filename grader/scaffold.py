"""``grader new-exercise``: an exercise folder that already grades, in the one shape every exercise has.

It writes, under a course folder (the layout ``GRADER_EXERCISES`` reads)::

    exercises/<id>/exercise.toml          every key, commented (from grader.exercise_spec)
    exercises/<id>/stub/solution.py       a stub that teaches: shapes, dtypes, formula, what to raise
    exercises/<id>/checks/conftest.py     a fixture of the checks (trusted side)
    exercises/<id>/checks/public/test_<id>.py, checks/hidden/test_<id>_hidden.py   points markers
    reference/<id>/solution.py            the hidden reference
    tests/curriculum/<id>/mutations.toml  wrong solutions as edits of the reference

The example is a numerically stable softmax, small enough to replace and real enough to show the helpers.
"""

from __future__ import annotations

import re
from pathlib import Path

from grader.errors import GraderError
from grader.exercise_spec import FIELDS, ID_PATTERN, LEVELS, LIMITS

STUB = '''"""{title}.

Replace this example with your exercise.  A stub teaches: say what to build and why, the paper or library
page it follows, and for every function its shapes, dtypes, formula and the errors it raises.
"""

from __future__ import annotations

import torch


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax of ``x`` along ``dim``: ``exp(x_i - max(x)) / sum_j exp(x_j - max(x))``.

    Subtract the maximum first, so large logits (1000, say) do not overflow to ``inf`` and ``nan``.

    :param x: a floating-point tensor of any shape; the result has its shape and dtype.
    :param dim: the dimension whose entries sum to 1.
    :raises ValueError: if ``x`` is not a floating-point tensor.
    """
    raise NotImplementedError("softmax: subtract the max along dim, exponentiate, divide by the sum")
'''

REFERENCE = '''"""Reference for {id}: the hidden solution, same API as the stub."""

from __future__ import annotations

import torch


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    if not x.is_floating_point():
        raise ValueError("softmax needs a floating-point tensor")
    shifted = x - x.amax(dim=dim, keepdim=True)
    e = shifted.exp()
    return e / e.sum(dim=dim, keepdim=True)
'''

CONFTEST = '''"""Fixtures of the {id} checks (trusted side: never imports the student's code)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def logits(seed: int) -> torch.Tensor:
    """A non-square batch (3 x 5), so a softmax over the wrong dimension cannot pass by symmetry."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(3, 5, generator=generator, dtype=torch.float64) * 4
'''

PUBLIC = '''"""Public checks: shipped to students and run by `grader check`."""

from __future__ import annotations

import pytest
import torch

from grader.testing import StudentCodeError, expect_close, expect_tensor


@pytest.mark.points({public})
def test_softmax_matches_torch(student, logits, targets):
    got = expect_tensor(student.softmax(logits, dim=-1), logits.shape, logits.dtype, what="softmax(x)")
    want = torch.softmax(logits, dim=-1)
    expect_close(got, want, targets=targets, what="softmax(x)",
                 diagnose=lambda a, e: "each column sums to 1: is the sum taken over dim=0?"
                 if torch.allclose(a.sum(0), torch.ones(a.shape[1], dtype=a.dtype)) else None,
                 advice="softmax(x)[i] = exp(x_i - max x) / sum_j exp(x_j - max x), along dim")
    with pytest.raises(StudentCodeError) as raised:
        student.softmax(torch.arange(4), dim=-1)
        pytest.fail("softmax of an integer tensor should raise ValueError, as the docstring says")
    assert raised.value.exc_type == "ValueError", f"raised {{raised.value.exc_type}}, expected ValueError"
'''

HIDDEN = '''"""Hidden checks: run only by `grader grade` (message-only: students see the message, not this code)."""

from __future__ import annotations

import pytest
import torch

from grader.testing import expect_close, expect_tensor


@pytest.mark.points({hidden})
@pytest.mark.visibility("message-only")
def test_softmax_is_stable_for_large_logits(student, logits, targets):
    big = logits * 300  # exp(1000) overflows float64
    got = expect_tensor(student.softmax(big, dim=1), big.shape, what="softmax(300 * x)")
    expect_close(got, torch.softmax(big, dim=1), targets=targets, what="softmax(300 * x)",
                 advice="large logits give inf/nan: subtract the maximum along dim before exponentiating")
'''

MUTATIONS = '''# Wrong solutions as edits of reference/{id}/solution.py; each must lose the checks it names.
# `grader check-exercise {id} --discrimination` grades each only on those checks.

[[mutation]]
name = "sum-over-wrong-dim"
wrong = "normalises over dimension 0 instead of the requested one"
loses = ["test_softmax_matches_torch"]
[[mutation.edit]]
replace = "e / e.sum(dim=dim, keepdim=True)"
with = "e / e.sum(dim=0, keepdim=True)"
'''

UNSTABLE_MUTATION = '''
[[mutation]]
name = "no-max-subtraction"
wrong = "exponentiates the raw logits, which overflow for large inputs"
loses = ["test_softmax_is_stable_for_large_logits"]
[[mutation.edit]]
replace = "shifted = x - x.amax(dim=dim, keepdim=True)"
with = "shifted = x"
'''


def exercise_toml(ex_id: str, level: str, points: int, title: str) -> str:
    """exercise.toml with every key of the schema: the set ones first, the rest commented with defaults."""
    values = {"id": ex_id, "title": title, "level": level, "points": points, "version": "1", "device": "cpu",
              "summary": "What this exercise grades, in one sentence."}
    lines = []
    for f in FIELDS:
        choices = f" ({', '.join(f.choices)})" if f.choices else ""
        lines.append(f"# {f.description}{choices}")
        if f.name in values:
            lines.append(f"{f.name} = {_toml(values[f.name])}")
        else:
            lines.append(f"# {f.name} = {_toml(f.default) if f.default is not None else '...'}")
    lines += ["", "# targets and tolerances of the default profile (the `targets` fixture); add [profiles.gpu]",
              "# for a GPU with stricter targets (required when device is not cpu)", "[profiles.cpu]",
              "float64_rtol = 1e-9", "float64_atol = 1e-12", "", "[limits]"]
    for f in LIMITS:
        lines += [f"# {f.description}", f"{f.name} = {_toml(f.default)}"]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def new_exercise(course: Path, ex_id: str, level: str, points: int, title: str | None = None) -> list[Path]:
    """Write the scaffold of ``ex_id`` under ``course``; refuses to overwrite anything."""
    if not re.match(ID_PATTERN, ex_id):
        raise GraderError(f"exercise id {ex_id!r} must be lower-case letters, digits and dashes")
    if level not in LEVELS:
        raise GraderError(f"level must be one of {', '.join(LEVELS)}")
    if points < 1:
        raise GraderError("points must be at least 1")
    public = points - points // 2
    hidden = points // 2
    name = ex_id.replace("-", "_")
    files = {
        f"exercises/{ex_id}/exercise.toml": exercise_toml(ex_id, level, points, title or ex_id.replace("-", " ")),
        f"exercises/{ex_id}/stub/solution.py": STUB.format(title=title or ex_id),
        f"exercises/{ex_id}/checks/conftest.py": CONFTEST.format(id=ex_id),
        f"exercises/{ex_id}/checks/public/test_{name}.py": PUBLIC.format(public=public),
        f"reference/{ex_id}/solution.py": REFERENCE.format(id=ex_id),
        f"tests/curriculum/{ex_id}/mutations.toml": MUTATIONS.format(id=ex_id) + (UNSTABLE_MUTATION if hidden else ""),
    }
    if hidden:  # one point: the public check alone
        files[f"exercises/{ex_id}/checks/hidden/test_{name}_hidden.py"] = HIDDEN.format(hidden=hidden)
    taken = [rel for rel in files if (course / rel).exists()] or (
        [f"exercises/{ex_id}"] if (course / "exercises" / ex_id).exists() else [])
    if taken:
        raise GraderError(f"{course / taken[0]} already exists: choose another id or remove it")
    written = []
    for rel, text in files.items():
        path = course / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
