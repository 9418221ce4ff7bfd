"""The authoring kit: the exercise.toml schema, `grader new-exercise`, `grader check-exercise`, mutations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader import exercise_spec
from grader.authoring import discrimination
from grader.cli import main
from grader.errors import PluginError
from grader.registry import ExerciseRegistry

DOCS = Path(__file__).resolve().parent.parent / "docs" / "authoring-exercises.md"


def _scaffold(tmp_path: Path, ex_id: str = "demo-x", points: int = 3) -> Path:
    result = CliRunner().invoke(main, ["new-exercise", ex_id, "--level", "foundation", "--points", str(points),
                                       "--course", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return tmp_path / "exercises" / ex_id


def _registry(folder: Path) -> ExerciseRegistry:
    registry = ExerciseRegistry()
    registry.add_folder(folder, reference=folder.parent.parent / "reference" / folder.name)
    return registry


def test_spec_refuses_unknown_keys_and_suggests_the_spelling(tmp_path):
    folder = _scaffold(tmp_path)
    toml = folder / "exercise.toml"
    toml.write_text(toml.read_text().replace("check_timeout_s =", "check_timout_s ="))
    registry = _registry(folder)
    assert "demo-x" not in registry
    why = registry.broken["demo-x"]
    assert "unknown key 'check_timout_s'" in why and "did you mean 'check_timeout_s'" in why
    with pytest.raises(PluginError, match="cannot be loaded"):
        registry.get("demo-x")


@pytest.mark.parametrize("edit,expected", [
    (('device = "cpu"', 'device = "cuda"'), "device must be one of cpu, gpu-optional, gpu"),
    (("points = 3", "points = 4"), "markers add up to 3, but points = 4"),
    (("points = 3", 'points = "3"'), "points must be a integer or number"),
    (('level = "foundation"', 'level = "beginner"'), "level must be one of"),
    (("[profiles.cpu]", "[profiles.tpu]"), "[profiles.tpu] is not a profile"),
])
def test_spec_names_each_broken_rule(tmp_path, edit, expected):
    folder = _scaffold(tmp_path)
    toml = folder / "exercise.toml"
    toml.write_text(toml.read_text().replace(*edit))
    assert expected in _registry(folder).broken["demo-x"]


def test_spec_refuses_a_check_without_points_and_a_parametrized_check(tmp_path):
    folder = _scaffold(tmp_path)
    public = next((folder / "checks" / "public").glob("test_*.py"))
    public.write_text(public.read_text() + "\n\n@pytest.mark.parametrize('x', [1, 2])\ndef test_more(x):\n    pass\n")
    why = _registry(folder).broken["demo-x"]
    assert "test_more is parametrized" in why


def test_spec_one_broken_exercise_leaves_the_others_usable(tmp_path):
    good, bad = _scaffold(tmp_path, "good-x"), _scaffold(tmp_path, "bad-x")
    (bad / "exercise.toml").write_text((bad / "exercise.toml").read_text() + "\nsurprise = 1\n")
    registry = ExerciseRegistry()
    for folder in (good, bad):
        registry.add_folder(folder)
    assert registry.get("good-x").points == 3
    assert "surprise" in registry.broken["bad-x"]


def test_spec_docs_table_is_the_schema():
    text = DOCS.read_text(encoding="utf-8")
    assert exercise_spec.markdown_table() in text, "regenerate it with `grader exercise-schema --markdown`"


def test_spec_json_schema_describes_every_key():
    schema = json.loads(CliRunner().invoke(main, ["exercise-schema"]).output)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {f.name for f in exercise_spec.FIELDS} | {"limits", "profiles", "leaderboard"}
    assert set(schema["properties"]["limits"]["properties"]) == {f.name for f in exercise_spec.LIMITS}
    assert set(schema["properties"]["leaderboard"]["items"]["properties"]) == set(exercise_spec.LEADERBOARD_KEYS)


def test_new_exercise_refuses_to_overwrite_and_bad_ids(tmp_path):
    _scaffold(tmp_path)
    again = CliRunner().invoke(main, ["new-exercise", "demo-x", "--level", "foundation", "--points", "3",
                                      "--course", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = CliRunner().invoke(main, ["new-exercise", "Demo_X", "--level", "foundation", "--points", "3",
                                    "--course", str(tmp_path)])
    assert bad.exit_code == 2 and "lower-case" in bad.output
    few = CliRunner().invoke(main, ["new-exercise", "demo-y", "--level", "foundation", "--points", "2",
                                    "--course", str(tmp_path)])
    assert few.exit_code == 2 and "at least 3" in few.output.replace("x>=3", "at least 3")


@pytest.mark.parametrize("points,markers", [(3, [1, 1, 1]), (7, [4, 1, 2])])
def test_new_exercise_splits_the_points_over_its_checks(tmp_path, points, markers):
    folder = _scaffold(tmp_path, points=points)
    checks = exercise_spec.static_checks(folder / "checks")[0]
    assert [c.points for c in checks] == markers


def test_new_exercise_writes_every_schema_key(tmp_path):
    text = (_scaffold(tmp_path) / "exercise.toml").read_text()
    for f in (*exercise_spec.FIELDS, *exercise_spec.LIMITS):
        assert re.search(rf"^#? ?{f.name} = ", text, re.MULTILINE), f.name


def test_check_exercise_reports_a_check_no_wrong_solution_loses(tmp_path, monkeypatch):
    _scaffold(tmp_path)
    table = tmp_path / "tests" / "curriculum" / "demo-x" / "mutations.toml"
    table.write_text(table.read_text().split("\n[[mutation]]\nname = \"no-max")[0])
    monkeypatch.setenv("GRADER_EXERCISES", str(tmp_path))
    result = CliRunner().invoke(main, ["check-exercise", "demo-x"])
    assert result.exit_code == 1
    assert "no wrong solution loses test_softmax_is_stable_for_large_logits" in result.output


def test_mutation_must_match_the_reference_exactly_once(tmp_path):
    folder = _scaffold(tmp_path)
    wrongs = discrimination.wrong_solutions(tmp_path / "tests" / "curriculum" / "demo-x")
    assert [w.name for w in wrongs] == ["wrong_sum_over_wrong_dim", "wrong_no_max_subtraction",
                                        "wrong_accepts_integers"]
    reference = tmp_path / "reference" / "demo-x"
    made = wrongs[0].materialize(reference, tmp_path / "m")
    assert "e.sum(dim=0" in (made / "solution.py").read_text()
    (reference / "solution.py").write_text((reference / "solution.py").read_text().replace("keepdim=True)\n", ")\n"))
    with pytest.raises(PluginError, match="occurs 0 times"):
        wrongs[0].materialize(reference, tmp_path / "m2")
    assert folder.is_dir()


def test_wrong_solution_files_need_their_header(tmp_path):
    (tmp_path / "wrong_x.py").write_text("def f():\n    pass\n")
    with pytest.raises(PluginError, match="# wrong:"):
        discrimination.wrong_solutions(tmp_path)


@pytest.mark.slow
def test_check_exercise_discrimination_passes_on_a_fresh_scaffold(tmp_path, monkeypatch):
    """The issue's own words: new-exercise in an empty folder, then check-exercise --discrimination exits 0."""
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["new-exercise", "demo-x", "--level", "foundation", "--points", "3"]).exit_code == 0
    monkeypatch.setenv("GRADER_EXERCISES", ".")
    result = CliRunner().invoke(main, ["check-exercise", "demo-x", "--discrimination"])
    assert result.exit_code == 0, result.output
    labels = ("reference", "stub", "wrong_sum_over_wrong_dim", "wrong_no_max_subtraction", "wrong_accepts_integers",
              "right_logsumexp")
    for label in labels:
        assert re.search(rf"✔ {label}\s", result.output), result.output


def test_check_exercise_reports_a_loses_line_naming_no_check(tmp_path, monkeypatch):
    _scaffold(tmp_path)
    table = tmp_path / "tests" / "curriculum" / "demo-x" / "mutations.toml"
    table.write_text(table.read_text().replace('loses = ["test_softmax_matches_torch"]',
                                               'loses = ["test_softmax_matches_torch", "test_softmax_typo"]'))
    monkeypatch.setenv("GRADER_EXERCISES", str(tmp_path))
    result = CliRunner().invoke(main, ["check-exercise", "demo-x"])
    assert result.exit_code == 1
    assert "wrong_sum_over_wrong_dim: loses test_softmax_typo, which is not a check of demo-x" in result.output


def test_right_solutions_are_read_from_files_and_tables(tmp_path):
    _scaffold(tmp_path)
    folder = tmp_path / "tests" / "curriculum" / "demo-x"
    (folder / "right_loop.py").write_text("# right: a Python loop over rows\n# keeps: test_softmax_matches_torch\n")
    rights = discrimination.right_solutions(folder)
    assert [(r.name, r.keeps) for r in rights] == [("right_loop", ("test_softmax_matches_torch",)),
                                                   ("right_logsumexp", ())]
    made = rights[1].materialize(tmp_path / "reference" / "demo-x", tmp_path / "m")
    assert "logsumexp" in (made / "solution.py").read_text()


@pytest.mark.parametrize("entry,says", [
    ('name = "x"\nright = "r"\nloses = ["test_softmax_matches_torch"]', "loses nothing"),
    ('name = "x"\nright = "r"', "[[right.edit]]"),
    ('name = "x"\nright = ""\n[[right.edit]]\nreplace = "a"\nwith = "b"', "done differently"),
])
def test_malformed_right_entries_are_refused(tmp_path, entry, says):
    (tmp_path / "mutations.toml").write_text("[[right]]\n" + entry + "\n")
    with pytest.raises(PluginError) as exc:
        discrimination.right_solutions(tmp_path)
    assert says in str(exc.value)


def test_check_exercise_reports_a_keeps_line_naming_no_check(tmp_path, monkeypatch):
    _scaffold(tmp_path)
    folder = tmp_path / "tests" / "curriculum" / "demo-x"
    (folder / "right_loop.py").write_text("# right: a Python loop\n# keeps: test_softmax_typo\n")
    monkeypatch.setenv("GRADER_EXERCISES", str(tmp_path))
    result = CliRunner().invoke(main, ["check-exercise", "demo-x"])
    assert result.exit_code == 1
    assert "right_loop: keeps test_softmax_typo, which is not a check of demo-x" in result.output


@pytest.mark.slow
def test_a_check_that_rejects_a_right_solution_is_reported(tmp_path, monkeypatch):
    """A right solution the checks fail is the check's fault, and check-exercise says which check."""
    _scaffold(tmp_path)
    folder = tmp_path / "tests" / "curriculum" / "demo-x"
    # "right" by its header only: it normalises the columns, and the report names the check that says so
    (folder / "right_columns.py").write_text(
        "# right: normalises with torch.softmax\n# keeps: test_softmax_matches_torch\nimport torch\n\n\n"
        "def softmax(x, dim=-1):\n    return torch.softmax(x, dim=0)\n")
    monkeypatch.setenv("GRADER_EXERCISES", str(tmp_path))
    result = CliRunner().invoke(main, ["check-exercise", "demo-x", "--discrimination", "--only", "right_columns"])
    assert result.exit_code == 1, result.output
    assert re.search(r"✘ right_columns\s", result.output), result.output
    assert "a correct solution loses test_softmax_matches_torch" in result.output


def _pin(tmp_path: Path, text: str) -> Path:
    _scaffold(tmp_path)
    folder = tmp_path / "tests" / "curriculum" / "demo-x"
    (folder / "advice.toml").write_text(text)
    return folder


def test_advice_pins_travel_with_their_wrong_solution(tmp_path):
    folder = _pin(tmp_path, '[[advice]]\nwrong = "sum-over-wrong-dim"\ncheck = "test_softmax_matches_torch"\n'
                            'says = "sum to 1"\n\n[[keeps]]\nwrong = "wrong_sum_over_wrong_dim"\n'
                            'check = "test_softmax_rejects_integer_tensors"\n')
    wrongs = {w.name: w for w in discrimination.wrong_solutions(folder)}
    pinned = wrongs["wrong_sum_over_wrong_dim"]
    assert pinned.advice == (("test_softmax_matches_torch", "sum to 1"),)
    assert pinned.keeps == ("test_softmax_rejects_integer_tensors",)
    assert pinned.checks == ("test_softmax_matches_torch", "test_softmax_rejects_integer_tensors")
    assert wrongs["wrong_no_max_subtraction"].advice == () and wrongs["wrong_no_max_subtraction"].keeps == ()


@pytest.mark.parametrize("text,says", [
    ('[[advice]]\nwrong = "no-such-mistake"\ncheck = "test_softmax_matches_torch"\nsays = "x"\n',
     "pins for wrong_no_such_mistake, which is no kept wrong solution"),
    ('[[advice]]\nwrong = "sum-over-wrong-dim"\ncheck = "test_softmax_matches_torch"\n', "needs exactly check, says"),
    ('[[advice]]\nwrong = "sum-over-wrong-dim"\ncheck = "test_softmax_matches_torch"\nsays = " "\n', "needs exactly"),
    ('[[keep]]\nwrong = "sum-over-wrong-dim"\ncheck = "test_softmax_matches_torch"\n', "unknown tables ['keep']"),
])
def test_malformed_advice_pins_are_refused(tmp_path, text, says):
    folder = _pin(tmp_path, text)
    with pytest.raises(PluginError) as exc:
        discrimination.wrong_solutions(folder)
    assert says in str(exc.value)


def test_check_exercise_reports_an_advice_pin_naming_no_check(tmp_path, monkeypatch):
    _pin(tmp_path, '[[keeps]]\nwrong = "sum-over-wrong-dim"\ncheck = "test_softmax_typo"\n')
    monkeypatch.setenv("GRADER_EXERCISES", str(tmp_path))
    result = CliRunner().invoke(main, ["check-exercise", "demo-x"])
    assert result.exit_code == 1
    assert ("wrong_sum_over_wrong_dim: is pinned in advice.toml to test_softmax_typo, which is not a check of demo-x"
            in result.output)


@pytest.mark.slow
def test_discrimination_proves_advice_pins_in_the_wrong_solutions_own_grading(tmp_path, monkeypatch):
    """A pinned message the check does not give, and a kept check the mistake loses, each fail the run."""
    _pin(tmp_path, '[[advice]]\nwrong = "sum-over-wrong-dim"\ncheck = "test_softmax_matches_torch"\n'
                   'says = "words no check prints"\n\n[[keeps]]\nwrong = "accepts-integers"\n'
                   'check = "test_softmax_rejects_integer_tensors"\n\n[[keeps]]\nwrong = "no-max-subtraction"\n'
                   'check = "test_softmax_matches_torch"\n')
    monkeypatch.setenv("GRADER_EXERCISES", str(tmp_path))
    result = CliRunner().invoke(main, ["check-exercise", "demo-x", "--discrimination", "--only",
                                       "wrong_sum_over_wrong_dim", "--only", "wrong_accepts_integers",
                                       "--only", "wrong_no_max_subtraction"])
    assert result.exit_code == 1, result.output
    assert "test_softmax_matches_torch: expected advice with 'words no check prints'" in result.output
    assert "should keep test_softmax_rejects_integer_tensors: fail" in result.output
    assert re.search(r"✔ wrong_no_max_subtraction\s", result.output), result.output
