from __future__ import annotations

import os

import pytest
from fixtures.bad_inputs import MALFORMED_ZIPS, write_zip  # tests/ is on sys.path under pytest

from grader.engine.submission import MAX_FILE_BYTES, result_names, stage


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


def _zip(path, entries, symlink=None):
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink[0])
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, symlink[1])
    return path


def test_submission_zip_of_one_folder_is_unpacked(tmp_path):
    archive = _zip(tmp_path / "alice.zip", {"alice/solution.py": "x = 1\n", "alice/util.py": "y = 2\n"})
    staged = stage(archive, tmp_path / "out")
    assert not staged.problem and staged.name == "alice"
    assert (staged.path / "util.py").read_text() == "y = 2\n"


def test_submission_zip_slip_and_links_are_refused(tmp_path):
    slip = _zip(tmp_path / "slip.zip", {"solution.py": "x = 1\n", "../../evil.py": "boom"})
    assert "unsafe path" in stage(slip, tmp_path / "o1").problem
    assert not (tmp_path / "evil.py").exists()
    absolute = _zip(tmp_path / "abs.zip", {"/etc/evil": "boom", "solution.py": ""})
    assert "unsafe path" in stage(absolute, tmp_path / "o2").problem
    link = _zip(tmp_path / "link.zip", {"solution.py": ""}, symlink=("data", "/etc/passwd"))
    assert "symbolic link" in stage(link, tmp_path / "o3").problem


def test_submission_zip_bomb_is_refused(tmp_path):
    bomb = _zip(tmp_path / "bomb.zip", {"solution.py": "", "zeros.txt": b"\0" * (MAX_FILE_BYTES + 10)})
    assert "too large" in stage(bomb, tmp_path / "o").problem
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really")
    assert "not a readable zip" in stage(broken, tmp_path / "o2").problem


@pytest.mark.parametrize("kind", sorted(MALFORMED_ZIPS))
def test_submission_malformed_zip_is_a_problem_not_a_crash(tmp_path, kind):
    staged = stage(write_zip(tmp_path, kind), tmp_path / "job" / "submission")
    assert MALFORMED_ZIPS[kind][1] in staged.problem and f"{kind}.zip" in staged.problem, staged.problem
    assert "\n" not in staged.problem
    assert list(staged.path.iterdir()) == [], "nothing half-unpacked is graded"


def test_submission_malformed_zip_members_keep_their_place(tmp_path):
    """The layout checks refuse only clashes: a folder entry with files below it is ordinary."""
    archive = _zip(tmp_path / "ok.zip", {"pkg/": "", "pkg/h.py": "K = 1\n", "solution.py": "x = 1\n"})
    staged = stage(archive, tmp_path / "out")
    assert not staged.problem and (staged.path / "pkg" / "h.py").read_text() == "K = 1\n"


def test_submission_nul_byte_is_named_with_its_line(tmp_path):
    src = tmp_path / "nul.py"
    src.write_bytes(b"x = 1\ny = 2\nz = '\x00'\n")
    problem = stage(src, tmp_path / "out").problem
    assert "NUL byte (line 3, column 6)" in problem and "None" not in problem, problem


def test_submission_result_names_keep_same_named_files_apart(tmp_path):
    for rel in ("a/solution.py", "b/solution.py", "x/a/solution.py", "carol/solution.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    (tmp_path / "carol.py").write_text("x = 1\n")
    names = result_names([tmp_path / "a" / "solution.py", tmp_path / "b" / "solution.py", tmp_path / "carol"])
    assert names == ["a-solution", "b-solution", "carol"]
    assert result_names([tmp_path / "a" / "solution.py", tmp_path / "x" / "a" / "solution.py"]) == \
        [f"{tmp_path.name}-a-solution", "x-a-solution"]
    assert result_names([tmp_path / "carol", tmp_path / "carol.py"]) == ["carol", "carol-2"]
    assert result_names([tmp_path / "b" / "solution.py"]) == ["solution"], "a lone submission keeps its name"
