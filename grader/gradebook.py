"""The gradebook: every grading run, and the grade published for each (student, exercise), in SQLite.

``runs`` is an append-only log: one row per finished grading attempt (batch or regrade), written in
one transaction after the result files exist.  ``grades`` points at the run whose score counts for
each (student, exercise); a ``grader_error`` run is never published, so it never becomes a score.
WAL journaling lets readers (exports, reports) work while a batch writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FILENAME = "gradebook.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                 -- batch | regrade | submit (grader serve)
    state TEXT NOT NULL,                -- published | pending | superseded | discarded | failed
    student TEXT NOT NULL,
    exercise TEXT NOT NULL,
    submission_path TEXT NOT NULL,
    submission_hash TEXT NOT NULL,
    exercise_version TEXT NOT NULL,
    checks_hash TEXT NOT NULL,
    grader_version TEXT NOT NULL,
    profile TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    status TEXT NOT NULL,
    score REAL NOT NULL,
    max_score REAL NOT NULL,
    final_score REAL NOT NULL,          -- after policies (late penalty)
    policy_note TEXT NOT NULL DEFAULT '',
    submitted_at TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    result_dir TEXT NOT NULL,
    results_sha256 TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (student, exercise, submission_hash, exercise_version);
CREATE TABLE IF NOT EXISTS grades (
    student TEXT NOT NULL,
    exercise TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs (id),
    published_at TEXT NOT NULL,
    PRIMARY KEY (student, exercise)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    student TEXT NOT NULL,
    exercise TEXT NOT NULL,
    kind TEXT NOT NULL,                 -- e.g. refused (a policy turned the job away)
    detail TEXT NOT NULL
);
"""


def where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """`` WHERE a = ? AND b = ?`` over the filters that are not None (``""`` when none are), and their values."""
    used = {col: value for col, value in filters.items() if value is not None}
    return (f" WHERE {' AND '.join(f'{col} = ?' for col in used)}" if used else ""), list(used.values())


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Run:
    """One finished grading attempt, as recorded (see the ``runs`` table for the fields)."""

    student: str
    exercise: str
    submission_path: str
    submission_hash: str
    exercise_version: str
    checks_hash: str
    grader_version: str
    profile: str
    sandbox: str
    status: str
    score: float
    max_score: float
    final_score: float
    started_at: str
    finished_at: str
    result_dir: str
    results_sha256: str
    kind: str = "batch"
    policy_note: str = ""
    submitted_at: str | None = None
    error: str = ""

    @property
    def counted(self) -> bool:
        """A grader_error is our failure: it is retried, never a student's score."""
        return self.status != "grader_error"


class Gradebook:
    """A gradebook file; one connection, used from the thread that opened it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a committed run survives kill -9 and power loss
        self.db.executescript(_SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @classmethod
    def open(cls, out_dir: Path) -> Gradebook:
        return cls(out_dir / FILENAME)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- runs ------------------------------------------------------------------------------
    def finished(self, student: str, exercise: str, submission_hash: str, exercise_version: str,
                 checks_hash: str | None = None) -> sqlite3.Row | None:
        """A counted (not grader_error) run of this exact job, if one exists."""
        sql = ("SELECT * FROM runs WHERE student = ? AND exercise = ? AND submission_hash = ? "
               "AND exercise_version = ? AND status != 'grader_error' AND state != 'discarded'")
        args: list[Any] = [student, exercise, submission_hash, exercise_version]
        if checks_hash is not None:
            sql += " AND checks_hash = ?"
            args.append(checks_hash)
        return self.db.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()

    def record(self, run: Run, publish: bool,
               also: Callable[[sqlite3.Connection, int], None] | None = None) -> int:
        """Insert ``run``; with ``publish`` (and a counted status) make it the student's grade.

        One transaction: either the run and its grade are both recorded, or neither is.  ``also(db, run_id)``
        runs inside that transaction (the server marks its submission done there).
        """
        state = "failed" if not run.counted else "published" if publish else "pending"
        cols = [f for f in Run.__dataclass_fields__]
        with self.transaction() as db:
            cur = db.execute(
                f"INSERT INTO runs (state, {', '.join(cols)}) VALUES (?, {', '.join('?' for _ in cols)})",
                [state, *(getattr(run, c) for c in cols)],
            )
            run_id = int(cur.lastrowid or 0)
            if state == "published":
                self._point_grade(db, run.student, run.exercise, run_id)
            if also is not None:
                also(db, run_id)
        return run_id

    def publish(self, run_ids: list[int], result_dirs: dict[int, str] | None = None) -> None:
        """Make pending runs the published grades (their files now in ``result_dirs``), in one transaction."""
        with self.transaction() as db:
            for run_id in run_ids:
                row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None or row["state"] != "pending":
                    continue
                db.execute("UPDATE runs SET state = 'published', result_dir = ? WHERE id = ?",
                           ((result_dirs or {}).get(run_id, row["result_dir"]), run_id))
                self._point_grade(db, row["student"], row["exercise"], run_id)

    @staticmethod
    def _point_grade(db: sqlite3.Connection, student: str, exercise: str, run_id: int) -> None:
        db.execute("UPDATE runs SET state = 'superseded' WHERE state = 'published' AND student = ? "
                   "AND exercise = ? AND id != ?", (student, exercise, run_id))
        db.execute("INSERT OR REPLACE INTO grades VALUES (?, ?, ?, ?)", (student, exercise, run_id, now()))

    def event(self, student: str, exercise: str, kind: str, detail: str) -> None:
        self.db.execute("INSERT INTO events (at, student, exercise, kind, detail) VALUES (?, ?, ?, ?, ?)",
                        (now(), student, exercise, kind, detail))

    # -- reading ---------------------------------------------------------------------------
    def grades(self, exercise: str | None = None) -> list[sqlite3.Row]:
        """Published grades joined with their runs, ordered by student then exercise."""
        sql = "SELECT runs.* FROM grades JOIN runs ON runs.id = grades.run_id"
        args: tuple[str, ...] = ()
        if exercise:
            sql, args = sql + " WHERE grades.exercise = ?", (exercise,)
        return self.db.execute(sql + " ORDER BY grades.student, grades.exercise", args).fetchall()

    def runs(self, state: str | None = None, kind: str | None = None) -> list[sqlite3.Row]:
        clause, args = where({"state": state, "kind": kind})
        return self.db.execute(f"SELECT * FROM runs{clause} ORDER BY id", args).fetchall()

    def submissions_of(self, student: str, exercise: str) -> list[sqlite3.Row]:
        """Distinct submissions graded for (student, exercise), oldest first (for rate limits)."""
        return self.db.execute(
            "SELECT submission_hash, MIN(submitted_at) AS submitted_at, MIN(started_at) AS started_at FROM runs "
            "WHERE student = ? AND exercise = ? AND kind = 'batch' AND status != 'grader_error' "
            "GROUP BY submission_hash ORDER BY MIN(id)", (student, exercise)).fetchall()

    def events(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM events ORDER BY id").fetchall()


def require(out_dir: Path) -> Gradebook:
    """Open an existing gradebook, or explain where one comes from."""
    from grader.errors import GraderError

    if not (out_dir / FILENAME).is_file():
        raise GraderError(f"no gradebook in {out_dir} (expected {out_dir / FILENAME}); "
                          f"run `grader batch ROSTER --out {out_dir}` first")
    return Gradebook.open(out_dir)
