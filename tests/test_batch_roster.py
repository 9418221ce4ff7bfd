"""Rosters: folders or an LMS zip (unpacked safely); a broken job never stops the class; helpful CLI."""

from __future__ import annotations

import stat
import zipfile

import pytest
from click.testing import CliRunner

from grader import api, cli
from grader.batch.roster import discover, extract_class_archive
from grader.batch.run import run_batch
from grader.cli.common import CliState
from grader.errors import GraderError
from grader.gradebook import Gradebook

ADD = "def answer():\n    return 'x'\n\ndef add(a, b):\n    return a + b\n"


def _roster(root, names=("ann", "ben")):
    for name in names:
        (root / name / "hostile-target").mkdir(parents=True)
        (root / name / "hostile-target" / "solution.py").write_text(ADD)
    return root


def test_batch_roster_lms_zip_with_a_top_folder_grades_like_a_folder(registries, settings, tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Course 101 export/ann/hostile-target/solution.py", ADD)
        zf.writestr("Course 101 export/ben/hostile-target.py", ADD.replace("a + b", "a - b"))
    out = tmp_path / "out"
    summary = run_batch(registries, archive, out, settings, workers=2)
    assert (summary.graded, summary.failed) == (2, 0)
    with Gradebook.open(out) as gb:
        assert {r["student"]: r["score"] for r in gb.grades()} == {"ann": 1.0, "ben": 0.0}
    assert (out / "ann" / "hostile-target" / "report.html").is_file()
    assert run_batch(registries, archive, out, settings).skipped == 2, "the same archive again: nothing to do"


@pytest.mark.parametrize("member,words", [
    ("../evil.py", "unsafe path"),
    ("/abs/evil.py", "unsafe path"),
    ("link", "symbolic link"),
    ("bomb.txt", "zip bomb"),
])
def test_batch_roster_hostile_archives_are_refused(tmp_path, member, words):
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if member == "link":
            info = zipfile.ZipInfo("ann/hostile-target")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc")
        elif member == "bomb.txt":
            zf.writestr("ann/bomb.txt", b"\0" * (20 << 20))
        else:
            zf.writestr(member, "x = 1\n")
    with pytest.raises(GraderError, match=words):
        extract_class_archive(archive, tmp_path / "out")
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "out" / ".roster").exists()


def test_batch_roster_discovery_notes_what_it_ignores(tmp_path):
    root = _roster(tmp_path / "roster")
    (root / "ann" / "homework-9").mkdir()
    (root / "syllabus.pdf").write_text("x")
    subs, notes = discover(root, {"hostile-target", "sample-add"})
    assert [(s.student, s.exercise_id) for s in subs] == [("ann", "hostile-target"), ("ben", "hostile-target")]
    assert subs[0].digest == subs[1].digest, "identical work hashes identically wherever it lives"
    assert any("homework-9" in n for n in notes) and any("syllabus.pdf" in n for n in notes)
    with pytest.raises(GraderError, match="no submissions found"):
        discover(root, {"hostile-target"}, only={"sample-add"})


def test_batch_roster_a_grader_failure_is_recorded_retried_and_never_a_score(registries, settings, tmp_path,
                                                                            monkeypatch):
    roster = _roster(tmp_path / "roster", ("ann", "ben", "cat"))
    real = api.grade

    def flaky(registries, exercise_id, submission, *args, **kwargs):
        if "ben" in str(submission):
            raise RuntimeError("disk on fire")
        return real(registries, exercise_id, submission, *args, **kwargs)

    monkeypatch.setattr("grader.batch.jobs.api.grade", flaky)
    out = tmp_path / "out"
    first = run_batch(registries, roster, out, settings, workers=2)
    assert (first.graded, first.failed) == (2, 1)
    with Gradebook.open(out) as gb:
        assert sorted(r["student"] for r in gb.grades()) == ["ann", "cat"]
        assert "disk on fire" in gb.runs(state="failed")[0]["error"]
    monkeypatch.setattr("grader.batch.jobs.api.grade", real)
    second = run_batch(registries, roster, out, settings)
    assert (second.graded, second.skipped, second.failed) == (1, 2, 0)


def test_batch_cli_help_teaches_and_usage_errors_are_one_line(registries, tmp_path):
    state = CliState(registries)
    runner = CliRunner()
    top = runner.invoke(cli.main, obj=state, args=["--help"]).output
    for command in ("batch", "regrade", "export", "report", "export-student"):
        assert f"  {command} " in top
    text = runner.invoke(cli.main, obj=state, args=["batch", "--help"]).output
    for words in ("--workers", "--executor", "Rerunning resumes", "grader batch class-export.zip", "Exit code"):
        assert words in text
    bad = runner.invoke(cli.main, obj=state, args=["batch", str(_roster(tmp_path / "r")), "--out", str(tmp_path / "o"),
                                   "--exercise", "nope"])
    assert bad.exit_code == 2 and bad.output.startswith("error: unknown exercise 'nope'")
    ray = runner.invoke(cli.main, obj=state, args=["batch", str(tmp_path / "r"), "--out", str(tmp_path / "o"),
                                                   "--executor", "ray"])
    assert ray.exit_code == 2 and "--address" in ray.output
    missing = runner.invoke(cli.main, obj=state, args=["export", str(tmp_path), "--format", "csv"])
    assert missing.exit_code == 2 and "grader batch ROSTER" in missing.output


def test_batch_roster_names_that_collide_once_sanitised_are_refused_naming_both(registries, settings, tmp_path):
    root = _roster(tmp_path / "roster", names=("ann b", "ann_b", "ben"))
    with pytest.raises(GraderError, match=r"'ann b' and 'ann_b' would be graded as one student, 'ann_b'"):
        discover(root, {"hostile-target"})
    out = tmp_path / "out"
    with pytest.raises(GraderError, match="ann_b"):
        run_batch(registries, root, out, settings)
    assert not (out / "ann_b").exists(), "refused up front: nothing graded, nothing merged"


def test_batch_roster_two_submissions_for_one_exercise_are_refused(tmp_path):
    root = _roster(tmp_path / "roster")
    (root / "ann" / "hostile-target.py").write_text(ADD)
    with pytest.raises(GraderError, match=r"ann hands in 'hostile-target' and 'hostile-target.py' for the same"):
        discover(root, {"hostile-target"})
