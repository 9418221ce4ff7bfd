"""Checking from a notebook: ``import grader; grader.check("self-attention")`` in Jupyter or Colab.

What is graded is the notebook's code, never the live kernel's objects, on the same sandboxed path as
``grader check``: the notebook file when the kernel knows it (JupyterLab, Notebook 7 and VS Code tell it
through ``__session__`` or ``JPY_SESSION_NAME``), saved as it is on disk; otherwise (Colab, a kernel
started elsewhere) the cells this kernel has run, in the order it ran them. Lines that call grader itself
(``import grader``, ``grader.check(...)``, magics) are kept as comments, so the graded code does not grade
itself. The result shows inline as the HTML report; ``%load_ext grader`` adds ``%grader check ID``
and ``%grader submit ID``.
"""

from __future__ import annotations

import ast
import html
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from grader.errors import GraderError


def _belongs_to_the_notebook(node: ast.stmt) -> bool:
    """A statement that imports or calls grader, or talks to IPython: it would grade the solution from inside
    its own sandbox (where grader is not importable), or needs a kernel the sandbox does not have."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import) and any(a.name.split(".")[0] == "grader" for a in sub.names):
            return True
        if isinstance(sub, ast.ImportFrom) and (sub.module or "").split(".")[0] == "grader":
            return True
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "grader":
            return True
        if isinstance(sub, ast.Name) and sub.id == "get_ipython":
            return True
    return False


def _names(node: ast.stmt, ctx: type) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}


def _comment_grader_lines(source: str) -> str:
    """``source`` with every top-level statement that belongs to the notebook kept as comments (whole, even
    when it spans lines), and every later one that uses what those bound (``print(r.score)`` after
    ``r = grader.check(...)``); code that does not parse is left as it is, for the checks to report."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    tainted: set[str] = set()
    drop: set[int] = set()
    for node in tree.body:
        if _belongs_to_the_notebook(node) or _names(node, ast.Load) & tainted:
            tainted |= _names(node, ast.Store)
            drop.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    lines = source.splitlines()
    return "\n".join(f"# (notebook-only) {line}" if i in drop else line for i, line in enumerate(lines)) + "\n"


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def find_notebook() -> Path | None:
    """The running notebook's file, where the kernel was told it (None in Colab or a plain kernel)."""
    shell = _ipython()
    candidates = [shell.user_ns.get("__session__") if shell is not None else None,
                  os.environ.get("JPY_SESSION_NAME")]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.endswith(".ipynb") and Path(candidate).is_file():
            return Path(candidate)
    return None


def notebook_code(notebook: str | Path | None = None) -> tuple[str, str]:
    """(the code to grade, where it came from): the notebook file's code cells, else this kernel's history."""
    from grader.engine.notebook import NotebookError, to_source

    path = Path(notebook) if notebook is not None else find_notebook()
    if path is not None:
        try:
            code = to_source(path)
        except (NotebookError, OSError) as exc:
            raise GraderError(str(exc)) from None
        saved = time.strftime("%H:%M:%S", time.localtime(path.stat().st_mtime))
        return _comment_grader_lines(code), f"{path.name} as saved at {saved} (save first if you changed it)"
    shell = _ipython()
    cells = [c for c in (shell.user_ns.get("In", []) if shell is not None else []) if isinstance(c, str) and c]
    if not cells:
        raise GraderError("no notebook to grade: pass notebook='my_notebook.ipynb', or run this in Jupyter or Colab "
                          "after running the cells that define your solution")
    lines = [_comment_grader_lines(c) for c in cells]  # IPython keeps magics as get_ipython() calls
    return "\n".join(f"# --- cell run {n} ---\n{text}" for n, text in enumerate(lines, 1)), \
        f"the {len(cells)} cell(s) this kernel has run, in the order it ran them"


def _show(report: Path, summary: str) -> None:
    """The HTML report inline (in a sandboxed frame, so its styles stay its own), or the summary in text."""
    try:
        from IPython.display import HTML, display
    except ImportError:
        print(summary)
        return
    page = html.escape(report.read_text(encoding="utf-8"), quote=True)
    display(HTML(f'<p>{html.escape(summary)}</p><iframe sandbox srcdoc="{page}" '
                 'style="width:100%;height:640px;border:1px solid #ddd"></iframe>'))


def check(exercise: str, notebook: str | Path | None = None, *, display: bool = True, sandbox: str | None = None,
          out: str | Path | None = None) -> Any:
    """Run EXERCISE's public checks on this notebook's code, as ``grader check`` does, and show the report.

    :param notebook: the .ipynb to grade (default: the running notebook, else the cells this kernel ran)
    :param display: show the HTML report inline (else only return the result)
    :param out: also keep results.json and report.html in this folder
    :returns: the :class:`grader.models.GradeResult`
    """
    from grader import api
    from grader.config import Settings

    code, origin = notebook_code(notebook)
    with tempfile.TemporaryDirectory(prefix="grader-notebook-") as tmp:
        submission = Path(tmp) / "submission"
        submission.mkdir()
        (submission / "solution.py").write_text(code, encoding="utf-8")
        report_dir = Path(out) if out is not None else Path(tmp) / "report"
        result = api.grade(api.load(), exercise, submission, Settings.load({"sandbox": sandbox}), public_only=True,
                           out_dir=report_dir)
        summary = (f"{exercise}: {result.score:g}/{result.max_score:g} on the public checks, graded from {origin}"
                   + (f"; {result.not_run_points:g} point(s) of hidden checks not run" if result.not_run else ""))
        if display:
            _show(report_dir / "report.html", summary)
    return result


def submit(exercise: str, notebook: str | Path | None = None, *, wait: bool = True, timeout: float = 900.0,
           server: str | None = None) -> dict[str, Any]:
    """Send this notebook's code to the grading server as EXERCISE (as ``grader submit``) and return the grade.

    The server and token come from ``grader login`` (or GRADER_SERVER and GRADER_TOKEN).
    """
    from grader.client.http import Client, load_credentials

    code, origin = notebook_code(notebook)
    client = Client(load_credentials(server, None))
    sub = client.upload(exercise, "solution.py", code.encode("utf-8"))
    if wait:
        sub = client.wait(str(sub["id"]), timeout)
    print(f"{exercise}: submitted {origin}; " + (f"{sub.get('final_score')}/{sub.get('max_score')}"
                                                   if sub.get("state") == "done" else f"state {sub.get('state')}"))
    return sub


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext grader``: ``%grader check EXERCISE`` and ``%grader submit EXERCISE``."""

    def magic(line: str) -> Any:
        words = line.split()
        if len(words) != 2 or words[0] not in ("check", "submit"):
            print("usage: %grader check EXERCISE  |  %grader submit EXERCISE")
            return None
        return check(words[1]) if words[0] == "check" else submit(words[1])

    shell.register_magic_function(magic, magic_kind="line", magic_name="grader")
