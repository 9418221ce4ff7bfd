"""Hidden checks: Unicode inputs, 16 requests in flight at once, load-once, latency, graceful shutdown, no 500s."""

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    HeldRequest,
    TrustedModel,
    call,
    expect_prediction,
    make_model,
    same_answer,
    wait_refused,
    write_model,
)

from grader.testing import StudentCodeError, StudentError, record


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_unicode_and_edge_texts(served, model_files):
    """Capitals, accents, full-width letters, a ligature, digits, emoji and punctuation-only texts"""
    texts = ["CAFÉ Naïve STRASSE straße", "ＦＵＬＬ width", "ﬁne ﬁlm", "über-good 2024!!", "😀 good 😀", "...",
             "\t\n", "Über ÜBER über", "x" * 3 + " " + "good" * 2]
    for text in texts:
        expect_prediction(served.post("/predict", {"text": text}), model_files.model, text,
                          f"POST /predict {{'text': {text!r}}}")


@pytest.mark.points(2)
@pytest.mark.timeout_s(90)
def test_concurrent_requests_match_sequential(served, model_files, targets):
    """16 requests in flight at once all answer 200, each with its own text's answer"""
    count = int(targets.get("concurrent_requests", 16))
    words = ["good", "bad", "awful", "great", "boring", "film", "café", "not"]
    texts = [" ".join(words[(i + j) % len(words)] for j in range(1 + i % 4)) for i in range(count)]
    sequential = {t: expect_prediction(served.post("/predict", {"text": t}), model_files.model, t,
                                       f"POST /predict {{'text': {t!r}}}") for t in set(texts)}
    held = [HeldRequest(served.socket, "/predict", {"text": t}) for t in texts]  # all in flight before any answers
    replies: list = [None] * count
    errors: list = []

    def finish(i: int) -> None:
        try:
            replies[i] = held[i].finish()
        except AssertionError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise AssertionError(f"{len(errors)} of {count} concurrent requests got no answer: {errors[0]}")
    bad = [(i, r) for i, r in enumerate(replies) if r is None or r.status != 200]
    if bad:
        i, r = bad[0]
        raise AssertionError(f"{len(bad)} of {count} concurrent requests failed, e.g. {texts[i]!r} answered "
                             f"{r.describe() if r else 'nothing'}: serve at least {count} requests at once (no "
                             "limit_concurrency below that)")
    for i, (text, reply) in enumerate(zip(texts, replies, strict=True)):
        if not same_answer(reply.body, sequential[text]):  # the same request answered right on its own just before
            raise AssertionError(f"concurrent request {i} ({text!r}) answered {reply.body!r:.150}, alone it "
                                 f"answers {sequential[text]!r:.150}: requests in flight together must not share "
                                 "state (a global buffer, a shared batch): each answer is its own request's")


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_model_loaded_once_at_startup(start, job_files, seed, model_files):
    """The model is read when the server starts: replacing its files afterwards changes no answer"""
    folder = Path(job_files.root) / "in" / "model-swap"
    write_model(folder, model_files.meta, model_files.weights)
    server = start(model_dir=job_files.path("model-swap"))
    other_meta, other_weights = make_model(seed + 1, len(model_files.meta["vocab"]), model_files.weights[
        "embedding"].shape[1], list(reversed(model_files.meta["labels"])), model_files.meta["vocab"][1:24])
    write_model(folder, other_meta, other_weights)  # new files: the started server must not read them
    other = TrustedModel(other_meta, other_weights)
    for text in ("the film was good", "awful plot", "café"):
        reply = server.post("/predict", {"text": text})
        if reply.status == 200 and isinstance(reply.body, dict) and reply.body.get("scores") == pytest.approx(
                other.scores(text), abs=1e-5):
            raise AssertionError("the server answered with the model files written AFTER it started: load the model "
                                 "once, in ModelServer() (or the app's lifespan start-up), before serving; never per "
                                 "request or lazily on the first request")
        expect_prediction(reply, model_files.model, text, f"POST /predict {{'text': {text!r}}}")


_SERVE_REFERENCE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("reference_solution", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
server = module.ModelServer(json.loads(sys.argv[2]))
print("ready", flush=True)
sys.stdin.read()
server.stop()
"""


@contextlib.contextmanager
def reference_server(reference, config: dict) -> Iterator[str]:
    """The reference's server in a process of its own, so its requests cross processes as the student's do.

    (Served from a thread of this process, it would answer without a process wake-up, which on a loaded
    machine is most of a request's time: the comparison would not be like for like.)
    """
    child = subprocess.Popen([sys.executable, "-c", _SERVE_REFERENCE, reference.__file__, json.dumps(config)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout is None or child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the reference server did not start (exit code {child.wait(30)})")
        yield config["socket_path"]
    finally:
        with contextlib.suppress(OSError):
            if child.stdin is not None:
                child.stdin.close()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@pytest.mark.points(1)
@pytest.mark.timeout_s(120)
@pytest.mark.visibility("message-only")
def test_latency_within_bound(start, reference, model_files, limits, targets):
    """Median /predict latency within 4x the reference server's on this machine, plus 10 ms"""
    factor, slack_s = float(targets.get("latency_factor", 4.0)), float(targets.get("latency_slack_ms", 10)) / 1000
    vocab = model_files.meta["vocab"]  # a long review of common, unknown and rare words: a per-token list scan shows
    text = " ".join(f"the film was good but {vocab[-1 - i]} critics said the plot was boring" for i in range(12))
    long_texts = {**limits, "max_text_chars": len(text) + 10}
    served = start(max_text_chars=long_texts["max_text_chars"])
    config = {"socket_path": str(Path(tempfile.mkdtemp(prefix="ref-srv-")) / "ref.sock"),
              "model_dir": str(model_files.host_dir), **long_texts, "device": "cpu"}
    with reference_server(reference, config) as ref_socket:
        for _ in range(3):  # warm up both; a fast answer only counts when it is the right one
            expect_prediction(served.post("/predict", {"text": text}), model_files.model, text,
                              f"POST /predict with a text of {len(text)} characters (limit {len(text) + 10})")
            call(ref_socket, "POST", "/predict", {"text": text})
        mine, theirs = [], []
        for _ in range(25):  # alternate, so both see the same machine load
            mine.append(call(served.socket, "POST", "/predict", {"text": text}).seconds)
            theirs.append(call(ref_socket, "POST", "/predict", {"text": text}).seconds)
    got, base = statistics.median(mine), statistics.median(theirs)
    record("latency_ms", {"student_median": round(got * 1000, 3), "reference_median": round(base * 1000, 3)})
    bound = factor * base + slack_s
    if got > bound:
        raise AssertionError(f"median /predict latency {got * 1000:.1f} ms, over the bound {bound * 1000:.1f} ms "
                             f"({factor:g} x the reference's {base * 1000:.1f} ms + {slack_s * 1000:.0f} ms): is the "
                             "model loaded or the vocabulary indexed per request?")


@pytest.mark.points(2)
@pytest.mark.timeout_s(60)
def test_graceful_shutdown(start, model_files):
    """stop() lets a request in flight finish and answer; afterwards nothing listens on the socket"""
    server = start()
    text = "a great film"
    held = HeldRequest(server.socket, "/predict", {"text": text})
    outcome: dict = {}

    def stop() -> None:
        try:
            server.remote.stop()
            outcome["stopped"] = time.monotonic()
        except StudentError as exc:  # reported below, in this check's own thread
            outcome["error"] = exc

    stopper = threading.Thread(target=stop)
    stopper.start()
    deadline = time.monotonic() + 10  # until the server has begun to shut down (it refuses new connections)
    while time.monotonic() < deadline and stopper.is_alive() and not wait_refused(server.socket):
        time.sleep(0.02)
    stopper.join(1.0)  # a graceful stop() is still waiting for the held request; a forced one has returned
    server.stopped = True
    reply = held.finish(advice="shut down gracefully: set server.should_exit = True (never force_exit) and wait for "
                               "the thread, so requests already in flight finish and answer")
    stopper.join(30)
    if "error" in outcome:
        raise outcome["error"]
    if reply.status != 200:
        raise AssertionError(f"the request in flight when stop() was called answered {reply.describe()}: shut down "
                             "gracefully (server.should_exit = True, never force_exit), so it finishes normally")
    if stopper.is_alive():
        raise AssertionError("stop() did not return within 30 s of the last request finishing: set "
                             "server.should_exit = True and join the server's thread")
    expect_prediction(reply, model_files.model, text, "a request in flight when stop() was called")
    if not wait_refused(server.socket):
        raise AssertionError("after stop() returned, the socket still accepts connections: stop the server "
                             "(server.should_exit = True, then join its thread)")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_errors_never_500(served):
    """Odd requests get a 4xx with a JSON reason, never a 500 or a 200"""
    cases = [
        ("POST", "/predict", None, b"", "application/json", "an empty body"),
        ("POST", "/predict", None, '{"text": "caf\udce9"}'.encode("utf-8", "surrogateescape"), "application/json",
         "invalid UTF-8"),
        ("POST", "/predict", {"text": {"nested": ["x"]}}, None, "application/json", "an object as text"),
        ("POST", "/predict", None, b"text=good", "application/x-www-form-urlencoded", "a form body"),
        ("POST", "/predict_batch", {"texts": None}, None, "application/json", "null texts"),
        ("GET", "/predict", None, None, "application/json", "GET on a POST endpoint"),
        ("POST", "/no-such-endpoint", {"text": "good"}, None, "application/json", "an unknown path"),
    ]
    for method, url, payload, raw, ctype, why in cases:
        reply = call(served.socket, method, url, payload, raw=raw, content_type=ctype)
        if not 400 <= reply.status < 500:
            raise AssertionError(f"{method} {url} with {why} answered {reply.describe()}: bad requests get a 4xx "
                                 "(let FastAPI validate a pydantic body: 422), never a 500 or a 200")
        if not isinstance(reply.body, dict) or not reply.body.get("detail"):
            raise AssertionError(f"{method} {url} with {why} answered {reply.status} without a JSON 'detail'")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_unreadable_model_raises(start, student, job_files, socket_dirs):
    """ModelServer() raises when the model folder holds no model, instead of serving without one"""
    working = start()
    if working.get("/health").status != 200:  # a server that cannot start at all proves nothing here
        raise AssertionError("GET /health does not answer 200 on a server started with a good model")
    empty = Path(job_files.root) / "in" / "no-model"
    empty.mkdir(mode=0o755, exist_ok=True)
    config = {**working.config, "socket_path": f"{socket_dirs[1]}/no-model.sock",
              "model_dir": job_files.path("no-model")}
    with pytest.raises(StudentCodeError):
        student.new("ModelServer", config).stop()
        pytest.fail("ModelServer() started although model_dir holds no model: load the model before serving, and "
                    "let the error (FileNotFoundError...) propagate")
