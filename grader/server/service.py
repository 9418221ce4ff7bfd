"""The grading service behind ``grader serve``: who may submit, what is accepted, and the grading workers.

The HTTP layer (:mod:`grader.server.app`) only translates; every decision is made here, in the trusted
server process.  Student code runs only inside ``grader.api.grade``'s sandbox, started by a worker thread.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from grader import policies as pol
from grader.batch.jobs import clear_staging, grade_job, make_job, run_record
from grader.batch.roster import content_hash, safe_name
from grader.checks import warm
from grader.config import Settings
from grader.engine.archives import ArchiveError, ArchiveLimits, safe_extract
from grader.engine.submission import MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES
from grader.errors import GraderError, UnknownName
from grader.plugins import Registries
from grader.server.store import MAX_CLAIMS, ServerStore
from grader.server.views import Release, write_document

log = logging.getLogger("grader.server")

SUFFIXES = (".py", ".ipynb", ".zip")
DEFAULT_RATE_LIMIT = {"max_submissions": 10, "per_hours": 1}
LINK_TTL_S = 7 * 86_400
#: how a grading that runs elsewhere (a Ray task) writes the server's document beside results.json
KEEP_DOCUMENT = f"{write_document.__module__}:{write_document.__name__}"
INCOMING = ".incoming"
UPLOAD_IDLE_S = 15.0
UPLOAD_TOTAL_S = 300.0


@dataclass(frozen=True)
class Identity:
    name: str
    role: str

    @property
    def instructor(self) -> bool:
        return self.role == "instructor"


class Refusal(Exception):
    """A request turned away, with the HTTP status and a sentence the student can act on."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers or {}, extra


def read_roster(path: Path) -> list[str]:
    """Student names from a CSV with a ``student`` (or ``id``/``username``/``login``) column."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            column = next((c for c in ("student", "id", "username", "login") if c in (reader.fieldnames or [])), None)
            if column is None:
                raise GraderError(f"{path}: needs a header row with a 'student' column (found {reader.fieldnames})")
            names = [(row.get(column) or "").strip() for row in reader]
    except OSError as exc:
        raise GraderError(f"roster: {exc}") from None
    bad = [n for n in names if n and safe_name(n) != n]
    if bad:
        raise GraderError(f"{path}: names may hold only letters, digits, '-', '_' and '.': {bad[:3]}")
    return sorted({n for n in names if n})


def _fsync_into(tmp: Path, final: Path) -> None:
    """Move a finished upload into place durably: file data, the rename, then the folder entry."""
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass
class Service:
    store: ServerStore
    registries: Registries
    settings: Settings
    policy: pol.ClassPolicy
    roster: frozenset[str]
    data: Path
    #: the roster file, reread when it changes: a student added mid-term needs no restart
    roster_path: Path | None = None
    max_upload_bytes: int = 5 * 1024 * 1024
    #: an upload with no byte for this long, or not complete after the total, is dropped (408)
    upload_idle_s: float = UPLOAD_IDLE_S
    upload_total_s: float = UPLOAD_TOTAL_S
    policies: list[Any] = field(default_factory=list)
    release: Release = field(default_factory=lambda: Release({}))
    secret: bytes = b""
    _fingerprints: dict[str, str] = field(default_factory=dict)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _roster_stamp: tuple[float, int] = (0.0, 0)
    _runners: warm.RunnerPool | None = None
    #: a :class:`grader.batch.ray_executor.RayCluster` (connected): gradings run as its tasks instead of here
    cluster: Any = None

    def __post_init__(self) -> None:
        self.policies = list(self.registries.policies)
        self.release = Release.from_policy(self.policy)
        self.secret = self.store.secret()

    # -- who ----------------------------------------------------------------------------
    def authenticate(self, token: str | None) -> Identity:
        holder = self.store.holder(token) if token else None
        if holder is None:
            raise Refusal(401, "no valid token: run `grader login --server URL` with the token your instructor "
                               "gave you, or set GRADER_TOKEN", {"WWW-Authenticate": "Bearer"})
        who = Identity(*holder)
        if not who.instructor and who.name not in self._current_roster():
            raise Refusal(403, f"{who.name} is not on this course's roster; ask your instructor")
        return who

    def _current_roster(self) -> frozenset[str]:
        if self.roster_path is None:
            return self.roster
        try:
            stat = self.roster_path.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if stamp != self._roster_stamp:
                self.roster, self._roster_stamp = frozenset(read_roster(self.roster_path)), stamp
                log.info("roster %s: %d students", self.roster_path, len(self.roster))
        except (OSError, GraderError) as exc:  # a half-edited file: keep the last good roster
            log.warning("roster %s unreadable, keeping the last one: %s", self.roster_path, exc)
        return self.roster

    # -- accepting ------------------------------------------------------------------------
    def accept(self, who: Identity, exercise_id: str, filename: str, upload: Path) -> sqlite3.Row:
        """Validate an upload (already streamed to ``upload``) and queue it; raises :class:`Refusal`."""
        if who.instructor:
            raise Refusal(403, "instructor tokens cannot submit; grade your own work with `grader grade`")
        try:
            exercise = self.registries.exercises.get(exercise_id)
        except UnknownName as exc:
            raise Refusal(404, str(exc)) from None
        suffix = Path(filename).suffix.lower()
        if suffix not in SUFFIXES:
            raise Refusal(415, f"{filename!r} is not a .py, .ipynb or .zip file; submit solution.py, a notebook, "
                               "or a folder (grader submit zips it for you)")
        if suffix == ".zip":
            self._check_archive(upload, Path(filename).name)
        elif suffix == ".ipynb":
            self._check_notebook(upload, Path(filename).name)
        stored = {".py": "solution.py", ".zip": "submission.zip"}.get(suffix) or \
            f"{safe_name(Path(filename).stem) if Path(filename).stem.strip('.') else 'notebook'}.ipynb"
        sid = uuid.uuid4().hex
        final = self.data / "uploads" / sid / stored
        _fsync_into(upload, final)
        digest = content_hash(final)  # as `grader batch` hashes it, so `grader regrade` recognises the work
        try:
            row = self.store.accept(who.name, exercise.id, stored, final, digest, final.stat().st_size, sid=sid,
                                    admit=lambda received, earlier: self._admit(who.name, exercise.id, received,
                                                                                earlier))
        except BaseException as exc:
            shutil.rmtree(final.parent, ignore_errors=True)
            if isinstance(exc, Refusal):
                self.store.refused(who.name, exercise.id, exc.detail)
            raise
        self._wake.set()
        return row

    def _check_archive(self, upload: Path, name: str) -> None:
        with tempfile.TemporaryDirectory(prefix="grader-upload-check-") as tmp:
            try:
                safe_extract(upload, Path(tmp), ArchiveLimits(MAX_FILES, MAX_FILE_BYTES, MAX_TOTAL_BYTES))
            except ArchiveError as exc:
                raise Refusal(422, f"the archive was refused: {str(exc).replace(upload.name, name)}") from None

    def _check_notebook(self, upload: Path, name: str) -> None:
        from grader.engine.notebook import NotebookError, to_source

        try:
            to_source(upload)
        except NotebookError as exc:
            raise Refusal(422, f"the notebook was refused: {str(exc).replace(upload.name, name)}") from None

    def _admit(self, student: str, exercise: str, received_at: str, earlier: list[str]) -> None:
        """Runs inside the queue's insert transaction, so two uploads at once cannot both slip past a limit."""
        received = datetime.fromisoformat(received_at)
        job = pol.JobInfo(student, exercise, received, self.policy.deadline(exercise),
                          tuple(datetime.fromisoformat(t) for t in earlier))
        reason = pol.admit(self.policies, self.policy, job)
        if not reason:
            return
        when = pol.next_allowed(self.policies, self.policy, job)
        if when is None:
            raise Refusal(403, reason)
        wait_s = max(1, int((when - received).total_seconds() + 0.999))
        options = self.policy.options.get("rate_limit", {})
        raise Refusal(429, f"{reason}; next allowed at {when.isoformat(timespec='seconds')} (in {wait_s} s)",
                      {"Retry-After": str(wait_s)}, limit=options.get("max_submissions"),
                      window_hours=options.get("per_hours"), next_allowed_at=when.isoformat(timespec="seconds"))

    # -- grading --------------------------------------------------------------------------
    def recover(self) -> int:
        """Put back what a killed server left half done; returns how many gradings go back to the queue."""
        resumed = self.store.requeue_interrupted()
        clear_staging(self.data)  # half-written results of interrupted gradings
        shutil.rmtree(self.data / INCOMING, ignore_errors=True)  # half-received uploads (never answered 202)
        self._drop_unrecorded_uploads()
        return resumed

    def start_workers(self, count: int) -> int:
        """Start ``count`` grading threads, after :meth:`recover`; returns how many gradings were resumed."""
        resumed = self.recover()
        from grader.engine.core import set_concurrent_jobs

        if self.cluster is None:
            set_concurrent_jobs(count)  # each job's threads: its share of the cores
        if self.settings.warm and self._runners is None and self.cluster is None:
            self._runners = warm.install(max(count, 1))  # forks of runners that imported pytest and torch
        for i in range(max(count, 1)):
            thread = threading.Thread(target=self._work_loop, name=f"grader-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._wake.set()
        return resumed

    def _drop_unrecorded_uploads(self) -> None:
        """An upload renamed into place by a server killed before its row was committed was never accepted."""
        uploads = self.data / "uploads"
        if not uploads.is_dir():
            return
        known = self.store.ids()
        for folder in uploads.iterdir():
            if folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)

    def stop_workers(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        warm.uninstall(self._runners)
        self._runners = None
        from grader.engine.core import set_concurrent_jobs

        set_concurrent_jobs(1)

    def _work_loop(self) -> None:
        while not self._stop.is_set():
            try:
                row = self.store.claim()
            except sqlite3.Error as exc:
                log.error("queue unavailable: %s", exc)
                row = None
            if row is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._wake.set()  # another idle worker may take the next one
            try:
                self.grade(row)
            except Exception:  # a grader bug: the row stays running and is retried at the next start
                log.exception("grading %s failed", row["id"])

    def grade(self, row: sqlite3.Row) -> None:
        exercise = self.registries.exercises.get(row["exercise"])
        job = make_job(exercise, self.settings, row["student"], Path(row["path"]), row["digest"],
                       row["received_at"], self._fingerprints)
        started = time.perf_counter()
        final = self.data / "results" / row["id"]
        if self.cluster is not None:  # the same grading as a Ray task; its document written there too
            outcome = self.cluster.grade(job, self.data, final=final, keep=KEEP_DOCUMENT)
        else:
            outcome = grade_job(self.registries, job, self.settings, self.data, final=final,
                                keep=lambda result, staging: write_document(result, staging))
        counted = outcome.status != "grader_error"
        final_score, note = 0.0, ""
        if counted:
            info = pol.JobInfo(job.student, job.exercise_id, datetime.fromisoformat(row["received_at"]),
                               self.policy.deadline(job.exercise_id))
            final_score, note = pol.adjust(self.policies, self.policy, info, outcome.score, outcome.max_score)
        run = run_record(job, outcome, "submit", final_score, note)
        if not counted and row["claims"] < MAX_CLAIMS:
            log.warning("grader_error on %s (%s); retrying", row["id"], outcome.error)
            self.store.retry(row["id"], run)
            self._wake.set()
            return
        self.store.finish(row["id"], run, publish=counted)
        log.info("graded %s %s/%s: %s %g/%g in %.1f s%s", row["id"][:8], job.student, job.exercise_id,
                 outcome.status, outcome.score, outcome.max_score, time.perf_counter() - started,
                 f" on {outcome.worker}" if outcome.worker else "")

    # -- links ----------------------------------------------------------------------------
    def sign(self, sid: str, view: str, expires: int | None = None) -> tuple[int, str]:
        expires = expires or int(time.time()) + LINK_TTL_S
        mac = hmac.new(self.secret, f"{sid}.{view}.{expires}".encode(), hashlib.sha256).hexdigest()
        return expires, mac

    def verify(self, sid: str, view: str, expires: int, sig: str) -> bool:
        # as bytes: compare_digest refuses a str with non-ASCII characters, and a link's sig is anyone's to type
        given = sig.encode("utf-8", "replace")
        return expires >= time.time() and hmac.compare_digest(self.sign(sid, view, expires)[1].encode(), given)


def open_service(db: Path, roster: Path, registries: Registries, settings: Settings, class_file: Path | None,
                 data: Path | None = None, rate_limit: int | None = None,
                 max_upload_mb: float = 5.0) -> Service:
    policy = pol.ClassPolicy.load(class_file)
    if "rate_limit" not in policy.options or rate_limit is not None:
        policy.options["rate_limit"] = {**DEFAULT_RATE_LIMIT, **policy.options.get("rate_limit", {}),
                                        **({"max_submissions": rate_limit} if rate_limit is not None else {})}
    return Service(store=ServerStore(db), registries=registries, settings=settings, policy=policy,
                   roster=frozenset(read_roster(roster)), roster_path=roster.resolve(),
                   data=(data or db.parent).resolve(),
                   max_upload_bytes=int(max_upload_mb * 1024 * 1024))


__all__ = ["Identity", "Refusal", "Service", "open_service", "read_roster"]
