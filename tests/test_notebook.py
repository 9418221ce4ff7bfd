"""Notebook submissions: code cells become solution.py; a broken notebook says what to do."""

from __future__ import annotations

import json

import pytest
from fixtures.bad_inputs import NOT_NOTEBOOKS  # tests/ is on sys.path under pytest

from grader.engine.notebook import applies, to_source
from grader.engine.submission import stage


def _nb(*cells: str, markdown: str = "# notes") -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        *({"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": 1, "outputs": [], "source": c}
          for i, c in enumerate(cells)),
        {"cell_type": "markdown", "id": "m", "metadata": {}, "source": markdown}]})


def test_notebook_code_cells_become_solution_and_magics_are_commented(tmp_path):
    path = tmp_path / "work.ipynb"
    path.write_text(_nb("%matplotlib inline\nimport math", "!pip install x\ndef add(a, b):\n    return a + b"))
    source = to_source(path)
    assert "# (notebook-only) %matplotlib inline" in source and "# (notebook-only) !pip install x" in source
    assert "# notes" not in source
    namespace: dict = {}
    exec(compile(source, "solution.py", "exec"), namespace)
    assert namespace["add"](2, 3) == 5


def test_notebook_staged_from_a_file_and_from_a_folder(tmp_path):
    nb = tmp_path / "alice.ipynb"
    nb.write_text(_nb("def add(a, b):\n    return a + b"))
    staged = stage(nb, tmp_path / "job1" / "submission")
    assert staged.problem == "" and staged.name == "alice"
    assert "return a + b" in (staged.path / "solution.py").read_text()
    folder = tmp_path / "bob"
    folder.mkdir()
    (folder / "solution.ipynb").write_text(_nb("from helper import K\ndef add(a, b):\n    return a + b + K"))
    (folder / "helper.py").write_text("K = 0\n")
    assert applies(folder)
    staged = stage(folder, tmp_path / "job2" / "submission")
    assert staged.problem == ""
    assert sorted(p.name for p in staged.path.iterdir()) == ["helper.py", "solution.py"]


def test_notebook_broken_or_empty_gets_a_clear_problem(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [ not json')
    staged = stage(broken, tmp_path / "j1" / "submission")
    assert "not a readable Jupyter notebook" in staged.problem and "submit solution.py" in staged.problem
    empty = tmp_path / "empty.ipynb"
    empty.write_text(_nb())
    assert "no code cells" in stage(empty, tmp_path / "j2" / "submission").problem
    folder = tmp_path / "both"
    folder.mkdir()
    (folder / "solution.py").write_text("x = 1\n")
    (folder / "solution.ipynb").write_text(_nb("x = 2"))
    assert not applies(folder), "solution.py wins over a notebook beside it"


@pytest.mark.parametrize("kind", sorted(NOT_NOTEBOOKS))
def test_notebook_json_that_is_no_notebook_gets_a_clear_problem(tmp_path, kind):
    path = tmp_path / "work.ipynb"
    path.write_text(NOT_NOTEBOOKS[kind])
    staged = stage(path, tmp_path / "job" / "submission")
    assert "work.ipynb is not a readable Jupyter notebook" in staged.problem, staged.problem
    assert "not a notebook" in staged.problem and "submit solution.py" in staged.problem


@pytest.mark.parametrize("doc", [
    {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": "code"},
    {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [3]},
    {"nbformat": 4, "nbformat_minor": 5, "cells": [{"cell_type": "code", "source": 5}]},
    {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code", "source": ["a", 2]}]},
], ids=["cells-not-a-list", "cell-not-a-dict", "source-a-number", "source-list-of-mixed"])
def test_notebook_malformed_structure_gets_a_clear_problem(tmp_path, doc):
    path = tmp_path / "odd.ipynb"
    path.write_text(json.dumps(doc))
    assert "odd.ipynb is not a readable Jupyter notebook" in stage(path, tmp_path / "j" / "submission").problem
