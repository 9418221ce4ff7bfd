"""The ``job_files`` fixture: files handed to student code read-only, and a folder both sides write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grader import api, hookimpl
from grader.config import Settings
from grader.plugins import Registries, make_plugin_manager

CHECK = '''
import pytest


@pytest.mark.points(1)
def test_student_reads_what_the_check_wrote(student, job_files):
    path = job_files.write("data/notes.txt", "h\\u00e9llo")
    assert student.read(path) == "h\\u00e9llo"
    assert student.read(job_files.path("data") + "/notes.txt") == "h\\u00e9llo"


@pytest.mark.points(1)
def test_check_reads_what_the_student_wrote(student, job_files):
    host, inside = job_files.shared_dir()
    student.write(inside + "/out.txt", "back")
    assert (host / "out.txt").read_text() == "back"


@pytest.mark.points(1)
def test_handed_files_are_read_only(student, job_files):
    path = job_files.write("fixed.txt", "data")
    wrote = student.try_write(path)
    if job_files.isolated:  # the process backend shows the host's files: nothing it could enforce
        assert wrote is False
        assert (job_files.root / "in" / "fixed.txt").read_text() == "data"
'''

SOLUTION = '''
import os


def read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def write(path, text):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def try_write(path):
    try:
        with open(path, "w") as fh:
            fh.write("changed")
    except OSError:
        return False
    return True
'''


def _course(tmp_path: Path) -> Path:
    ex = tmp_path / "course" / "files-x"
    (ex / "stub").mkdir(parents=True)
    (ex / "checks" / "public").mkdir(parents=True)
    (ex / "exercise.toml").write_text('id = "files-x"\ntitle = "files"\nlevel = "foundation"\npoints = 3\n')
    (ex / "stub" / "solution.py").write_text("def read(path):\n    raise NotImplementedError\n")
    (ex / "checks" / "public" / "test_files.py").write_text(CHECK)
    ref = tmp_path / "course" / "ref"
    ref.mkdir()
    (ref / "solution.py").write_text(SOLUTION)
    return ex


@pytest.fixture
def files_registries(tmp_path):
    folder = _course(tmp_path)

    class Plugin:
        @hookimpl
        def grader_register_exercises(self, registry):
            registry.add_folder(folder, reference=folder.parent / "ref")

    pm = make_plugin_manager(entry_points=False)
    pm.register(Plugin(), name="files-x")
    return Registries.collect(pm)


@pytest.mark.parametrize("backend", ["bwrap", "process", pytest.param("docker", marks=pytest.mark.docker)])
def test_job_files_cross_the_boundary_and_stay_read_only(files_registries, backend, tmp_path, request):
    if backend == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    if backend == "docker":
        request.getfixturevalue("docker_image")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "solution.py").write_text(SOLUTION)
    result = api.grade(files_registries, "files-x", sub, Settings.load({"work_dir": tmp_path / "jobs",
                                                                       "sandbox": backend}, cwd=tmp_path))
    assert result.score == 3, [(c.name, c.status.value, c.message) for c in result.checks]


def test_job_files_refuse_paths_outside_the_folder(tmp_path):
    from grader.testing import JobFiles

    files = JobFiles(tmp_path, "/job-files")
    for bad in ("../x", "/etc/passwd", ""):
        with pytest.raises(ValueError):
            files.write(bad, "x")
    assert files.write("a/b.txt", "x") == "/job-files/in/a/b.txt"
    assert files.shared_dir() == (tmp_path / "shared", "/job-files/shared")
