"""grader.check in a notebook: a real notebook executed by a real kernel (nbclient), graded in the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.client.notebook import _comment_grader_lines

SOFTMAX = '''import torch


def softmax(x, dim=-1):
    if not x.is_floating_point():
        raise ValueError("softmax needs a floating-point tensor")
    e = (x - x.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)
'''


def test_lines_that_call_grader_are_kept_as_comments_whole():
    code = _comment_grader_lines('import grader\nx = 1\nr = grader.check(\n    "sample-softmax")\n'
                                 "get_ipython().run_line_magic('grader', 'check sample-softmax')\ny = x + 1\n"
                                 "print(r.score)\nscore = r.score\nz = score + y\n")
    namespace: dict = {}
    exec(compile(code, "solution.py", "exec"), namespace)
    assert namespace["y"] == 2 and "r" not in namespace and "z" not in namespace, "what uses grader's answer goes"
    assert code.count("# (notebook-only)") == 7
    assert _comment_grader_lines("def broken(:\n") == "def broken(:\n", "a syntax error is the checks' to report"


def _notebook(path: Path, *cells: str) -> Path:
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}, "cells": [
        {"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [], "source": c}
        for i, c in enumerate(cells)]}), encoding="utf-8")
    return path


def _run(path: Path) -> list[str]:
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") + json.dumps(output.get("data", {})))
    return texts


@pytest.mark.slow
def test_grader_check_in_a_running_notebook_grades_its_cells_and_shows_the_report(tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    wrong = SOFTMAX.replace("e.sum(dim=dim", "e.sum(dim=0")
    path = _notebook(
        tmp_path / "homework.ipynb",
        SOFTMAX,
        'import grader\nr = grader.check("sample-softmax", display=False)\nprint("KERNEL", r.score, r.max_score)',
        f"{wrong}\nr = grader.check('sample-softmax', display=False)\nprint('REDEFINED', r.score, r.max_score)",
        'r = grader.check("sample-softmax", notebook="homework.ipynb", display=False)\n'
        'print("FILE", r.score, r.max_score)',
        "%load_ext grader\n%grader check sample-softmax",
    )
    out = "\n".join(_run(path))
    kernel = next(line for line in out.splitlines() if line.startswith("KERNEL")).split()
    assert float(kernel[1]) == float(kernel[2]) > 0, out  # the cells run so far: the right softmax
    redefined = next(line for line in out.splitlines() if line.startswith("REDEFINED")).split()
    assert float(redefined[1]) < float(redefined[2]), "the later cell's definition wins, as in the kernel"
    saved = next(line for line in out.splitlines() if line.startswith("FILE")).split()
    assert float(saved[1]) < float(saved[2]), "the saved notebook holds the wrong definition last"
    assert "<iframe sandbox srcdoc=" in out and "graded from the 5 cell(s) this kernel has run" in out
