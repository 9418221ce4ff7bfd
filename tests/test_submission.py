from __future__ import annotations

import os

from grader.submission import MAX_FILE_BYTES, stage


def test_submission_single_file_becomes_solution(tmp_path):
    src = tmp_path / "alice.py"
    src.write_text("x = 1\n")
    staged = stage(src, tmp_path / "out")
    assert not staged.problem
    assert staged.name == "alice"
    assert (staged.path / "solution.py").read_text() == "x = 1\n"


def test_submission_folder_with_helpers_is_copied(tmp_path):
    src = tmp_path / "bob"
    (src / "pkg").mkdir(parents=True)
    (src / "solution.py").write_text("from pkg.h import f\n")
    (src / "pkg" / "h.py").write_text("def f(): return 1\n")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "junk.pyc").write_bytes(b"\x00")
    staged = stage(src, tmp_path / "out")
    assert not staged.problem
    assert (staged.path / "pkg" / "h.py").exists()
    assert not (staged.path / "__pycache__").exists()


def test_submission_missing_solution_is_named(tmp_path):
    src = tmp_path / "carol"
    src.mkdir()
    (src / "main.py").write_text("")
    assert "no solution.py" in stage(src, tmp_path / "out").problem
    assert "does not exist" in stage(tmp_path / "nope", tmp_path / "out2").problem


def test_submission_symlinks_are_refused_never_followed(tmp_path):
    src = tmp_path / "dave"
    src.mkdir()
    (src / "solution.py").write_text("x = 1\n")
    os.symlink("/etc/passwd", src / "data.txt")
    staged = stage(src, tmp_path / "out")
    assert "symbolic link" in staged.problem
    assert list(staged.path.iterdir()) == []
    link = tmp_path / "link.py"
    os.symlink(src / "solution.py", link)
    assert "symbolic link" in stage(link, tmp_path / "out3").problem


def test_submission_non_utf8_source_is_named(tmp_path):
    src = tmp_path / "eve.py"
    src.write_bytes(b"# caf\xe9\nx = 1\n")
    problem = stage(src, tmp_path / "out").problem
    assert "not valid UTF-8" in problem and "0xe9" in problem


def test_submission_oversized_file_is_refused(tmp_path):
    src = tmp_path / "frank"
    src.mkdir()
    (src / "solution.py").write_text("x = 1\n")
    (src / "weights.bin").write_bytes(b"\x00" * (MAX_FILE_BYTES + 1))
    assert "at most" in stage(src, tmp_path / "out").problem


def test_submission_non_python_file_is_refused(tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("hi")
    assert "not a .py file" in stage(src, tmp_path / "out").problem
