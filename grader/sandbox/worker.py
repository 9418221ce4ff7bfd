"""The sandboxed worker: imports the student's module and answers calls from the grader.

It runs *inside* the sandbox with nothing but the standard library, ``_grader_wire`` (a copy of
:mod:`grader.sandbox.wire`) and whatever the student imports.  It never decides a verdict: it only runs
student code and sends plain data back.  Anything it says is treated as untrusted by the grader.

The channel is the process's original stdin/stdout; both are moved to private descriptors at start,
and the student's ``print`` output goes to stderr, which the grader captures and bounds.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import random
import sys
import traceback
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's folder off sys.path
import _grader_wire as wire  # type: ignore[import-not-found]

_OBJECTS: dict[int, Any] = {}
_NEXT_ID = [1]
_STATE: dict[str, Any] = {"module": None, "root": ""}


def _open_channel() -> tuple[Any, Any]:
    rx = os.fdopen(os.dup(0), "rb", buffering=0)
    tx = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the worker
    sys.stdout = sys.stderr
    return rx, tx


def _student_traceback(exc: BaseException) -> str:
    root = _STATE["root"]
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if root and f.filename.startswith(root)]
    lines = traceback.format_list(frames[-8:])
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)[-4000:]


def _error(kind: str, exc: BaseException | None = None, message: str = "") -> dict[str, Any]:
    if exc is not None and isinstance(exc, MemoryError):
        kind = "memory"
    if exc is not None and kind == "exception" and "can't allocate memory" in str(exc):
        kind = "memory"
    err: dict[str, Any] = {"kind": kind, "message": message or (str(exc)[:2000] if exc else "")}
    if exc is not None:
        err["type"] = type(exc).__name__
        err["traceback"] = _student_traceback(exc)
        if isinstance(exc, SyntaxError):
            err["lineno"] = exc.lineno
    return {"ok": False, "error": err}


def _seed(seed: int) -> None:
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def _hello(req: dict[str, Any]) -> dict[str, Any]:
    root = os.path.realpath(req["path"])
    _STATE["root"] = root + os.sep
    sys.path.insert(0, root)
    if req.get("cwd"):  # otherwise stay in the backend's writable scratch folder
        os.chdir(req["cwd"])
    _seed(int(req.get("seed", 0)))
    location = os.path.join(root, "solution.py")
    try:
        spec = importlib.util.spec_from_file_location("solution", location)
        if spec is None or spec.loader is None:
            return _error("import", message=f"cannot load {location}")
        module = importlib.util.module_from_spec(spec)
        sys.modules["solution"] = module
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        return _error("syntax", exc)
    except BaseException as exc:
        return _error("import", exc)
    _STATE["module"] = module
    names = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))
    return {"ok": True, "names": names, "python": sys.version.split()[0]}


def _target(req: dict[str, Any]) -> Any:
    handle = req.get("target")
    if handle is None:
        return _STATE["module"]
    if handle not in _OBJECTS:
        raise LookupError(f"object #{handle} was released or never existed")
    return _OBJECTS[handle]


def _reply_value(value: Any, want: str, what: str) -> tuple[dict[str, Any], list[bytes]]:
    if want == "handle":
        if value is None:
            message = f"{what} returned None, expected an object"
            return {"ok": False, "error": {"kind": "boundary", "message": message}}, []
        handle = _NEXT_ID[0]
        _NEXT_ID[0] += 1
        _OBJECTS[handle] = value
        return {"ok": True, "handle": handle, "type": wire.describe_type(value)}, []
    try:
        tree, blobs = wire.encode(value, path=f"the value returned by {what}")
    except wire.WireError as exc:
        return {"ok": False, "error": {"kind": "boundary", "message": str(exc)}}, []
    return {"ok": True, "value": tree}, blobs


def _signature_problem(fn: Any, args: Any, kwargs: Any, what: str) -> str | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        return f"{what}{sig} cannot be called the way the exercise specifies: {exc}"
    return None


def _call(req: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    obj = _target(req)
    name = req["name"]
    what = name if req.get("target") is None else f"{wire.describe_type(obj)}.{name}"
    if not hasattr(obj, name):
        where = "solution.py" if req.get("target") is None else f"your {wire.describe_type(obj)} object"
        return {"ok": False, "error": {"kind": "missing", "message": f"{where} has no `{name}`"}}, []
    attr = getattr(obj, name)
    if req["op"] == "get":
        return _reply_value(attr, req.get("want", "value"), what)
    args, kwargs = wire.decode(req["args"], blobs)
    if not callable(attr):
        return {"ok": False, "error": {"kind": "missing", "message": f"`{what}` is not callable"}}, []
    problem = _signature_problem(attr, args, kwargs, what)
    if problem:
        return {"ok": False, "error": {"kind": "signature", "message": problem}}, []
    if "seed" in req:
        _seed(int(req["seed"]))
    try:
        value = attr(*args, **kwargs)
    except BaseException as exc:
        return _error("exception", exc), []
    return _reply_value(value, req.get("want", "value"), what)


def serve() -> None:
    """Answer requests until the grader closes the channel."""
    rx, tx = _open_channel()
    while True:
        try:
            req, blobs = wire.read_frame(rx)
        except EOFError:
            return
        op = req.get("op")
        out: list[bytes] = []
        if op == "hello":
            reply = _hello(req)
        elif op in ("call", "get"):
            if _STATE["module"] is None:
                reply = {"ok": False, "error": {"kind": "import", "message": "solution was not imported"}}
            else:
                try:
                    reply, out = _call(req, blobs)
                except (LookupError, wire.WireError) as exc:
                    reply = {"ok": False, "error": {"kind": "protocol", "message": str(exc)}}
        elif op == "release":
            _OBJECTS.pop(req.get("target"), None)
            reply = {"ok": True}
        else:
            reply = {"ok": False, "error": {"kind": "protocol", "message": f"unknown op {op!r}"}}
        try:
            wire.write_frame(tx, dict(reply, id=req.get("id")), out)
        except BrokenPipeError:
            return


if __name__ == "__main__":
    serve()
