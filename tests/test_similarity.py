"""grader similarity: pairs of a class's submissions whose code is alike, the stub excluded, grades untouched."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader import cli
from grader.batch.similarity import Submission, compare
from grader.cli.common import CliState
from grader.gradebook import Gradebook, Run, now

STUB = (Path(__file__).resolve().parent.parent / "exercises" / "self-attention" / "stub" / "solution.py").read_text()

MATMUL = '''
def attention_weights(query, key, mask=None):
    scale = query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores.double(), dim=-1).to(query.dtype)
    return torch.nan_to_num(weights, nan=0.0)


def split_heads(x, heads):
    batch, length, width = x.shape
    if width % heads:
        raise ValueError(f"width {width} is not divisible by {heads} heads")
    return x.view(batch, length, heads, width // heads).transpose(1, 2)


def merge_heads(x):
    batch, heads, length, size = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * size)
'''
# the same code with every name changed and another message: what a copier does first
RENAMED = (MATMUL.replace("query", "q_in").replace("key", "k_in").replace("scores", "logits")
           .replace("weights", "probs").replace("heads", "n_h").replace("width", "dim_model")
           .replace("is not divisible by", "cannot be split into"))
EINSUM = '''
def attention_weights(q, k, mask=None):
    d = q.size(-1)
    out = []
    for b in range(q.size(0)):
        s = torch.einsum("id,jd->ij", q[b], k[b]) / math.sqrt(d)
        if mask is not None:
            s = torch.where(mask[b], s, torch.full_like(s, -1e30))
        s = s - s.max(dim=-1, keepdim=True).values
        e = s.exp()
        out.append(e / e.sum(dim=-1, keepdim=True))
    return torch.stack(out)


def split_heads(t, h):
    assert t.shape[-1] % h == 0, "heads must divide the width"
    return rearrange(t, "b n (h d) -> b h n d", h=h)


def merge_heads(t):
    return rearrange(t, "b h n d -> b n (h d)")
'''


def _subs(**codes: str) -> list[Submission]:
    return [Submission(name, code) for name, code in codes.items()]


def test_similarity_finds_a_renamed_copy_and_nothing_else():
    pairs = compare("self-attention", _subs(alice=STUB + MATMUL, bob=STUB + RENAMED, carol=STUB + EINSUM,
                                            dave=STUB), stub_code=STUB)
    assert [(p.a, p.b) for p in pairs] == [("alice", "bob")], pairs
    assert pairs[0].similarity > 0.8 and 0 <= pairs[0].a_share <= 1 and 0 <= pairs[0].b_share <= 1


def test_similarity_the_stub_is_boilerplate():
    """Without the stub removed, every pair that kept the stub's docstrings would look copied."""
    subs = _subs(carol=STUB + EINSUM, dave=STUB, erin=STUB + MATMUL)
    assert compare("self-attention", subs, stub_code=STUB) == []
    assert {(p.a, p.b) for p in compare("self-attention", subs, stub_code="")} >= {("carol", "dave"), ("dave", "erin")}


def test_similarity_a_short_copy_inside_a_long_file_is_still_a_copy():
    pairs = compare("self-attention", _subs(alice=MATMUL, bob=EINSUM + MATMUL + EINSUM.replace("q", "query")))
    assert [(p.a, p.b) for p in pairs] == [("alice", "bob")]
    assert pairs[0].a_share > 0.9 > pairs[0].b_share


def _gradebook(out: Path, sources: dict[str, Path]) -> None:
    """Published grades with their results.json, as a batch leaves them (nothing graded)."""
    with Gradebook.open(out) as gradebook:
        for student, source in sources.items():
            rel = f"{student}/self-attention"
            text = json.dumps({"score": 3.0, "max_score": 12.0, "execution_time": 1.0, "output": "", "tests": [],
                               "grader": {"status": "fail"}})
            (out / rel).mkdir(parents=True)
            (out / rel / "results.json").write_text(text)
            (out / rel / "report.html").write_text("<!doctype html><title>r</title>")
            gradebook.record(Run(student, "self-attention", str(source), student, "1", "h", "0", "cpu", "bwrap",
                                 "fail", 3.0, 12.0, 3.0, now(), now(), rel, hashlib.sha256(text.encode()).hexdigest()),
                             publish=True)


@pytest.fixture
def course_out(tmp_path, registries):
    """A batch's OUT folder: published grades of five submissions in four forms, one of them gone."""
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    (subs / "alice" / "solution.py").write_text(STUB + MATMUL)
    (subs / "bob.py").write_text(STUB + RENAMED)
    cells = [STUB, MATMUL.replace("weights", "w")]  # notebooks are compared by their code cells
    (subs / "carol.ipynb").write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [], "source": c}
        for i, c in enumerate(cells)] + [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": "notes"}]}))
    with zipfile.ZipFile(subs / "dave.zip", "w") as zf:
        zf.writestr("dave/solution.py", STUB + EINSUM)
    out = tmp_path / "out"
    _gradebook(out, {"alice": subs / "alice", "bob": subs / "bob.py", "carol": subs / "carol.ipynb",
                     "dave": subs / "dave.zip", "erin": subs / "gone.py"})
    return out


@pytest.fixture
def invoke(registries):
    """The CLI in-process, with the test registries."""
    state = CliState(registries)
    return lambda *args: CliRunner().invoke(cli.main, list(args), obj=state)


def _grades(out: Path) -> list[tuple]:
    with Gradebook.open(out) as gradebook:
        return [tuple(r) for r in gradebook.grades()]


def test_similarity_cli_json_pairs_most_similar_first_and_no_grade_changes(invoke, course_out):
    before = _grades(course_out)
    result = invoke("similarity", str(course_out), "--json")
    assert result.exit_code == 0, result.output
    pairs = json.loads(result.stdout)
    assert all(set(p) == {"exercise", "a", "b", "similarity"} and 0 <= p["similarity"] <= 1 for p in pairs)
    assert [p["similarity"] for p in pairs] == sorted((p["similarity"] for p in pairs), reverse=True)
    assert {(p["a"], p["b"]) for p in pairs} == {("alice", "bob"), ("alice", "carol"), ("bob", "carol")}
    assert _grades(course_out) == before, "similarity is evidence, never a grade"
    page = (course_out / "similarity.html").read_text()
    assert page.count("<mark>") >= 3 and "erin" in page and "is gone" in page
    assert "&lt;" not in STUB and "<script" not in page


def test_similarity_cli_table_and_the_class_report_section(invoke, course_out):
    result = invoke("similarity", str(course_out), "--exercise", "self-attention", "--threshold", "0.5")
    assert result.exit_code == 0, result.output
    assert re.search(r"1\. self-attention\s+alice\s+bob\s+\d+\.\d %", result.output), result.output
    assert "1 submission(s) could not be read" in result.output
    report = invoke("report", str(course_out))
    assert report.exit_code == 0, report.output
    html = (course_out / "class.html").read_text()
    assert 'id="similarity-table"' in html and 'href="similarity.html"' in html


def test_similarity_help_teaches(invoke):
    result = invoke("similarity", "--help")
    assert "boilerplate" in result.output and "Example:" in result.output and "--threshold" in result.output


@pytest.mark.slow
def test_similarity_page_in_chromium(invoke, course_out, tmp_path):
    from conftest import skip_unless_required
    from test_report_browser import CHROMIUM, _chromium

    if not CHROMIUM:
        skip_unless_required("BROWSER", "chromium is not installed")
    assert invoke("similarity", str(course_out)).exit_code == 0
    page = course_out / "similarity.html"
    dom = _chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p1").stdout
    assert "<mark>" in dom and "pairs-table" in dom and "alice and bob" in dom


def test_similarity_shares_are_copydetects_own():
    """The fast pairwise shares equal copydetect.compare_files on the same fingerprints (the library as oracle)."""
    from copydetect import compare_files

    from grader.batch.similarity import _boilerplate, _fingerprint

    codes = {"alice": STUB + MATMUL, "bob": STUB + RENAMED, "carol": MATMUL + EINSUM, "dave": EINSUM}
    pairs = {(p.a, p.b): p for p in compare("x", _subs(**codes), stub_code=STUB, threshold=0.0)}
    assert len(pairs) >= 4
    boilerplate = _boilerplate(STUB)
    for (a, b), pair in pairs.items():
        _, (share_a, share_b), _ = compare_files(_fingerprint(f"{a}.py", codes[a], boilerplate),
                                                 _fingerprint(f"{b}.py", codes[b], boilerplate))
        assert (pair.a_share, pair.b_share) == pytest.approx((min(share_a, 1), min(share_b, 1)), abs=1e-12)
