# right: uvicorn runs in a forked child process (uvicorn.run, which handles SIGTERM itself) instead of a thread; the
# model is loaded in the parent before the fork, readiness is polled by connecting to the socket, and stop() sends
# SIGTERM and waits for the child; the model is numpy arrays, and limits are checked in a dependency
"""A FastAPI app served by uvicorn in a child process on a Unix socket."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field
from safetensors.numpy import load_file


class Model:
    def __init__(self, folder: str) -> None:
        meta = json.loads(Path(folder, "model.json").read_text(encoding="utf-8"))
        arrays = load_file(os.path.join(folder, "weights.safetensors"))
        self.labels = meta["labels"]
        self.lookup = {word: n for n, word in enumerate(meta["vocab"])}
        self.emb = arrays["embedding"].astype(np.float64)
        self.w = arrays["classifier.weight"].astype(np.float64)
        self.b = arrays["classifier.bias"].astype(np.float64)

    def __call__(self, text: str) -> dict[str, Any]:
        ids = [self.lookup.get(word, 0) for word in re.findall(r"\w+", text.lower())] or [0]
        z = self.w @ self.emb[ids].mean(axis=0) + self.b
        e = np.exp(z - z.max())
        p = e / e.sum()
        scores = {k: float(v) for k, v in zip(self.labels, p, strict=True)}
        return {"label": self.labels[int(np.argmax(p))], "scores": scores}


class TextIn(BaseModel):
    text: str = Field(..., min_length=1)


class TextsIn(BaseModel):
    texts: list[str] = Field(..., min_length=1)


class Out(BaseModel):
    label: str
    scores: dict[str, float]


class OutMany(BaseModel):
    predictions: list[Out]


def make_app(model: Model, max_chars: int, max_batch: int) -> FastAPI:
    app = FastAPI()

    def one_text(body: TextIn) -> str:
        if len(body.text) > max_chars:
            raise HTTPException(413, f"text is longer than {max_chars} characters")
        return body.text

    def some_texts(body: TextsIn) -> list[str]:
        if len(body.texts) > max_batch:
            raise HTTPException(413, f"more than {max_batch} texts")
        if any(not t for t in body.texts):
            raise HTTPException(422, "every text needs at least one character")
        if any(len(t) > max_chars for t in body.texts):
            raise HTTPException(413, f"a text is longer than {max_chars} characters")
        return body.texts

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict", response_model=Out)
    def predict(text: str = Depends(one_text)) -> dict[str, Any]:
        return model(text)

    @app.post("/predict_batch", response_model=OutMany)
    def predict_batch(texts: list[str] = Depends(some_texts)) -> dict[str, Any]:  # noqa: B008
        return {"predictions": [model(t) for t in texts]}

    return app


def _serve(app: FastAPI, path: str) -> None:
    uvicorn.run(app, uds=path, log_level="error", timeout_graceful_shutdown=10)


def _accepts(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


class ModelServer:
    def __init__(self, config: dict[str, Any]) -> None:
        app = make_app(Model(config["model_dir"]), config["max_text_chars"], config["max_batch"])
        self.path = config["socket_path"]
        self.child = multiprocessing.get_context("fork").Process(target=_serve, args=(app, self.path), daemon=True)
        self.child.start()
        limit = time.monotonic() + 30
        while not _accepts(self.path):
            if not self.child.is_alive() or time.monotonic() > limit:
                self.child.kill()
                raise RuntimeError("the server process did not come up")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.child.pid is not None and self.child.is_alive():
            os.kill(self.child.pid, signal.SIGTERM)  # uvicorn's own graceful shutdown
        self.child.join(15)
        if self.child.is_alive():
            self.child.kill()
            self.child.join()
