"""Course policies as plugins: late penalty (per day, grace, cap) and submission rate limits."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from grader import hookimpl
from grader.batch.run import run_batch
from grader.builtin.policy_late import LatePenalty
from grader.builtin.policy_rate_limit import RateLimit
from grader.errors import GraderError
from grader.gradebook import Gradebook
from grader.plugins import make_plugin_manager
from grader.policies import ClassPolicy, JobInfo, PolicyRegistry, adjust, collect, next_allowed

DEADLINE = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
LATE = {"per_day": 0.1, "grace_minutes": 15, "cap": 0.25}


def _job(late: timedelta, earlier: tuple[datetime, ...] = ()) -> JobInfo:
    return JobInfo("alice", "ex", DEADLINE + late, DEADLINE, earlier)


@pytest.mark.parametrize("late,expected", [
    (timedelta(hours=-5), 10.0),
    (timedelta(minutes=14), 10.0),
    (timedelta(minutes=16), 9.0),
    (timedelta(days=1, minutes=1), 8.0),
    (timedelta(days=9), 7.5),
], ids=["early", "within-grace", "just-late", "two-days", "capped"])
def test_policies_late_penalty_per_day_grace_and_cap(late, expected):
    score, note = LatePenalty().adjust(_job(late), 10.0, 10.0, LATE)
    assert score == pytest.approx(expected)
    assert ("late by" in note) == (expected < 10.0)


def test_policies_rate_limit_counts_submissions_in_the_window():
    limit = {"max_submissions": 2, "per_hours": 24}
    now = DEADLINE
    assert RateLimit().admit(_job(timedelta(0), (now - timedelta(hours=30),)), limit) == ""
    recent = (now - timedelta(hours=3), now - timedelta(hours=1))
    assert "limit 2" in RateLimit().admit(_job(timedelta(0), recent), limit)


def test_policies_only_configured_policies_apply_and_bad_config_is_explained(tmp_path):
    policies = list(collect(make_plugin_manager(entry_points=False)))
    assert {p.name for p in policies} >= {"late_penalty", "rate_limit"}
    assert adjust(policies, ClassPolicy(), _job(timedelta(days=3)), 4.0, 4.0) == (4.0, "")
    bad = tmp_path / "class.toml"
    bad.write_text('[deadlines]\nex = "next tuesday"\n')
    with pytest.raises(GraderError, match="not an ISO 8601 time"):
        ClassPolicy.load(bad)
    with pytest.raises(GraderError, match="fraction"):
        LatePenalty().adjust(_job(timedelta(days=2)), 1.0, 1.0, {"per_day": 3})


def test_policies_third_party_policy_registers_through_the_hook():
    class Bonus:
        name = "bonus"

        def admit(self, job, options):
            return ""

        def adjust(self, job, score, max_score, options):
            return min(score + options["points"], max_score), "bonus"

    class Plugin:
        @hookimpl
        def grader_register_policies(self, registry: PolicyRegistry):
            registry.add(Bonus())

    policies = list(collect(make_plugin_manager(extra=(Plugin(),), entry_points=False)))
    config = ClassPolicy.from_dict({"bonus": {"points": 1}})
    assert adjust(policies, config, _job(timedelta(0)), 2.0, 4.0) == (3.0, "bonus")
    # written without PolicyBase and without next_allowed: completed with the default (never by waiting)
    assert next_allowed(policies, config, _job(timedelta(0))) is None


def test_policies_in_a_batch_late_work_loses_points_and_resubmissions_are_limited(registries, settings, tmp_path):
    roster = tmp_path / "roster"
    for student in ("ann", "ben"):
        (roster / student / "hostile-target").mkdir(parents=True)
        (roster / student / "hostile-target" / "solution.py").write_text(
            "def answer():\n    return 'x'\n\ndef add(a, b):\n    return a + b\n")
    old = time.time() - 3 * 86400
    os.utime(roster / "ann" / "hostile-target" / "solution.py", (old, old))
    deadline = datetime.fromtimestamp(time.time() - 2 * 86400, UTC).isoformat()
    policy = tmp_path / "class.toml"
    policy.write_text(f'[deadlines]\n"*" = "{deadline}"\n[late_penalty]\nper_day = 0.5\n'
                      "[rate_limit]\nmax_submissions = 1\nper_hours = 24\n")
    out = tmp_path / "out"
    run_batch(registries, roster, out, settings, policies_file=policy, workers=2)
    with Gradebook.open(out) as gb:
        grades = {r["student"]: (r["score"], r["final_score"]) for r in gb.grades()}
    assert grades == {"ann": (1.0, 1.0), "ben": (1.0, 0.0)}, "ben handed in 2 days late: -100% at 0.5/day"
    (roster / "ben" / "hostile-target" / "solution.py").write_text("def add(a, b):\n    return b + a\n")
    summary = run_batch(registries, roster, out, settings)  # the class file is remembered by the gradebook
    assert summary.graded == 0 and summary.skipped == 1
    assert len(summary.refused) == 1 and "rate_limit" in summary.refused[0]
    with Gradebook.open(out) as gb:
        assert [e["kind"] for e in gb.events()] == ["refused"]
