"""The HTTP face of the grading service (FastAPI): authentication, uploads, views, the web page.

Routes translate requests into :class:`grader.server.service.Service` calls and its answers into JSON;
the contract is written down in docs/server.md and served as OpenAPI at ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from grader import __version__
from grader.paths import templates_root
from grader.reports.results import jsonable
from grader.reports.templating import render
from grader.server.service import INCOMING, Identity, Refusal, Service
from grader.server.views import checks_json, leaderboards, read_document, shape

#: an upload announced as larger than the limit is still read (and dropped) up to this many bytes, so the
#: client gets the 413 answer instead of a reset connection; beyond it the connection is simply closed
DRAIN_LIMIT = 64 * 1024 * 1024
PAGE_CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
STUDENT_ERROR = ("the grader failed on this submission (not a problem with your work); "
                 "your instructor has been told and can regrade it")


def describe(service: Service, row: sqlite3.Row, who: Identity, base_url: str,
             with_checks: bool = False) -> dict[str, Any]:
    """One submission as its reader may see it (see docs/server.md)."""
    done = row["state"] == "done"
    out: dict[str, Any] = {
        "id": row["id"], "student": row["student"], "exercise": row["exercise"], "filename": row["filename"],
        "size": row["size"], "received_at": row["received_at"], "state": row["state"],
        "position": service.store.position(row["seq"]) if row["state"] == "queued" else None,
        "status": row["status"] if done else None, "score": row["score"] if done else None,
        "max_score": row["max_score"] if done else None, "final_score": row["final_score"] if done else None,
        "policy_note": (row["policy_note"] or "") if done else "", "finished_at": row["finished_at"],
        "report_url": None,
    }
    if done and row["status"] == "grader_error":
        out["error"] = (row["error"] or "the checks did not run: see the grader_error check") if who.instructor \
            else STUDENT_ERROR
    if not done or not row["result_dir"] or not Path(row["result_dir"], "grade.json").is_file():
        return jsonable(out)
    view = "instructor" if who.instructor else "student"
    expires, sig = service.sign(row["id"], view)
    out["report_url"] = f"{base_url.rstrip('/')}/reports/{row['id']}?view={view}&expires={expires}&sig={sig}"
    if with_checks:
        shaped = _shaped(service, row, instructor=who.instructor)
        out["checks"], out["hidden"] = checks_json(shaped)
        out["student_output"] = shaped.stderr_tail
        out["note"] = shaped.note
    return jsonable(out)


def _shaped(service: Service, row: sqlite3.Row, instructor: bool) -> Any:
    exercise = service.registries.exercises.get(row["exercise"])
    result = replace(read_document(Path(row["result_dir"]), exercise), submission=row["student"])
    released = service.release.released(row["exercise"], datetime.now(UTC))
    return shape(result, instructor=instructor, released=released, after_release=service.release.after_release)


def _identity(request: Request, authorization: Annotated[str | None, Header()] = None) -> Identity:
    scheme, _, token = (authorization or "").partition(" ")
    return request.app.state.service.authenticate(token.strip() if scheme.lower() == "bearer" else None)


Who = Annotated[Identity, Depends(_identity)]


def _service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


Svc = Annotated[Service, Depends(_service)]
router = APIRouter()


@router.get("/api/health", tags=["service"])
def health(service: Svc) -> dict[str, Any]:
    return {"ok": True, "version": __version__, **service.store.counts()}


@router.get("/api/me", tags=["service"])
def me(who: Who) -> dict[str, str]:
    return {"name": who.name, "role": who.role}


@router.get("/api/exercises", tags=["service"])
def exercises(service: Svc, who: Who) -> list[dict[str, Any]]:
    return [{"id": e.id, "title": e.title, "points": e.points,
             "deadline": (d.isoformat() if (d := service.policy.deadline(e.id)) else None)}
            for e in service.registries.exercises.ordered()]


@router.post("/api/submissions", status_code=202, tags=["submissions"])
async def submit(request: Request, service: Svc, who: Who, exercise: Annotated[str, Query(max_length=100)],
                 filename: Annotated[str, Query(max_length=200)] = "solution.py") -> JSONResponse:
    """Upload the raw bytes of solution.py, a notebook or a .zip; answers 202 once it is queued."""
    tmp = service.data / INCOMING / uuid.uuid4().hex
    try:
        await _receive(request, tmp, service)
        row = await run_in_threadpool(service.accept, who, exercise, filename, tmp)
    finally:
        tmp.unlink(missing_ok=True)
    return JSONResponse(describe(service, row, who, str(request.base_url)), 202)


@router.get("/api/submissions", tags=["submissions"])
def listing(request: Request, service: Svc, who: Who, exercise: str | None = None,
            student: str | None = None) -> dict[str, Any]:
    if student is not None and not who.instructor and student != who.name:
        raise Refusal(403, "students can list only their own submissions")
    rows = service.store.listing(student=student if who.instructor else who.name, exercise=exercise)
    return {"submissions": [describe(service, r, who, str(request.base_url)) for r in rows]}


@router.get("/api/submissions/{sid}", tags=["submissions"])
def one(request: Request, service: Svc, who: Who, sid: str) -> dict[str, Any]:
    row = service.store.get(sid)
    if row is None or (not who.instructor and row["student"] != who.name):
        raise Refusal(404, "no such submission")  # another student's id is indistinguishable from none
    return describe(service, row, who, str(request.base_url), with_checks=True)


@router.get("/api/leaderboards", tags=["submissions"])
def boards(service: Svc, who: Who, exercise: Annotated[str | None, Query(max_length=100)] = None) -> dict[str, Any]:
    """Each exercise's leaderboards: every student's best attempt, best first. A student sees their own name and
    pseudonyms for everyone else; an instructor sees every name."""
    return jsonable({"leaderboards": leaderboards(service, None if who.instructor else who.name, exercise)})


@router.get("/reports/{sid}", response_class=HTMLResponse, tags=["pages"])
def report(service: Svc, sid: str, view: str, expires: int, sig: str) -> HTMLResponse:
    """The HTML report behind a signed link from ``report_url`` (it expires; ask the API for a new one)."""
    row = service.store.get(sid)
    if view not in ("student", "instructor") or not service.verify(sid, view, expires, sig) or row is None \
            or not row["result_dir"]:
        raise Refusal(404, "this report link is unknown or has expired; `grader status` prints fresh ones")
    shaped = _shaped(service, row, instructor=view == "instructor")
    html = service.registries.reporters.get("html").render(shaped)
    return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_CSP})


@router.get("/", response_class=HTMLResponse, tags=["pages"])
def page() -> HTMLResponse:
    html = render("server_index.html", version=__version__)
    return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_CSP})


@router.get("/static/app.js", tags=["pages"])
def script() -> Response:
    return Response((templates_root() / "server_app.js").read_text(encoding="utf-8"), media_type="text/javascript")


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refusal)
    return JSONResponse({"detail": exc.detail, **exc.extra}, exc.status, headers=exc.headers)


async def _security_headers(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")  # report links carry their signature
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def create_app(service: Service) -> FastAPI:
    """The application for one service (tests and `grader serve` build it the same way)."""
    app = FastAPI(title="grader", version=__version__,
                  summary="Submit deep-learning exercises and get their graded results back.")
    app.state.service = service
    (service.data / INCOMING).mkdir(parents=True, exist_ok=True)
    app.add_exception_handler(Refusal, _refused)
    app.middleware("http")(_security_headers)
    app.include_router(router)
    return app


async def _chunks(request: Request, idle_s: float, total_s: float) -> AsyncIterator[bytes]:
    """The body's chunks, or a 408 once no byte came for ``idle_s`` or the whole took over ``total_s``.

    A stalled upload otherwise holds its connection (and a file handle) open for good: a few hundred of
    them would starve the students actually submitting.
    """
    stream = request.stream().__aiter__()
    deadline = asyncio.get_running_loop().time() + total_s
    while True:
        left = deadline - asyncio.get_running_loop().time()
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout=max(min(idle_s, left), 0.0))
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise Refusal(408, f"the upload stalled: nothing arrived for {idle_s:g} s, or it took over {total_s:g} s "
                               "in all; check your connection and submit again",
                          {"Connection": "close"}) from None
        yield chunk


async def _receive(request: Request, dest: Path, service: Service) -> None:
    """Stream the body to ``dest``, refusing what is over the limit (413), of unknown length (411) or
    stalled (408)."""
    limit = service.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise Refusal(411, "send the upload with a Content-Length header (grader submit does)")
    mb = limit / 1024 / 1024
    too_big = Refusal(413, f"the upload is {int(declared) / 1024 / 1024:.1f} MB; at most {mb:g} MB is accepted: "
                           "leave data files, checkpoints and virtualenvs out of the submission")
    chunks = _chunks(request, service.upload_idle_s, service.upload_total_s)
    if int(declared) > limit:
        if int(declared) <= DRAIN_LIMIT:
            async for _ in chunks:
                pass
        raise too_big
    size = 0
    with dest.open("wb") as fh:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_big
            fh.write(chunk)
