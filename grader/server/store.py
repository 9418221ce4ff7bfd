"""The server's state, in the gradebook's own SQLite file: tokens and the submission queue.

``submissions`` is the queue and the history at once.  A row is inserted (state ``queued``) only after the
upload is on disk, and the HTTP answer is sent only after that commit, so an accepted submission survives
any crash.  A worker claims a row (``running``); the gradebook run and the row's ``done`` state are written
in one transaction, so a submission is recorded exactly once.  Rows left ``running`` by a killed server
are put back in the queue when it starts again (:meth:`ServerStore.requeue_interrupted`).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grader.gradebook import Gradebook, Run, now, where

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,              -- sha256 of the token; the token itself is never stored
    name TEXT NOT NULL,
    role TEXT NOT NULL,                 -- student | instructor
    issued_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS tokens_name ON tokens (name);
CREATE TABLE IF NOT EXISTS submissions (
    seq INTEGER PRIMARY KEY,            -- queue order
    id TEXT NOT NULL UNIQUE,
    student TEXT NOT NULL,
    exercise TEXT NOT NULL,
    filename TEXT NOT NULL,
    path TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    state TEXT NOT NULL,                -- queued | running | done
    claims INTEGER NOT NULL DEFAULT 0,  -- times a worker started grading it (a killed server's included)
    run_id INTEGER REFERENCES runs (id),
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS submissions_state ON submissions (state, seq);
CREATE INDEX IF NOT EXISTS submissions_student ON submissions (student, exercise, seq);
"""

#: a submission with what its recorded run says (NULLs until it is done)
_WITH_RUN = ("SELECT s.*, r.status, r.score, r.max_score, r.final_score, r.policy_note, r.result_dir, r.error "
             "FROM submissions s LEFT JOIN runs r ON r.id = s.run_id")
TOKEN_PREFIX = "grd_"
ROLES = ("student", "instructor")
#: a grader_error is retried this many times in all before it is left as the answer
MAX_CLAIMS = 2


def token_hash(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough (no password stretching needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ServerStore:
    """Per-thread connections to one gradebook file (sqlite3 connections stay in their thread)."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path
        self._local = threading.local()
        self.db.executescript(_SCHEMA)

    @property
    def gradebook(self) -> Gradebook:
        book = getattr(self._local, "book", None)
        if book is None:
            book = self._local.book = Gradebook(self.path)
        return book

    @property
    def db(self) -> sqlite3.Connection:
        return self.gradebook.db

    def transaction(self) -> Any:
        return self.gradebook.transaction()

    def secret(self) -> bytes:
        """The key that signs report links; made once, so links survive restarts."""
        with self.transaction():
            value = self.gradebook.get_meta("server_secret")
            if value is None:
                value = secrets.token_hex(32)
                self.gradebook.set_meta("server_secret", value)
        return bytes.fromhex(value)

    # -- tokens ----------------------------------------------------------------------------
    def issue(self, name: str, role: str, reissue: bool = False) -> str | None:
        """A new token for ``name``, or None when a live one exists and ``reissue`` is off."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        with self.transaction() as db:
            live = db.execute("SELECT 1 FROM tokens WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone()
            if live and not reissue:
                return None
            db.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (now(), name))
            token = new_token()
            db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, NULL)", (token_hash(token), name, role, now()))
        return token

    def revoke(self, name: str) -> int:
        return self.db.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                               (now(), name)).rowcount

    def holder(self, token: str) -> tuple[str, str] | None:
        """(name, role) of a live token, or None."""
        row = self.db.execute("SELECT name, role FROM tokens WHERE hash = ? AND revoked_at IS NULL",
                              (token_hash(token),)).fetchone()
        return (row["name"], row["role"]) if row else None

    def tokens(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT name, role, issued_at, revoked_at FROM tokens ORDER BY name, issued_at"
                               ).fetchall()

    # -- the queue -------------------------------------------------------------------------
    def accept(self, student: str, exercise: str, filename: str, path: Path, digest: str, size: int,
               sid: str | None = None, admit: Callable[[str, list[str]], None] | None = None) -> sqlite3.Row:
        """Record an accepted submission (its upload already on disk) as queued, received now.

        ``admit(received_at, earlier)`` sees this submission's time and when the student's earlier ones of
        the exercise arrived, and may raise to refuse.  Both run inside the insert's transaction, so
        concurrent uploads are timed and judged one at a time, in the order they are recorded.
        """
        sid = sid or uuid.uuid4().hex
        with self.transaction() as db:
            received_at = now()
            if admit is not None:
                admit(received_at, self.received_times(student, exercise))
            db.execute("INSERT INTO submissions (id, student, exercise, filename, path, digest, size, received_at, "
                       "state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued')",
                       (sid, student, exercise, filename, str(path), digest, size, received_at))
        row = self.get(sid)
        assert row is not None
        return row

    def claim(self) -> sqlite3.Row | None:
        """Take the oldest queued submission for grading."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM submissions WHERE state = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE submissions SET state = 'running', claims = claims + 1, started_at = ? WHERE seq = ?",
                       (now(), row["seq"]))
        return self.get(row["id"])

    def finish(self, sid: str, run: Run, publish: bool) -> int:
        """Record the run and mark the submission done, in one transaction."""
        def mark_done(db: sqlite3.Connection, run_id: int) -> None:
            changed = db.execute("UPDATE submissions SET state = 'done', run_id = ?, finished_at = ? "
                                 "WHERE id = ? AND state = 'running'", (run_id, run.finished_at, sid)).rowcount
            if changed != 1:  # someone else finished it: roll the whole transaction back
                raise RuntimeError(f"submission {sid} was not running; its result is not recorded twice")

        return self.gradebook.record(run, publish=publish, also=mark_done)

    def retry(self, sid: str, run: Run) -> None:
        """Record a grader_error run and put the submission back in the queue (one transaction)."""
        def back_in_queue(db: sqlite3.Connection, run_id: int) -> None:
            db.execute("UPDATE submissions SET state = 'queued' WHERE id = ? AND state = 'running'", (sid,))

        self.gradebook.record(run, publish=False, also=back_in_queue)

    def requeue_interrupted(self) -> int:
        """Submissions a killed server was grading go back to the queue (nothing of theirs was recorded)."""
        return self.db.execute("UPDATE submissions SET state = 'queued' WHERE state = 'running'").rowcount

    # -- reading ---------------------------------------------------------------------------
    def get(self, sid: str) -> sqlite3.Row | None:
        return self.db.execute(f"{_WITH_RUN} WHERE s.id = ?", (sid,)).fetchone()

    def listing(self, student: str | None = None, exercise: str | None = None,
                limit: int = 500) -> list[sqlite3.Row]:
        clause, args = where({"s.student": student, "s.exercise": exercise})
        return self.db.execute(f"{_WITH_RUN}{clause} ORDER BY s.seq DESC LIMIT ?", [*args, limit]).fetchall()

    def ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM submissions").fetchall()}

    def position(self, seq: int) -> int:
        """How many queued submissions are ahead of ``seq``."""
        return int(self.db.execute("SELECT COUNT(*) FROM submissions WHERE state = 'queued' AND seq < ?",
                                   (seq,)).fetchone()[0])

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT state, COUNT(*) AS n FROM submissions GROUP BY state").fetchall()
        return {"queued": 0, "running": 0, "done": 0, **{r["state"]: int(r["n"]) for r in rows}}

    def received_times(self, student: str, exercise: str) -> list[str]:
        """When this student's accepted submissions of ``exercise`` arrived (for the rate limit)."""
        return [r[0] for r in self.db.execute(
            "SELECT received_at FROM submissions WHERE student = ? AND exercise = ? ORDER BY seq",
            (student, exercise)).fetchall()]

    def refused(self, student: str, exercise: str, reason: str) -> None:
        self.gradebook.event(student, exercise, "refused", reason)
