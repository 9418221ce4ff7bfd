"""Serve a model over HTTP with FastAPI: a declared schema, a batch endpoint, health, input limits, 4xx errors.

Follows the FastAPI tutorial (https://fastapi.tiangolo.com/tutorial/body/, .../tutorial/handling-errors/,
.../advanced/events/ for lifespan start-up) and uvicorn's "Settings" and "Server" docs
(https://www.uvicorn.org/settings/: ``uds``, ``timeout_graceful_shutdown``).

You write :class:`ModelServer`: it loads a small text classifier ONCE, builds a FastAPI app around it and
serves it with uvicorn on a Unix domain socket (the sandbox has no network; the grader's HTTP client
connects to the socket from outside the sandbox and speaks plain HTTP/1.1 to it). The grader talks to
your server only over HTTP: 16 requests at a time, bad inputs, a request in flight while you shut down.

THE MODEL (a folder, ``config["model_dir"]``; read it with json and safetensors.torch.load_file):
    model.json           {"labels": [str, ...] (L labels), "vocab": [str, ...] (V words, vocab[0] = "<unk>")}
    weights.safetensors  "embedding" float32 (V, D), "classifier.weight" float32 (L, D),
                         "classifier.bias" float32 (L,)

    tokens = re.findall(r"\\w+", text.lower())             # Unicode-aware words
    ids    = [vocab.index(t) if t in vocab else 0 ...]      # 0 (<unk>) for unknown words; [0] if no tokens
    h      = embedding[ids].mean(dim=0)                     # (D,)
    probs  = softmax(classifier.weight @ h + classifier.bias)   # (L,), float32
    label  = labels[argmax(probs)]

Build a dict word -> id once (``vocab.index`` per token is far too slow), and load the model once, when
the server starts -- never per request, never lazily on the first request: the grader replaces the
model files right after your server has started, and your answers must not change.

THE API (JSON in, JSON out; declare the bodies as pydantic models so /openapi.json documents them):
    GET  /health          200 {"status": "ok"}
    POST /predict         body {"text": str}
                          200 {"label": str, "scores": {label: probability, ... one per label}}
    POST /predict_batch   body {"texts": [str, ...]}
                          200 {"predictions": [one /predict answer per text, in order]}
    Invalid bodies -> 422 (FastAPI's validation error): a missing or non-string "text", a body that is
    not JSON or not an object, an empty text "" (at least 1 character), an empty "texts" list.
    Input limits -> 413 with {"detail": "<why>"}: a text longer than config["max_text_chars"] characters
    (characters, not bytes: "é" is one), more than config["max_batch"] texts in one batch. A text of
    exactly max_text_chars characters and a batch of exactly max_batch texts are accepted. Do not declare
    these limits in the pydantic model (that would answer 422): check them in the endpoint and raise
    ``HTTPException(413, detail=...)``. Every error is a 4xx status with a JSON body whose "detail" says
    why -- never a 200 carrying an error, never a 500 for bad input.
    A batch answer must equal the answers of /predict for each text (same label, same scores).

CONCURRENCY: requests arrive at the same time (16 in flight at once; 32 under the gpu profile). uvicorn
runs a plain ``def`` endpoint in a thread pool; an ``async def`` endpoint runs on the event loop, so
blocking work inside it stalls every other request (hand it to a thread: ``run_in_threadpool``). Keep no
per-request state in globals: each request's answer is its own. Do not limit uvicorn's concurrency
(``limit_concurrency``) below that.

LATENCY: the median time of /predict on a long text (a few hundred characters) is compared with a
reference server's on the same machine; looking words up must not scan the vocabulary.

START AND STOP:
    server = ModelServer(config)   loads the model (raise if it cannot: a missing or unreadable folder must
                                   fail here, never be served), then returns only once the server accepts
                                   connections on config["socket_path"] (poll ``uvicorn.Server.started``);
                                   run uvicorn in a background thread (``uvicorn.Server(config).run``) or
                                   a process.
    server.stop()                  graceful shutdown: stop accepting new connections, let requests already
                                   in flight finish and answer, then return (``server.should_exit = True``
                                   and join the thread; never ``force_exit``). Afterwards nothing listens on
                                   the socket. Give up after 10 s.

config (plain data):
    socket_path      str, where to listen (uvicorn.Config(app, uds=socket_path))
    model_dir        str, the model folder (read-only)
    max_text_chars   int, the longest text accepted, in characters
    max_batch        int, the most texts one /predict_batch request may carry
    device           "cpu" (or "cuda" under the gpu profile: run the model there)

Tolerances: scores are compared with the grader's own computation of the model within atol=1e-5.
"""

from __future__ import annotations

from typing import Any


class ModelServer:
    """The text classifier served over HTTP on a Unix socket, in the background."""

    def __init__(self, config: dict[str, Any]) -> None:
        """Load the model from config["model_dir"] (raise if it cannot be read), build the app, start serving;
        return once the server accepts connections."""
        raise NotImplementedError

    def stop(self) -> None:
        """Shut down gracefully: requests in flight finish and answer; then nothing listens on the socket."""
        raise NotImplementedError
