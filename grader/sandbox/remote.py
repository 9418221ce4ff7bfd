"""The trusted side of the boundary: start a sandboxed worker and call student code through it.

Checks never import student code.  They receive a :class:`StudentProxy` (the ``student`` fixture)
whose calls travel as plain data to a worker in the sandbox; every reply is decoded into fresh
builtin objects and tensors, so nothing the student defines ever runs in this process.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from grader.models import Status
from grader.sandbox import Sandbox, Worker, wire

OUTPUT_LIMIT = 64 * 1024


class StudentError(Exception):
    """Something about the student's code that ends a check with a status other than pass/fail."""

    status = Status.ERROR

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class StudentCodeError(StudentError):
    """Student code raised an exception; ``exc_type`` is its class name."""

    def __init__(self, message: str, detail: str = "", exc_type: str = "") -> None:
        super().__init__(message, detail)
        self.exc_type = exc_type


class SubmissionLoadError(StudentError):
    """solution.py could not be imported (syntax error, import error, exception at import)."""


class BoundaryError(StudentError):
    """Student code returned something that may not cross the boundary, or broke the protocol."""


class WorkerCrash(StudentError):
    """The worker died during a call (os._exit, segfault, killed)."""


class WorkerTimeout(StudentError):
    status = Status.TIMEOUT


class WorkerOOM(StudentError):
    status = Status.OOM


class SandboxStartError(Exception):
    """The sandbox backend could not start a worker: an environment problem, never the student's."""


class _BoundedBuffer:
    """Keeps the head and tail of a stream so a flood of prints costs bounded memory."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.limit = limit

    def add(self, data: bytes) -> None:
        room = self.limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.limit:
                self.dropped += len(self.tail) - self.limit
                del self.tail[: len(self.tail) - self.limit]

    def text(self, max_chars: int = 2 * OUTPUT_LIMIT) -> str:
        """Head and tail of the stream, at most ``max_chars`` bytes of them, with a note of what was cut."""
        data = bytes(self.head) + bytes(self.tail)
        if len(data) <= max_chars and not self.dropped:
            return data.decode(errors="replace")
        half = max_chars // 2
        head, tail = (data[:half], data[-half:]) if len(data) > max_chars else (bytes(self.head), bytes(self.tail))
        cut = self.dropped + max(len(data) - max_chars, 0)
        return f"{head.decode(errors='replace')}\n... [{cut} bytes of output cut] ...\n{tail.decode(errors='replace')}"


class WorkerSession:
    """One sandboxed worker at a time for a submission; restarted when a call kills it."""

    def __init__(self, sandbox: Sandbox, start_spec: Callable[[], Any], import_timeout_s: float) -> None:
        self.sandbox = sandbox
        self._start_spec = start_spec
        self.import_timeout_s = import_timeout_s
        self.worker: Worker | None = None
        self.load_error: StudentError | None = None
        self.output = _BoundedBuffer()
        #: sandbox_start_s: starting the sandbox; worker_startup_s: until the worker had imported solution.py;
        #: worker_wait_s: how much of that the checks waited for (less, when it was started early)
        self.phases = {"sandbox_start_s": 0.0, "worker_startup_s": 0.0, "worker_wait_s": 0.0, "starts": 0.0}
        self._hello: tuple[int, float] | None = None  # a hello sent, not yet answered: (request id, when sent)
        self.isolation: dict[str, Any] | None = None
        self._frames: queue.Queue[Any] = queue.Queue()
        self._next_id = 0

    # -- lifecycle -------------------------------------------------------------------------
    def prestart(self) -> None:
        """Start the worker now and have it import solution.py while the checks are collected.

        The same worker the first call would start, only earlier: its cold start (python, torch, the student's
        imports) overlaps the runner's own.  The import's deadline runs from now; its outcome (a load error, a
        timeout) is reported by the first call, as if that call had started it.  A backend that cannot start
        here is tried again, and its error reported, by that call.
        """
        if self.worker is None and self.load_error is None:
            with contextlib.suppress(SandboxStartError):
                self._launch()

    def ensure_started(self) -> None:
        if self.load_error is not None:
            raise type(self.load_error)(self.load_error.message, self.load_error.detail)
        if self.worker is None:
            self._launch()
        if self._hello is not None:
            self._await_hello(*self._hello)

    def _launch(self) -> None:
        """Start a worker and send it ``hello`` (import solution.py) without waiting for the answer."""
        t0 = time.perf_counter()
        try:
            worker = self.sandbox.start(self._start_spec())
        except Exception as exc:
            raise SandboxStartError(f"the {self.sandbox.name} sandbox could not start a worker: {exc}") from exc
        t1 = time.perf_counter()
        self.worker = worker
        self.isolation = worker.isolation.as_dict()
        self._frames = queue.Queue()
        threading.Thread(target=self._read_frames, args=(worker, self._frames), daemon=True).start()
        threading.Thread(target=self._read_output, args=(worker,), daemon=True).start()
        self.phases["sandbox_start_s"] += t1 - t0
        self.phases["starts"] += 1
        self._hello = (self._send({"op": "hello", "path": worker.submission_path}, []), t1)

    def _await_hello(self, req_id: int, sent: float) -> None:
        self._hello = None
        waited = time.perf_counter()
        try:
            reply = self._receive(req_id, sent + self.import_timeout_s - waited, self.import_timeout_s,
                                  "importing solution.py")
        except StudentError as exc:
            # a worker that died before answering often said why on stderr (a missing interpreter...)
            detail = exc.detail or self.output.text(4000)
            self.load_error = SubmissionLoadError(f"solution.py could not be loaded: {exc.message}", detail)
            if isinstance(exc, (WorkerTimeout, WorkerOOM)):
                self.load_error = type(exc)(f"importing solution.py: {exc.message}", detail)
            raise self.load_error from None
        finally:
            done = time.perf_counter()
            self.phases["worker_startup_s"] += done - sent
            self.phases["worker_wait_s"] += done - waited
        if not reply.get("ok"):
            self.kill()
            err = reply.get("error", {})
            self.load_error = _load_error(err)
            raise self.load_error

    def kill(self) -> None:
        self._hello = None
        if self.worker is not None:
            self.worker.kill()
            self.worker = None

    close = kill

    def _read_frames(self, worker: Worker, frames: queue.Queue[Any]) -> None:
        try:
            while True:
                frames.put(wire.read_frame(worker.stdout))
        except EOFError:
            frames.put(EOFError())
        except (wire.WireError, OSError, ValueError) as exc:
            frames.put(exc)

    def _read_output(self, worker: Worker) -> None:
        try:
            while chunk := worker.stderr.read1(65536) if hasattr(worker.stderr, "read1") else worker.stderr.read(65536):
                self.output.add(chunk)
        except (OSError, ValueError):
            return
        with contextlib.suppress(OSError):  # this thread is the stream's only reader: at its end, close it
            worker.stderr.close()

    # -- calls -----------------------------------------------------------------------------
    def _roundtrip(self, req: dict[str, Any], blobs: list[bytes], timeout: float, what: str) -> dict[str, Any]:
        return self._receive(self._send(req, blobs), timeout, timeout, what)

    def _send(self, req: dict[str, Any], blobs: list[bytes]) -> int:
        worker = self.worker
        assert worker is not None
        self._next_id += 1
        with contextlib.suppress(OSError):  # a dead worker: the reader thread reports how it died
            wire.write_frame(worker.stdin, dict(req, id=self._next_id), blobs)
        return self._next_id

    def _receive(self, req_id: int, remaining: float, timeout: float, what: str) -> dict[str, Any]:
        """The reply to request ``req_id`` within ``remaining`` seconds (of a ``timeout`` given to it)."""
        try:
            item = self._frames.get(timeout=max(remaining, 0.01))
        except queue.Empty:
            self.kill()
            raise WorkerTimeout(f"{what} did not finish within {timeout:.0f} s") from None
        if isinstance(item, BaseException):
            return self._died(item, what)
        header, out_blobs = item
        if header.get("id") != req_id:
            self.kill()
            raise BoundaryError(f"the worker's reply to {what} was garbled (was something written to its channel?)")
        header["_blobs"] = out_blobs
        return header

    def _died(self, item: BaseException, what: str) -> dict[str, Any]:
        worker = self.worker
        assert worker is not None
        if worker.wait(timeout=5) is None:
            self.kill()
        else:
            worker.kill()
        info = worker.exit_info()
        self.worker = None
        if isinstance(item, wire.WireError):
            raise BoundaryError(f"{what}: the reply could not be read ({item})")
        if info.oom_killed:
            raise WorkerOOM(f"{what}: the worker {info.describe()}")
        if info.returncode is not None and info.returncode == -9:
            raise WorkerCrash(
                f"{what}: the worker was killed (SIGKILL): it ran out of memory or CPU time, or killed itself"
            )
        raise WorkerCrash(f"{what}: the worker {info.describe()} (does your code call exit, os._exit or crash?)")

    def request(self, req: dict[str, Any], args: Any, timeout: float, what: str) -> dict[str, Any]:
        self.ensure_started()
        tree, blobs = wire.encode(args, path="argument")
        reply = self._roundtrip(dict(req, args=tree), blobs, timeout, what)
        if not reply.get("ok"):
            raise _call_error(reply.get("error", {}), what)
        return reply


def _load_error(err: dict[str, Any]) -> StudentError:
    kind = err.get("kind")
    message = str(err.get("message", ""))
    detail = str(err.get("traceback", ""))
    if kind == "syntax":
        return SubmissionLoadError(f"solution.py has a syntax error on line {err.get('lineno')}: {message}", detail)
    if kind == "memory":
        return WorkerOOM(f"importing solution.py ran out of memory: {message}", detail)
    exc_type = err.get("type", "Exception")
    return SubmissionLoadError(f"importing solution.py raised {exc_type}: {message}", detail)


def _call_error(err: dict[str, Any], what: str) -> StudentError:
    kind = err.get("kind")
    message = str(err.get("message", ""))[:2000]
    detail = str(err.get("traceback", ""))
    if kind == "memory":
        return WorkerOOM(f"{what} ran out of memory ({message})", detail)
    if kind == "exception":
        exc_type = str(err.get("type", "Exception"))
        return StudentCodeError(f"{what} raised {exc_type}: {message}", detail, exc_type=exc_type)
    if kind in ("missing", "signature"):
        return StudentCodeError(message, detail, exc_type=kind)
    return BoundaryError(message or f"{what} failed ({kind})", detail)


class RemoteObject:
    """A student object living in the sandbox; methods are called by name and return plain data."""

    def __init__(self, session: StudentProxy, handle: int, type_name: str, label: str) -> None:
        self._proxy = session
        self._handle = handle
        self.type_name = type_name
        self._label = label

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._proxy._invoke(self._handle, method, args, kwargs, "value", f"{self._label}.{method}()")

    def handle(self, method: str, *args: Any, **kwargs: Any) -> RemoteObject:
        """Call ``method`` and keep its result in the sandbox as another object."""
        return self._proxy._invoke(self._handle, method, args, kwargs, "handle", f"{self._label}.{method}()")

    def get(self, attribute: str) -> Any:
        """Read an attribute's value (plain data only)."""
        return self._proxy._get(self._handle, attribute, f"{self._label}.{attribute}")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *a, **k: self.call(name, *a, **k)

    def __repr__(self) -> str:
        return f"<student {self.type_name} #{self._handle}>"


class StudentProxy:
    """What checks get as ``student``: ``student.fn(*args)`` calls ``solution.fn`` in the sandbox."""

    def __init__(self, session: WorkerSession, deadline: float, seed: int = 0) -> None:
        self._session = session
        self._deadline = deadline
        self._seed = seed
        self._calls = 0

    def _timeout(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise WorkerTimeout("this check's time budget was used up")
        return remaining

    def _invoke(self, target: int | None, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                want: str, what: str) -> Any:
        self._calls += 1
        req = {"op": "call", "target": target, "name": name, "want": want, "seed": self._seed + self._calls}
        reply = self._session.request(req, (tuple(args), dict(kwargs)), self._timeout(), what)
        if want == "handle":
            return RemoteObject(self, int(reply["handle"]), str(reply.get("type", "object")), name)
        try:
            return wire.decode(reply.get("value"), reply["_blobs"])
        except wire.WireError as exc:
            raise BoundaryError(f"{what} returned data that could not be read: {exc}") from None

    def _get(self, target: int | None, name: str, what: str) -> Any:
        reply = self._session.request({"op": "get", "target": target, "name": name, "want": "value"}, ((), {}),
                                      self._timeout(), what)
        return wire.decode(reply.get("value"), reply["_blobs"])

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``solution.<name>(*args, **kwargs)``; the result must be plain data."""
        return self._invoke(None, name, args, kwargs, "value", f"{name}()")

    def new(self, name: str, *args: Any, **kwargs: Any) -> RemoteObject:
        """Call ``solution.<name>`` (a class or factory) and keep the result in the sandbox."""
        return self._invoke(None, name, args, kwargs, "handle", f"{name}()")

    def get(self, name: str) -> Any:
        """Read a module-level value of solution.py (plain data only)."""
        return self._get(None, name, name)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *a, **k: self.call(name, *a, **k)
