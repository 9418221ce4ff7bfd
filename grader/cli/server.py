"""Instructor commands for the grading server: ``grader serve`` and ``grader tokens`` (see docs/server.md)."""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

import click

from grader.cli import common
from grader.errors import GraderError
from grader.fs import Lock

db_option = click.option("--db", type=click.Path(path_type=Path), required=True,
                         help="The gradebook SQLite file (created if missing; `grader batch` uses the same schema).")


@click.command()
@click.option("--roster", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="CSV with a 'student' column: who may submit.")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", type=click.IntRange(1, 1024),
              help="Submissions graded at once (each is a runner process plus a sandbox)  [default: 1; with "
                   "--executor ray: the cluster's CPUs]")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: grade on this machine; ray: each grading is a task on the Ray cluster at --address "
                   "(which must see --data at the same path).")
@click.option("--address", metavar="HOST:PORT", help="Ray head address (with --executor ray).")
@common.sandbox_option
@click.option("--class-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML: [deadlines], [late_penalty], [rate_limit], [release], [visibility] (docs/server.md).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              help="Where uploads and results are kept (default: the database's folder).")
@click.option("--rate-limit", type=click.IntRange(0), metavar="N",
              help="Submissions per student per exercise per hour (default 10, or the class file's; 0: no limit).")
@click.option("--max-upload-mb", default=5.0, show_default=True, type=click.FloatRange(0.01))
@click.option("--allow-unisolated", is_flag=True,
              help="Run with a sandbox that does not hide the host's files (`process`): only for a trusted class.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM certificate (chain): serve https. Clients verify it; for a self-signed one they set "
                   "SSL_CERT_FILE to it.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The PEM private key of --tls-cert.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(roster: Path, db: Path, host: str, port: int, workers: int | None, executor: str, address: str | None,
          sandbox: str | None, class_file: Path | None,
          data: Path | None, rate_limit: int | None, max_upload_mb: float, allow_unisolated: bool,
          tls_cert: Path | None,
          tls_key: Path | None, log_level: str) -> None:
    """Run the grading server: students `grader submit` to it, it grades and keeps the gradebook.

    \b
    grader tokens issue roster.csv --db course/gradebook.sqlite --out tokens.csv
    grader serve --roster roster.csv --db course/gradebook.sqlite --workers 2
    grader serve --roster roster.csv --db course/gradebook.sqlite --executor ray --address HEAD:6379
    A submission accepted is graded exactly once, even across a crash: a restarted server
    takes up the queue where the last one stopped.  API: /docs and /openapi.json.
    """
    import uvicorn

    from grader.engine.core import choose_sandbox
    from grader.server.app import create_app
    from grader.server.service import open_service

    if (tls_cert is None) != (tls_key is None):
        raise GraderError("--tls-cert and --tls-key go together: the certificate and its private key")
    scheme = "https" if tls_cert else "http"
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = common.settings(sandbox=sandbox)
    registries = common.registries()
    backend = choose_sandbox(registries, settings.sandbox)
    _require_isolation(backend, allow_unisolated)
    db = db.resolve()
    lock = _lock(db)
    service = open_service(db, roster, registries, settings, class_file, data, rate_limit, max_upload_mb)
    service.cluster = _cluster(executor, address, settings)
    if workers is None:
        workers = max(1, int(service.cluster.cpus)) if service.cluster else 1
    resumed = service.start_workers(workers)
    where = f"Ray cluster {address} ({service.cluster.cpus:g} CPUs, {service.cluster.gpus:g} GPUs)" \
        if service.cluster else "this machine"
    click.echo(f"grader serve: {scheme}://{host}:{port}  ({len(service.roster)} students, {workers} worker(s) on "
               f"{where}, sandbox {backend.name}, data in {service.data})")
    _startup_notes(service, resumed, roster, db)
    try:
        uvicorn.run(create_app(service), host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                    ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None)
    finally:
        service.stop_workers()
        if service.cluster:
            service.cluster.close()
        lock.release()


def _cluster(executor: str, address: str | None, settings: Any) -> Any:
    """The connected Ray cluster for ``--executor ray``, else None."""
    head = common.ray_address(executor, address)
    if head is None:
        if address:
            raise GraderError("--address is the Ray head's address: it goes with --executor ray")
        return None
    from grader.batch.ray_executor import RayCluster

    return RayCluster(head, settings).connect()


def _startup_notes(service: Any, resumed: int, roster: Path, db: Path) -> None:
    """The queue as found, and what the instructor may have forgotten."""
    counts = service.store.counts()
    click.echo(f"queue: {counts['queued']} waiting ({resumed} resumed after an interrupted run), "
               f"{counts['done']} graded")
    if db.name != "gradebook.sqlite":
        click.echo(f"note: `grader export/report/regrade FOLDER` look for FOLDER/gradebook.sqlite; name the "
                   f"database that way to use them on {db.parent}", err=True)
    without = sorted(service.roster - {r["name"] for r in service.store.tokens() if r["revoked_at"] is None})
    if without:
        click.echo(f"warning: {len(without)} student(s) on the roster have no token (e.g. {without[0]}); "
                   f"run `grader tokens issue {roster} --db {db}`", err=True)


def _require_isolation(backend: Any, allowed: bool) -> None:
    """A server holds every student's uploads: student code must not be able to read them."""
    isolated = backend.isolates_filesystem
    if isolated is False and not allowed:
        raise GraderError(f"the {backend.name} sandbox does not hide the host's files: one student's code could read "
                          "other students' uploads and the gradebook. Install bubblewrap (the default) or use "
                          "--sandbox docker; --allow-unisolated runs anyway, for a class you trust")
    if isolated is None:
        click.echo(f"warning: the {backend.name} sandbox does not say whether it hides the host's files; make sure "
                   "student code cannot read the server's data folder", err=True)


def _lock(db: Path) -> Lock:
    """One server per gradebook: two would both claim from the same queue file."""
    lock = Lock(db.parent / f".{db.name}.serve.lock")
    if not lock.acquire(wait=False):
        raise GraderError(f"another `grader serve` is using {db}; stop it first")
    return lock


@click.group()
def tokens() -> None:
    """Issue, list and revoke the tokens students submit with (only their hashes are stored).

    \b
    grader tokens issue roster.csv --db course/gradebook.sqlite --out tokens.csv
    grader tokens issue roster.csv --db ... --instructor prof     also a token that sees everything
    grader tokens revoke alice --db ...                           alice's token stops working at once
    """


@tokens.command("issue")
@click.argument("roster", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the CSV (student,role,token) here, mode 600, instead of printing it.")
@click.option("--instructor", "instructors", multiple=True, metavar="NAME", help="Also issue an instructor token.")
@click.option("--reissue", is_flag=True, help="Replace live tokens too (the old ones stop working).")
def tokens_issue(roster: Path, db: Path, out: Path | None, instructors: tuple[str, ...], reissue: bool) -> None:
    """Issue a token for every student on ROSTER who has none (or, with --reissue, for all)."""
    from grader.server.service import read_roster
    from grader.server.store import ServerStore

    store = ServerStore(db)
    people = [(name, "student") for name in read_roster(roster)] + [(name, "instructor") for name in instructors]
    issued = [(name, role, token) for name, role in people if (token := store.issue(name, role, reissue))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "role", "token"])
    writer.writerows(issued)
    if out is None:
        click.echo(buffer.getvalue(), nl=False)
    else:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(buffer.getvalue())
        os.chmod(out, 0o600)
    kept = len(people) - len(issued)
    click.echo(f"issued {len(issued)} token(s){f' to {out}' if out else ''}; {kept} already held a live token "
               "(--reissue replaces them); the database keeps only their hashes", err=True)


@tokens.command("revoke")
@click.argument("name")
@db_option
def tokens_revoke(name: str, db: Path) -> None:
    """Revoke NAME's live token(s) at once."""
    from grader.server.store import ServerStore

    count = ServerStore(db).revoke(name)
    if not count:
        raise GraderError(f"{name} holds no live token in {db}")
    click.echo(f"revoked {count} token(s) of {name}")


@tokens.command("list")
@db_option
def tokens_list(db: Path) -> None:
    """Who holds a token, with role and dates (never the tokens: they are not stored)."""
    from grader.server.store import ServerStore

    for row in ServerStore(db).tokens():
        state = f"revoked {row['revoked_at'][:19]}" if row["revoked_at"] else "live"
        click.echo(f"{row['name']:<24} {row['role']:<10} issued {row['issued_at'][:19]}  {state}")


COMMANDS = [serve, tokens]
