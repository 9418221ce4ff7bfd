"""Recorded answers: the reference's *outputs* on the public checks' inputs, without its code.

A student pack cannot ship the reference solution, yet public checks compare with it.  When the
pack is built, the public checks run once against a recording wrapper of the reference: every
attribute read and call the checks make on ``reference`` is logged with a digest of its arguments,
and its result is stored as plain data (:mod:`grader.sandbox.wire`: JSON plus raw tensor bytes, never
pickle), or as an opaque handle when it is an object (a module instance, say).  In the pack, the
``reference`` fixture gets a replaying module that answers the same operations from that tape.

Keys hold the running check's id and a per-check counter, so a check that stops early (the student
failed it) does not shift the next one.  While recording, the global RNG state is restored after
every reference call: replay does not run the reference, so its RNG use must not steer later inputs.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grader.sandbox import wire

TAPE = "answers.json"


class AnswerMissing(AssertionError):
    """The check asked the recorded reference something that was not recorded (student-dependent input)."""


def current_check() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "").split(" (")[0]


def _canon(value: Any, depth: int = 0) -> Any:
    """A deterministic, JSON-able stand-in for an argument (for digests only)."""
    if depth > 32:
        return "..."
    if isinstance(value, (_Recorded, _Replayed)):
        return ["H", object.__getattribute__(value, "_hid")]
    if value is None or isinstance(value, (bool, int, str)):
        return [type(value).__name__, value]
    if isinstance(value, float):
        return ["float", repr(value)]
    if isinstance(value, bytes):
        return ["bytes", hashlib.sha256(value).hexdigest()]
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_canon(v, depth + 1) for v in value]]
    if isinstance(value, dict):
        return ["dict", [[_canon(k, depth + 1), _canon(v, depth + 1)] for k, v in value.items()]]
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        return ["T", str(value.dtype), list(value.shape), hashlib.sha256(raw).hexdigest()]
    text = repr(value)
    return ["obj", type(value).__qualname__, "" if " at 0x" in text else text]


def digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    blob = json.dumps([_canon(list(args)), _canon(dict(sorted(kwargs.items())))], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _handle(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class _Keys:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def key(self, kind: str, hid: str, detail: str) -> str:
        if not hid and kind == "get":  # module attributes: the same in every check
            return f"get||{detail}"
        base = f"{current_check()}|{kind}|{hid}|{detail}"
        self.counts[base] += 1
        return f"{base}|{self.counts[base]}"


# -- recording ---------------------------------------------------------------------------------
def _rng_state() -> Callable[[], None]:
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    saved = (random.getstate(), torch.get_rng_state() if torch else None, np.random.get_state() if np else None)

    def restore() -> None:
        random.setstate(saved[0])
        if torch is not None and saved[1] is not None:
            torch.set_rng_state(saved[1])
        if np is not None and saved[2] is not None:
            np.random.set_state(saved[2])
    return restore


class Recorder(_Keys):
    def __init__(self, tape: Path) -> None:
        super().__init__()
        self.tape = tape

    def _write(self, entry: dict[str, Any]) -> None:
        with self.tape.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def op(self, kind: str, hid: str, detail: str, thunk: Callable[[], Any]) -> Any:
        key = self.key(kind, hid, detail)
        restore = _rng_state()
        try:
            value = thunk()
        except Exception as exc:
            self._write({"key": key, "raise": type(exc).__name__, "message": str(exc)[:2000]})
            raise
        finally:
            restore()
        try:
            tree, blobs = wire.encode(value)
        except wire.WireError:
            new = _handle(key)
            self._write({"key": key, "handle": new})
            return _Recorded(value, new, self)
        self._write({"key": key, "value": tree, "blobs": [base64.b64encode(b).decode() for b in blobs]})
        return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, _Recorded):
        return object.__getattribute__(value, "_obj")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


class _Recorded:
    __slots__ = ("_hid", "_obj", "_rec")

    def __init__(self, obj: Any, hid: str, rec: Recorder) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_hid", hid)
        object.__setattr__(self, "_rec", rec)

    def __op(self, kind: str, detail: str, thunk: Callable[[], Any]) -> Any:
        return object.__getattribute__(self, "_rec").op(kind, object.__getattribute__(self, "_hid"), detail, thunk)

    def __getattr__(self, name: str) -> Any:
        return self.__op("get", name, lambda: getattr(object.__getattribute__(self, "_obj"), name))

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_obj"), name, _unwrap(value))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        obj = object.__getattribute__(self, "_obj")
        return self.__op("call", digest(args, kwargs), lambda: obj(*_unwrap(args), **_unwrap(kwargs)))

    def __len__(self) -> int:
        return int(self.__op("len", "", lambda: len(object.__getattribute__(self, "_obj"))))

    def __getitem__(self, item: Any) -> Any:
        return self.__op("item", digest((item,), {}), lambda: object.__getattribute__(self, "_obj")[_unwrap(item)])


def recording_getattr(reference: Path, tape: Path) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves the reference in ``reference`` and records every answer."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("grader_recorded_reference", reference / "solution.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = _Recorded(module, "", Recorder(tape))
    return lambda name: getattr(root, name)


# -- replaying ---------------------------------------------------------------------------------
class Replayer(_Keys):
    def __init__(self, tape: Path) -> None:
        super().__init__()
        self.entries: dict[str, dict[str, Any]] = {}
        for entry in json.loads(tape.read_text(encoding="utf-8")):
            self.entries[entry["key"]] = entry

    def op(self, kind: str, hid: str, detail: str) -> Any:
        key = self.key(kind, hid, detail)
        entry = self.entries.get(key)
        if entry is None:
            raise AnswerMissing(
                "this public check asked the reference about inputs that were not recorded when the pack was "
                "built: they depend on your earlier answers (probably wrong), or on a different torch version "
                "or --seed. The full check runs when your work is graded.")
        if "raise" in entry:
            exc_type = getattr(builtins, entry["raise"], None)
            if isinstance(exc_type, type) and issubclass(exc_type, Exception):
                raise exc_type(entry["message"])
            raise RuntimeError(f"{entry['raise']}: {entry['message']}")
        if "handle" in entry:
            return _Replayed(entry["handle"], self)
        return wire.decode(entry["value"], [base64.b64decode(b) for b in entry["blobs"]])


class _Replayed:
    __slots__ = ("_hid", "_rep")

    def __init__(self, hid: str, rep: Replayer) -> None:
        object.__setattr__(self, "_hid", hid)
        object.__setattr__(self, "_rep", rep)

    def __op(self, kind: str, detail: str) -> Any:
        return object.__getattribute__(self, "_rep").op(kind, object.__getattribute__(self, "_hid"), detail)

    def __getattr__(self, name: str) -> Any:
        return self.__op("get", name)

    def __setattr__(self, name: str, value: Any) -> None:
        """Writes went to the real object when the answers were recorded; nothing to do now."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__op("call", digest(args, kwargs))

    def __len__(self) -> int:
        return int(self.__op("len", ""))

    def __getitem__(self, item: Any) -> Any:
        return self.__op("item", digest((item,), {}))


def replaying_getattr(folder: Path) -> Callable[[str], Any]:
    """A module ``__getattr__`` answering from ``folder/answers.json``."""
    root = _Replayed("", Replayer(folder / TAPE))
    return lambda name: getattr(root, name)


RECORDING_MODULE = '''"""Recording wrapper around the reference (used only while a student pack is built)."""
from pathlib import Path as _Path

from grader.checks.answers import recording_getattr as _recording_getattr

__getattr__ = _recording_getattr(_Path({reference!r}), _Path({tape!r}))
'''

REPLAY_MODULE = '''"""Recorded answers of the reference solution to the public checks (no reference code is here)."""
from pathlib import Path as _Path

from grader.checks.answers import replaying_getattr as _replaying_getattr

__getattr__ = _replaying_getattr(_Path(__file__).parent)
'''
