"""The student's side of the grading server: credentials, packing a submission, the HTTP calls.

Standard library only, so ``grader submit`` works wherever ``grader`` installs.  The HTTP contract
is in ``docs/server.md``.  The token goes in the ``Authorization`` header and nowhere else: no
message, ``repr`` or error text ever holds it.
"""

from __future__ import annotations

import io
import json
import os
import socket
import ssl
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException, HTTPResponse, HTTPSConnection
from pathlib import Path
from time import monotonic, sleep
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from grader import __version__
from grader.engine.submission import MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES, regular_files
from grader.errors import GraderError
from grader.fs import SKIP_DIRS

CHUNK = 64 * 1024
MAX_POLL = 3.0
_SKIP = SKIP_DIRS | {"__MACOSX"}


class TransportError(GraderError):
    """The server cannot be reached, timed out, failed (5xx) or did not answer JSON.  Exit code 4."""

    exit_code = 4


class AuthError(GraderError):
    """No token configured, or the server refused it (401, 403).  Exit code 5."""

    exit_code = 5


class Refused(GraderError):
    """The server refused the request (404, 413, 415, 422, 429 ...).  Exit code 6."""

    exit_code = 6


@dataclass(frozen=True)
class Credentials:
    """Where the server is and the bearer token for it (kept out of ``repr``)."""

    server: str
    token: str = field(repr=False)


def config_path() -> Path:
    """``$GRADER_CONFIG_DIR/credentials.json``, by default ``~/.config/grader/credentials.json``."""
    folder = os.environ.get("GRADER_CONFIG_DIR") or Path.home() / ".config" / "grader"
    return Path(folder) / "credentials.json"


def normalize_server(server: str) -> str:
    """``server`` without its trailing slash; a :class:`GraderError` unless it is an http(s) URL."""
    url = server.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GraderError(f"{server!r} is not a server address; give one like https://grader.example.edu")
    return url


def _saved() -> dict[str, str]:
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise GraderError(f"cannot read {path} ({exc.__class__.__name__}); run `grader login --server URL` "
                          "to write it again") from None
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def load_credentials(server: str | None, token: str | None) -> Credentials:
    """Server and token: explicit argument > ``GRADER_SERVER``/``GRADER_TOKEN`` > the saved file.

    The saved token is used only for the saved server, so it is never sent to another host.
    """
    saved = _saved()
    chosen = server or os.environ.get("GRADER_SERVER") or saved.get("server")
    if not chosen:
        raise GraderError("no grading server configured: pass --server URL, set GRADER_SERVER, "
                          "or run `grader login --server URL`")
    chosen = normalize_server(chosen)
    same_host = bool(saved.get("server")) and normalize_server(saved["server"]) == chosen
    key = token or os.environ.get("GRADER_TOKEN") or (saved.get("token") if same_host else None)
    if not key:
        raise AuthError(f"no token for {chosen}: run `grader login --server {chosen}` or set GRADER_TOKEN")
    return Credentials(chosen, key.strip())


def save_credentials(creds: Credentials) -> Path:
    """Write the credentials file atomically, mode 0600 (its folder 0700 when created here)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials-", suffix=".tmp")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"server": creds.server, "token": creds.token}, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _files(folder: Path) -> list[tuple[str, Path]]:
    """The regular files under ``folder`` to submit; refuses links and anything over the limits."""
    files, problem = regular_files(folder, skip=_SKIP)
    if problem:
        raise GraderError(problem)
    total = 0
    for count, (rel, path) in enumerate(files, 1):
        size = path.stat().st_size
        total += size
        if size > MAX_FILE_BYTES:
            raise GraderError(f"{rel} is {size / 1e6:.1f} MB; files may be at most {MAX_FILE_BYTES // 10**6} MB")
        if total > MAX_TOTAL_BYTES or count > MAX_FILES:
            raise GraderError(f"{folder} holds over {MAX_FILES} files or {MAX_TOTAL_BYTES // 10**6} MB; "
                              "submit only your solution (data and checkpoints stay out)")
    return files


def _zip_folder(folder: Path) -> bytes:
    files = _files(folder)
    if not any(rel == "solution.py" for rel, _ in files) and not any(rel.endswith(".ipynb") for rel, _ in files):
        raise GraderError(f"{folder} holds neither solution.py nor a notebook (.ipynb); "
                          "submit the folder `grader start` created")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, strict_timestamps=False) as archive:
        for rel, path in files:
            archive.write(path, rel)
    return buffer.getvalue()


def pack(path: Path) -> tuple[str, bytes]:
    """The (filename, body) to upload for ``path``: a folder (zipped), a ``.py``, ``.ipynb`` or ``.zip``."""
    if path.is_dir():
        return "submission.zip", _zip_folder(path)
    if not path.is_file():
        raise GraderError(f"{path} does not exist; pass the folder or file to submit (default ./EXERCISE)")
    if path.suffix not in (".py", ".ipynb", ".zip"):
        raise GraderError(f"{path.name} cannot be submitted; submit a folder, solution.py, a .ipynb or a .zip")
    if path.stat().st_size > MAX_TOTAL_BYTES:
        raise GraderError(f"{path.name} is over {MAX_TOTAL_BYTES // 10**6} MB; submit only your solution")
    return ("solution.py" if path.suffix == ".py" else path.name), path.read_bytes()


def _detail(data: bytes, fallback: str) -> tuple[str, dict[str, Any]]:
    """The server's ``detail`` sentence (and the whole JSON body) from an error answer."""
    try:
        body = json.loads(data)
    except ValueError:
        return fallback, {}
    if not isinstance(body, dict):
        return fallback, {}
    detail = body.get("detail")
    if isinstance(detail, list):  # a validation error lists what is wrong with each field
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return (str(detail) if detail else fallback), body


def _refusal(status: int, reason: str, headers: dict[str, str], data: bytes, server: str) -> GraderError:
    """The error an answer other than 2xx stands for."""
    detail, body = _detail(data, reason or f"HTTP {status}")
    if status == 401:
        return AuthError(f"the server refused the token ({detail}); run `grader login --server {server}` "
                         "with the token your instructor gave you, or set GRADER_TOKEN")
    if status == 403:
        return AuthError(f"not allowed: {detail}")  # the server says why (not on the roster, an instructor token...)
    if status == 429:
        limit = f"limit: {body['limit']} per {body.get('window_hours', '?')} h; " if "limit" in body else ""
        wait = headers.get("retry-after")
        return Refused(f"rate limit reached ({detail}); {limit}next allowed at {body.get('next_allowed_at', '?')}"
                       + (f" (in {wait} s)" if wait else ""))
    if 400 <= status < 500:
        return Refused(f"the server refused the request (HTTP {status}): {detail}")
    if status >= 500:
        return TransportError(f"the server failed (HTTP {status}): {detail}; try again later, or tell "
                              "your instructor if it keeps happening")
    where = f" to {headers['location']}" if "location" in headers else ""
    return TransportError(f"unexpected answer HTTP {status}{where} from {server}; check the --server address")


class Client:
    """Calls the grading server with one fresh connection per request."""

    def __init__(self, creds: Credentials, timeout: float = 30.0) -> None:
        self.creds = creds
        self.timeout = timeout
        parts = urlsplit(normalize_server(creds.server))
        self._https = parts.scheme == "https"
        self._host, self._port, self._base = parts.hostname or "", parts.port, parts.path.rstrip("/")

    def _connect(self) -> HTTPConnection:
        if self._https:
            return HTTPSConnection(self._host, self._port, timeout=self.timeout, context=ssl.create_default_context())
        return HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds.token}", "Accept": "application/json",
                "User-Agent": f"grader/{__version__}"}

    def _failed(self, exc: BaseException) -> TransportError:
        server = self.creds.server
        if isinstance(exc, ssl.SSLError):
            why = f"TLS failed ({exc.reason or exc}); check the https:// address, or your clock"
        elif isinstance(exc, TimeoutError):
            why = f"no answer within {self.timeout:g} s; the server may be overloaded, try again later"
        elif isinstance(exc, ConnectionRefusedError):
            why = "connection refused; check --server / GRADER_SERVER and that the server is running"
        elif isinstance(exc, socket.gaierror):
            why = f"unknown host {self._host!r}; check the --server address"
        else:
            why = f"{exc.__class__.__name__}: {exc}"
        return TransportError(self._scrub(f"cannot reach {server}: {why}"))

    def _scrub(self, text: str) -> str:
        return text.replace(self.creds.token, "***") if self.creds.token else text

    def _answer(self, response: HTTPResponse) -> Any:
        data = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        if not 200 <= response.status < 300:
            error = _refusal(response.status, response.reason, headers, data, self.creds.server)
            raise type(error)(self._scrub(str(error)))
        try:
            return json.loads(data)
        except ValueError:
            raise TransportError(f"{self.creds.server} answered HTTP {response.status} with something that is not "
                                 "JSON; is it the grading server?") from None

    def _call(self, path: str, kind: type = dict) -> Any:
        conn = self._connect()
        try:
            conn.request("GET", self._base + path, headers=self._headers())
            answer = self._answer(conn.getresponse())
        except (OSError, HTTPException) as exc:
            raise self._failed(exc) from None
        finally:
            conn.close()
        return self._shaped(answer, path, kind)

    def _shaped(self, answer: Any, path: str, kind: type) -> Any:
        if not isinstance(answer, kind):
            raise TransportError(f"{self.creds.server} answered {path.split('?')[0]} with an unexpected "
                                 f"{type(answer).__name__}; is it the grading server, and as new as this grader?")
        return answer

    def me(self) -> dict[str, Any]:
        """``{"name", "role"}`` of the token's holder."""
        return dict(self._call("/api/me"))

    def submissions(self, exercise: str | None = None) -> list[dict[str, Any]]:
        """The caller's submissions (an instructor's: everyone's), newest first."""
        query = f"?{urlencode({'exercise': exercise})}" if exercise else ""
        return list(self._call(f"/api/submissions{query}").get("submissions") or [])

    def submission(self, sid: str) -> dict[str, Any]:
        """One submission, with its checks once done."""
        return dict(self._call(f"/api/submissions/{quote(sid, safe='')}"))

    def _send(self, conn: HTTPConnection, path: str, body: bytes, progress: Callable[[int], None] | None) -> None:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        for key, value in {**self._headers(), "Content-Type": "application/octet-stream",
                           "Content-Length": str(len(body))}.items():
            conn.putheader(key, value)
        conn.endheaders()
        for start in range(0, len(body), CHUNK):
            chunk = body[start:start + CHUNK]
            conn.send(chunk)
            if progress:
                progress(len(chunk))

    def upload(self, exercise: str, filename: str, body: bytes,
               progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """POST ``body`` as a submission to ``exercise``; ``progress(n)`` after each chunk of n bytes sent."""
        path = f"{self._base}/api/submissions?{urlencode({'exercise': exercise, 'filename': filename})}"
        conn = self._connect()
        sending: OSError | None = None
        try:
            conn.connect()
            try:
                self._send(conn, path, body, progress)
            except OSError as exc:  # the server may answer (413 ...) and close before reading it all
                sending = exc
            answer = self._answer(conn.getresponse())
        except (OSError, HTTPException) as exc:
            raise self._failed(sending or exc) from None
        finally:
            conn.close()
        return dict(self._shaped(answer, path, dict))

    def wait(self, sid: str, timeout: float, on_update: Callable[[dict[str, Any]], None] | None = None,
             poll: float = 0.5) -> dict[str, Any]:
        """Poll submission ``sid`` until it is done (backing off to 3 s); a :class:`TransportError` on timeout.

        A server that restarts meanwhile is waited for: its queue survives the restart.
        """
        deadline = monotonic() + timeout
        delay, state, lost = poll, "queued", None
        while True:
            try:
                sub, lost = self.submission(sid), None
            except TransportError as exc:
                lost = exc
            else:
                state = str(sub.get("state"))
                if on_update:
                    on_update(sub)
                if state == "done":
                    return sub
            left = deadline - monotonic()
            if left <= 0:
                why = f"; the last poll failed: {lost}" if lost else ""
                raise TransportError(f"submission {sid} is still {state} after {timeout:g} s{why}; it stays in the "
                                     "queue and will be graded: look later with `grader status`")
            sleep(min(delay, left))
            delay = min(delay * 1.5, MAX_POLL)
