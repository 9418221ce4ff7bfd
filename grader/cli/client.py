"""Student commands for the grading server: submit, login, status (registered in :mod:`grader.cli`)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from grader.cli import common
from grader.cli.common import COLORS, SYMBOLS, LiveLine
from grader.client.http import Client, Credentials, load_credentials, normalize_server, pack, save_credentials
from grader.errors import GraderError

BIG_UPLOAD = 256 * 1024

TOKEN_HELP = """\b
The token comes from GRADER_TOKEN, else from the file `grader login` saved:
$GRADER_CONFIG_DIR/credentials.json (default ~/.config/grader/credentials.json).
The server comes from --server, else GRADER_SERVER, else that file."""



def _exit_help(zero: str) -> str:
    return ("\b\nExit codes:\n"
            f"  0  {zero}\n"
            "  2  usage error: a bad PATH or option, no server configured\n"
            "  4  the server cannot be reached, failed, or did not finish in time\n"
            "  5  no token, or the server refused it (run `grader login`)\n"
            "  6  the server refused the request: rate limit, upload too large,\n"
            "     unsafe archive, unknown exercise (late work is accepted and penalised)")


server_option = click.option("--server", metavar="URL", help="The grading server (default: GRADER_SERVER, "
                             "else the one `grader login` saved).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the server's JSON instead.")


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:g}"


def _upload(client: Client, exercise: str, filename: str, body: bytes) -> dict[str, Any]:
    if LiveLine().live or len(body) > BIG_UPLOAD:
        with click.progressbar(length=len(body), label="uploading", file=sys.stderr) as bar:
            return client.upload(exercise, filename, body, bar.update)
    click.echo(f"uploading {filename} ({len(body):,} bytes)", err=True)
    return client.upload(exercise, filename, body)


class _Watch:
    """Shows the state while waiting: a live line on a terminal, a line per state change anywhere else."""

    def __init__(self) -> None:
        self.line, self.last, self.started = LiveLine(), "", time.monotonic()

    def __call__(self, sub: dict[str, Any]) -> None:
        state = str(sub.get("state"))
        ahead = f" ({sub['position']} ahead)" if state == "queued" and sub.get("position") is not None else ""
        if self.line.live:
            self.line.show(f"{state}{ahead} · {time.monotonic() - self.started:.0f} s")
        elif state != self.last:
            self.line.say(state + ahead)
        self.last = state

    def finish(self) -> None:
        self.line.finish()


def _print_submission(sub: dict[str, Any]) -> None:
    """The per-check summary, as `grader check` prints it."""
    for c in sub.get("checks") or []:
        status = str(c.get("status") or "grader_error")
        sym = click.style(SYMBOLS.get(status, "?"), fg=COLORS.get(status))
        click.echo(f" {sym} {status:<12} {_num(c.get('score'))}/{_num(c.get('max_score'))}  {c.get('title', '')}")
        if status != "pass" and c.get("message"):
            click.echo(f"      {c['message']}")
    hidden = sub.get("hidden") or {}
    if hidden.get("count"):
        click.echo(f"{hidden['count']} hidden check(s): {_num(hidden.get('score'))}/{_num(hidden.get('max_score'))}"
                   " points")
    if sub.get("error"):
        click.echo(f"grader error: {sub['error']}")
    line = f"Score: {_num(sub.get('score'))}/{_num(sub.get('max_score'))} ({sub.get('status')})"
    if sub.get("policy_note"):
        line += f"; final score {_num(sub.get('final_score'))} after policy: {sub['policy_note']}"
    click.echo(line)
    if sub.get("report_url"):
        click.echo(f"Report: {sub['report_url']}")


@click.command("submit", epilog=f"{TOKEN_HELP}\n\n{_exit_help('the server accepted it, whatever the score')}")
@click.argument("exercise")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@server_option
@click.option("--no-wait", is_flag=True, help="Return once the server has accepted the submission.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=900, show_default=True,
              metavar="SECONDS", help="How long to wait for the grade.")
@json_option
def submit(exercise: str, path: Path | None, server: str | None, no_wait: bool, timeout: float,
           as_json: bool) -> None:
    """Upload PATH (default ./EXERCISE) to the grading server as EXERCISE and wait for the grade.

    \b
    PATH: a folder (sent as a zip, less __pycache__, .git, .venv ...),
    solution.py, a .ipynb or a .zip.
    grader submit self-attention            upload ./self-attention, wait,
                                            print each check and the report link
    grader submit self-attention --no-wait  upload only; see the grade later
                                            with `grader status`
    """
    creds = load_credentials(server, None)
    filename, body = pack(path or Path(exercise))
    client = Client(creds)
    sub = _upload(client, exercise, filename, body)
    click.echo(f"accepted: {sub.get('id')} ({sub.get('position') or 0} ahead in the queue)", err=as_json)
    if not no_wait:
        watch = _Watch()
        try:
            sub = client.wait(str(sub.get("id")), timeout, watch)
        finally:
            watch.finish()
    if as_json:
        click.echo(json.dumps(sub, indent=2))
    elif sub.get("state") == "done":
        _print_submission(sub)
    else:
        click.echo(f"See the grade later with `grader status {exercise}`.")


def _read_token(from_stdin: bool) -> str:
    if from_stdin:
        token = sys.stdin.readline().strip()
    else:
        token = str(click.prompt("Token (from your instructor; not shown)", hide_input=True)).strip()
    if not token:
        raise GraderError("the token is empty; paste the token your instructor gave you")
    return token


@click.command("login", epilog=_exit_help("the token works and is saved"))
@click.option("--server", metavar="URL", envvar="GRADER_SERVER", required=True,
              help="The grading server, e.g. https://grader.example.edu (default: GRADER_SERVER).")
@click.option("--token-stdin", is_flag=True, help="Read the token from stdin instead of asking for it.")
def login(server: str, token_stdin: bool) -> None:
    """Check a token with the server and save both for `grader submit` and `grader status`.

    \b
    The token is the one your instructor gave you. It is asked for without
    echo (or read from stdin with --token-stdin), checked with the server,
    then saved with mode 600 in $GRADER_CONFIG_DIR/credentials.json
    (default ~/.config/grader/credentials.json). GRADER_TOKEN and
    GRADER_SERVER, when set, take precedence over the saved file.
    """
    url = normalize_server(server)
    if url.startswith("http://") and urlsplit(url).hostname not in ("localhost", "127.0.0.1", "::1"):
        click.secho(f"warning: {url} is not https; the token travels unencrypted", fg="yellow", err=True)
    creds = Credentials(url, _read_token(token_stdin))
    me = Client(creds).me()
    path = save_credentials(creds)
    click.echo(f"logged in to {url} as {me.get('name')} ({me.get('role')}); saved to {path}")


def _received(stamp: Any) -> str:
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp)
    return (when.astimezone() if when.tzinfo else when).strftime("%Y-%m-%d %H:%M:%S")  # the student's clock


def _row(sub: dict[str, Any]) -> tuple[str, ...]:
    final = sub.get("final_score") if sub.get("final_score") is not None else sub.get("score")
    score = f"{_num(final)}/{_num(sub.get('max_score'))}" if final is not None else "-"
    state = str(sub.get("state"))
    if state == "done" and sub.get("status"):
        state = f"done ({sub['status']})"
    return (str(sub.get("id", ""))[:8], str(sub.get("student", "")), str(sub.get("exercise", "")),
            _received(sub.get("received_at")), state, score, str(sub.get("report_url") or ""))


@click.command("status", epilog=f"{TOKEN_HELP}\n\n{_exit_help('the list was printed')}")
@click.argument("exercise", required=False)
@server_option
@json_option
def status(exercise: str | None, server: str | None, as_json: bool) -> None:
    """List your submissions to the grading server (only EXERCISE's, if given), newest first.

    Each row: id, exercise, when it was received, its state, the score after any late penalty,
    and the link to its report.  With an instructor's token: everyone's, with a STUDENT column.
    """
    subs = Client(load_credentials(server, None)).submissions(exercise)
    if as_json:
        click.echo(json.dumps(subs, indent=2))
        return
    if not subs:
        click.echo(f"No submissions yet{' for ' + exercise if exercise else ''}.")
        return
    header: tuple[str, ...] = ("ID", "STUDENT", "EXERCISE", "RECEIVED", "STATE", "SCORE", "REPORT")
    rows: list[tuple[str, ...]] = [_row(s) for s in subs]
    if len({s.get("student") for s in subs}) <= 1:  # a student's own list: the name adds nothing
        header, rows = header[:1] + header[2:], [row[:1] + row[2:] for row in rows]
    common.table(header, rows)


COMMANDS = [submit, login, status]
