"""The trusted side of the serving checks: an HTTP/1.1 client over a Unix socket, and the model it serves.

Requests never pass through student code on this side: the standard library's http.client speaks to the
socket the student's server listens on, from the grader's own process.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

WORD = re.compile(r"\w+")
SCORE_ATOL = 1e-5


@dataclass
class Reply:
    """One HTTP answer: status, parsed JSON (None when the body is not JSON), raw text, seconds taken."""

    status: int
    body: Any
    text: str
    seconds: float

    def describe(self) -> str:
        return f"{self.status} {self.text[:200]!r}"


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX socket."""

    def __init__(self, socket_path: str, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def _reply(resp: http.client.HTTPResponse, started: float) -> Reply:
    raw = resp.read()
    text = raw.decode("utf-8", errors="replace")
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    return Reply(resp.status, body, text, time.perf_counter() - started)


def call(socket_path: str, method: str, url: str, payload: Any = None, raw: bytes | None = None,
         content_type: str = "application/json", timeout: float = 10.0) -> Reply:
    """One request on a fresh connection; ``payload`` is sent as JSON, ``raw`` as given."""
    conn = UnixHTTPConnection(socket_path, timeout)
    data = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
    headers = {"Content-Type": content_type} if data is not None else {}
    started = time.perf_counter()
    try:
        conn.request(method, url, body=data, headers=headers)
        return _reply(conn.getresponse(), started)
    except (OSError, http.client.HTTPException) as exc:
        raise AssertionError(no_answer(f"{method} {url}", exc)) from None
    finally:
        conn.close()


def no_answer(what: str, exc: BaseException) -> str:
    return (f"{what}: the server did not answer ({type(exc).__name__}: {exc}): is it listening on "
            "config['socket_path'], and did ModelServer() wait until it accepts connections before returning?")


class HeldRequest:
    """A POST whose last body byte is held back: the server has it in flight until :meth:`finish`."""

    def __init__(self, socket_path: str, url: str, payload: Any, timeout: float = 15.0) -> None:
        body = json.dumps(payload).encode()
        head = (f"POST {url} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        self.what = f"POST {url}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(socket_path)
            self.sock.sendall(head + body[:-1])
        except OSError as exc:
            self.sock.close()
            raise AssertionError(no_answer(self.what, exc)) from None
        self.last = body[-1:]

    def finish(self, advice: str = "") -> Reply:
        """Send the last byte and read the answer (one the server sent early, a 503 say, is read too)."""
        started = time.perf_counter()
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.sock.sendall(self.last)
            resp = http.client.HTTPResponse(self.sock)
            resp.begin()
            return _reply(resp, started)
        except (OSError, http.client.HTTPException) as exc:
            what = f"{self.what} (held in flight)"
            if advice:
                raise AssertionError(f"{what} got no answer ({type(exc).__name__}: {exc}): {advice}") from None
            raise AssertionError(no_answer(what, exc)) from None
        finally:
            self.sock.close()


def wait_refused(socket_path: str) -> bool:
    """True when nothing accepts connections on ``socket_path`` (or the socket file is gone)."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        sock.connect(socket_path)
    except OSError:
        return True
    sock.close()
    return False


# -- the model --------------------------------------------------------------------------------------------


class TrustedModel:
    """The classifier the stub specifies, computed here in float64 from the files handed to the student."""

    def __init__(self, meta: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
        self.labels = list(meta["labels"])
        self.ids = {w: i for i, w in enumerate(meta["vocab"])}
        self.embedding = weights["embedding"].double()
        self.weight = weights["classifier.weight"].double()
        self.bias = weights["classifier.bias"].double()

    def scores(self, text: str) -> dict[str, float]:
        ids = [self.ids.get(t, 0) for t in WORD.findall(text.lower())] or [0]
        probs = torch.softmax(self.weight @ self.embedding[ids].mean(0) + self.bias, 0)
        return {label: float(p) for label, p in zip(self.labels, probs, strict=True)}

    def label(self, text: str) -> str:
        scores = self.scores(text)
        return max(self.labels, key=lambda label: scores[label])


def make_model(seed: int, vocab_size: int, dim: int, labels: list[str], words: list[str]
               ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """model.json and weights for a random classifier whose vocabulary starts with ``words``."""
    gen = torch.Generator().manual_seed(seed)
    filler = [f"w{i:06d}" for i in range(vocab_size - len(words) - 1)]
    meta = {"labels": labels, "vocab": ["<unk>", *words, *filler]}
    weights = {
        "embedding": torch.randn(vocab_size, dim, generator=gen),
        "classifier.weight": torch.randn(len(labels), dim, generator=gen) * 2.0,
        "classifier.bias": torch.randn(len(labels), generator=gen) * 0.1,
    }
    return meta, weights


def write_model(folder: Path, meta: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
    """Write (or replace, through new files: a reader that mapped the old ones keeps them) a model folder."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True, mode=0o755)
    for name, write in (("model.json", lambda p: p.write_text(json.dumps(meta), encoding="utf-8")),
                        ("weights.safetensors", lambda p: save_file(weights, str(p)))):
        tmp = folder / f".{name}.new"
        write(tmp)
        tmp.chmod(0o644)
        tmp.replace(folder / name)


# -- what a right answer looks like ----------------------------------------------------------------------


def expect_prediction(reply, model, text, what):
    """Fail with advice unless ``reply`` is a 200 answer equal to the model's prediction for ``text``."""
    if reply.status != 200:
        raise AssertionError(f"{what} answered {reply.describe()}, expected 200")
    return expect_answer(reply.body, model, text, what)


def expect_answer(body, model, text, what):
    if not isinstance(body, dict) or set(body) != {"label", "scores"}:
        raise AssertionError(f"{what} answered {body!r:.200}: expected a JSON object with exactly the keys "
                             "'label' and 'scores' (declare it as a pydantic response_model)")
    scores = body["scores"]
    if not isinstance(scores, dict) or sorted(scores) != sorted(model.labels):
        raise AssertionError(f"{what}: 'scores' should map each label {model.labels} to its probability, got "
                             f"{scores!r:.200}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores.values()):
        raise AssertionError(f"{what}: every score should be a number, got {scores!r:.200}")
    want = model.scores(text)
    total = sum(scores.values())
    if abs(total - 1) > 1e-4:
        raise AssertionError(f"{what}: the scores sum to {total:.4g}, not 1: return softmax probabilities, not "
                             "logits")
    worst = max(want, key=lambda k: abs(scores[k] - want[k]))
    if abs(scores[worst] - want[worst]) > SCORE_ATOL:
        raise AssertionError(
            f"{what}: score of {worst!r} is {scores[worst]:.6f}, the model gives {want[worst]:.6f}: tokens are "
            "re.findall(r'\\w+', text.lower()), unknown words map to id 0, h = mean of their embeddings, "
            "probs = softmax(W h + b)")
    if body["label"] != model.label(text):
        raise AssertionError(f"{what}: label {body['label']!r}, expected {model.label(text)!r} (the label with "
                             "the highest probability)")
    return body


def same_answer(a: Any, b: Any) -> bool:
    """Two answers agree: the same label and every score within SCORE_ATOL (a batched forward may round
    differently from one text at a time in the last bits of float32)."""
    if not (isinstance(a, dict) and isinstance(b, dict) and a.get("label") == b.get("label")):
        return False
    sa, sb = a.get("scores"), b.get("scores")
    if not (isinstance(sa, dict) and isinstance(sb, dict) and sorted(sa) == sorted(sb)):
        return False
    return all(isinstance(sa[k], (int, float)) and isinstance(sb[k], (int, float))
               and abs(sa[k] - sb[k]) <= SCORE_ATOL for k in sa)


def expect_error(reply, status, what, advice):
    if reply.status != status:
        raise AssertionError(f"{what} answered {reply.describe()}, expected {status}: {advice}")
    if not isinstance(reply.body, dict) or not reply.body.get("detail"):
        raise AssertionError(f"{what} answered {status} without a JSON body whose 'detail' says why: "
                             "raise HTTPException(status, detail='...')")
