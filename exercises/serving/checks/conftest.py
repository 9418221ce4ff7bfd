"""Fixtures for the serving checks (trusted side).

The model is built here from the grading seed and handed to the student read-only (``job_files``). The
student's server listens on a Unix socket in the job's shared folder, which both sides reach; every
request comes from this process over that socket (``helpers.call``), never through student code.
Each check starts a fresh server (``served``) and stops it afterwards.

Why a Unix socket in ``job_files.shared_dir()`` and not TCP on loopback: the sandbox has a network
namespace of its own (bwrap ``--unshare-net``, docker ``--network none``), so its 127.0.0.1 is not this
process's and no port inside it can be reached from here; a path-named Unix socket is found through the
file system, which both sides share (a bind mount of the job folder), whatever their network namespaces.
It also needs no port: jobs graded side by side cannot collide on one, and nothing outside the job's
folder can reach the server.  Talking to the student's server through a client inside the sandbox would
mean trusting student-controlled code with the answers, so the HTTP client is this process's own
(http.client, ``helpers.UnixHTTPConnection``).  uvicorn makes the socket file mode 0o666, so it answers
this process whichever uid the sandbox runs the student as.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import Reply, TrustedModel, call, make_model, write_model

LABELS = ["negative", "neutral", "positive"]
WORDS = ["the", "a", "film", "movie", "was", "is", "good", "great", "bad", "awful", "boring", "plot", "actors",
         "not", "very", "café", "naïve", "straße", "ｆｕｌｌ", "ﬁne", "über", "2024", "x"]
VOCAB_SIZE = 100_000  # big enough that loading the model takes longer than answering a request
DIM = 64
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 107 bytes
_SERVERS = itertools.count()


@pytest.fixture(scope="session")
def model_files(seed: int, job_files: Any) -> SimpleNamespace:
    """The served model: ``model`` (trusted computation), ``student_dir`` (where the server reads it), ``host_dir``."""
    meta, weights = make_model(seed, VOCAB_SIZE, DIM, LABELS, WORDS)
    host_dir = Path(job_files.root) / "in" / "model"
    write_model(host_dir, meta, weights)
    return SimpleNamespace(model=TrustedModel(meta, weights), student_dir=job_files.path("model"), host_dir=host_dir,
                           meta=meta, weights=weights)


@pytest.fixture(scope="session")
def socket_dirs(job_files: Any) -> tuple[str, str]:
    """(folder this process connects in, the same folder as the student's code sees it), both short.

    A Unix socket path must fit in 107 bytes; the job folder can be deeper than that (pytest's tmp_path),
    so a short link stands in for it where needed (the process sandbox shares this host's /tmp).
    """
    host, inside = job_files.shared_dir()
    short = host
    if len(str(host)) > MAX_SOCKET_PATH - 20:
        link_dir = Path(tempfile.mkdtemp(prefix="srv-"))
        link_dir.chmod(0o755)
        short = link_dir / "s"
        short.symlink_to(host)
    if len(inside) > MAX_SOCKET_PATH - 20:  # an unisolated sandbox sees the host's paths
        inside = str(short)
    return str(short), inside


@pytest.fixture(scope="session")
def limits(seed: int) -> dict[str, int]:
    """Limits that vary with the seed, so no constant in a solution happens to match them."""
    return {"max_text_chars": 90 + seed % 37, "max_batch": 8 + seed % 5}


class Started(SimpleNamespace):
    """A student server: ``remote`` (its ModelServer in the sandbox) and ``socket`` (the host-side path)."""

    remote: Any
    socket: str

    def get(self, url: str, **kw: Any) -> Reply:
        return call(self.socket, "GET", url, **kw)

    def post(self, url: str, payload: Any = None, **kw: Any) -> Reply:
        return call(self.socket, "POST", url, payload, **kw)


@pytest.fixture
def start(student: Any, socket_dirs: tuple[str, str], model_files: Any, limits: dict[str, int], targets: Any):
    """``start(**overrides)`` starts a student ModelServer on a fresh socket; all are stopped after the check."""
    started: list[Started] = []

    def _start(**overrides: Any) -> Started:
        name = f"api-{os.getpid()}-{next(_SERVERS)}.sock"
        config = {"socket_path": f"{socket_dirs[1]}/{name}", "model_dir": model_files.student_dir,
                  "device": str(targets.get("device", "cpu")), **limits, **overrides}
        server = Started(remote=student.new("ModelServer", config), socket=f"{socket_dirs[0]}/{name}",
                         config=config)
        started.append(server)
        return server

    yield _start
    for server in started:
        if not getattr(server, "stopped", False):
            server.remote.stop()


@pytest.fixture
def served(start: Any) -> Started:
    """A student server started with the default configuration."""
    return start()
