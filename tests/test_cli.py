"""The command line, as a user drives it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from fixtures.bad_inputs import write_zip  # tests/ is on sys.path under pytest

from grader import cli
from grader.cli.common import CliState


@pytest.fixture
def run(registries, monkeypatch, tmp_path):
    """Invoke the CLI in-process with the test registries (sample exercises included)."""
    state = CliState(registries)
    monkeypatch.setenv("GRADER_WORK_DIR", str(tmp_path / "jobs"))
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str):
        return CliRunner().invoke(cli.main, list(args), catch_exceptions=False, obj=state)

    return invoke


def test_cli_help_imports_nothing_heavy():
    code = (
        "import sys\nfrom grader.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'numpy', 'jinja2', 'pytest', 'tokenizers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "grader check self-attention" in done.stdout


def test_cli_list_table_and_json(run):
    table = run("list")
    assert table.exit_code == 0
    assert table.output.splitlines()[0].split() == ["ID", "LEVEL", "TITLE", "POINTS", "DEVICE", "SOURCE"]
    row = next(line for line in table.output.splitlines() if line.startswith("sample-add "))
    assert row.split()[-1] == "grader_sample_exercise", "SOURCE says which plugin the exercise comes from"
    items = json.loads(run("list", "--json").output)
    sample = next(i for i in items if i["id"] == "sample-add")
    assert {"id", "title", "level", "points"} <= set(sample) and sample["points"] == 4


def test_cli_start_copies_only_the_stub(run, tmp_path):
    result = run("start", "sample-add")
    assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(tmp_path / "sample-add").as_posix() for p in (tmp_path / "sample-add").rglob("*"))
    assert files == ["solution.py"]
    assert "NotImplementedError" in (tmp_path / "sample-add" / "solution.py").read_text()
    again = run("start", "sample-add")
    assert again.exit_code == 2 and "already exists" in again.output


def test_cli_check_runs_public_only_and_is_honest(run, tmp_path, good_sample):
    run("start", "sample-add")
    stub = run("check", "sample-add")
    assert stub.exit_code == 1
    assert "2 hidden check(s) worth 3 point(s) were not run" in stub.output
    (tmp_path / "sample-add" / "solution.py").write_text(good_sample)
    good = run("check", "sample-add")
    assert good.exit_code == 0
    assert "Score: 1/1 (pass)" in good.output
    assert "does not mean full marks" in good.output
    assert "All public checks passed" not in good.output


def test_cli_grade_writes_results_per_submission(run, tmp_path, good_sample):
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "solution.py").write_text(good_sample)
    (tmp_path / "bob.py").write_text("def add(a, b):\n    return a - b\n")
    result = run("grade", "sample-add", "alice", "bob.py", "--out", "out")
    assert result.exit_code == 0, result.output
    for name, score in (("alice", 4), ("bob", 0)):
        doc = json.loads((tmp_path / "out" / name / "sample-add" / "results.json").read_text())
        assert doc["score"] == score
        assert (tmp_path / "out" / name / "sample-add" / "report.html").exists()


def test_cli_usage_errors_are_one_line(run, tmp_path):
    unknown = run("grade", "no-such-exercise", ".", "--out", "out")
    assert unknown.exit_code == 2
    assert unknown.output.strip().startswith("error: unknown exercise 'no-such-exercise'")
    assert "Traceback" not in unknown.output
    bad_sandbox = run("check", "sample-add", ".", "--sandbox", "nope")
    assert bad_sandbox.exit_code == 2 and "unknown sandbox" in bad_sandbox.output


def test_cli_sandboxes_lists_backends(run):
    out = run("sandboxes").output
    assert "bwrap" in out and "process" in out


def test_cli_check_malformed_zip_is_the_students_error_without_a_traceback(run, tmp_path):
    archive = write_zip(tmp_path, "corrupt-deflate")
    result = run("check", "sample-add", str(archive))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "corrupt and cannot be unpacked" in result.output
    assert "error" in result.output


def test_cli_grade_goes_on_after_a_bad_submission(run, tmp_path, good_sample):
    write_zip(tmp_path, "bad-crc")
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "solution.py").write_text(good_sample)
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text("[1, 2, 3]")
    result = run("grade", "sample-add", "bad-crc.zip", "nb.ipynb", "good/solution.py", "--out", "out")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    scores = {n: json.loads((tmp_path / "out" / n / "sample-add" / "results.json").read_text())
              for n in ("bad-crc", "nb", "solution")}
    assert scores["solution"]["score"] == 4
    assert scores["bad-crc"]["score"] == 0 and scores["bad-crc"]["grader"]["status"] == "error"
    assert scores["nb"]["grader"]["status"] == "error"


def test_cli_grade_same_named_files_get_a_result_each(run, tmp_path, good_sample):
    for name, source in (("a", good_sample), ("b", "def add(a, b):\n    return a - b\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "solution.py").write_text(source)
    result = run("grade", "sample-add", "a/solution.py", "b/solution.py", "--out", "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-solution", "b-solution"]
    scores = [json.loads((tmp_path / "out" / n / "sample-add" / "results.json").read_text())["score"]
              for n in ("a-solution", "b-solution")]
    assert scores == [4, 0]


def test_cli_grade_missing_submission_is_a_usage_error_before_grading(run, tmp_path, good_sample):
    (tmp_path / "good.py").write_text(good_sample)
    result = run("grade", "sample-add", "good.py", "nope.py", "--out", "out")
    assert result.exit_code == 2 and "nope.py" in result.output and "does not exist" in result.output
    assert not (tmp_path / "out").exists(), "nothing is graded when an argument is wrong"


def test_cli_failing_check_gives_its_advice_once(run, tmp_path):
    (tmp_path / "wrong.py").write_text("def add(a, b):\n    return a - b\n\ndef scale(t, k):\n    return t * k\n")
    result = run("grade", "sample-add", "wrong.py", "--out", "out")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "wrong" / "sample-add" / "results.json").read_text())
    failed = [t for t in doc["tests"] if t["status"] == "failed"]
    assert failed
    for test in failed:
        advice = test["output"].splitlines()[0].split("] ", 1)[1]
        assert test["output"].count(advice) == 1, test["output"]
    checked = run("check", "sample-add", "wrong.py", "-v")
    assert checked.output.count("add(2, 3) is wrong") == 1, checked.output


def test_live_line_redraws_on_a_terminal_and_prints_whole_lines_in_a_log():
    import io

    from grader.cli.common import LiveLine

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log, term = io.StringIO(), Terminal()
    for stream in (log, term):
        line = LiveLine(stream)
        line.show("3/10 done")
        line.say("student07/self-attention: grader_error")
        line.show("4/10 done")
        line.finish()
    assert log.getvalue() == "student07/self-attention: grader_error\n", "a log gets no redrawn status"
    shown = term.getvalue()
    assert shown.startswith("\r3/10 done") and "\r\033[Kstudent07/self-attention: grader_error\n" in shown
    assert shown.rstrip(" \n").endswith("4/10 done") and shown.endswith("\n")
