"""Reference: a FastAPI app served by uvicorn on a Unix socket, in a background thread."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from safetensors.torch import load_file

WORD = re.compile(r"\w+")


class TextClassifier:
    """Mean of word embeddings, then a linear layer and a softmax."""

    def __init__(self, model_dir: str, device: str = "cpu") -> None:
        meta = json.loads((Path(model_dir) / "model.json").read_text(encoding="utf-8"))
        weights = load_file(str(Path(model_dir) / "weights.safetensors"))
        self.labels: list[str] = list(meta["labels"])
        self.ids = {word: i for i, word in enumerate(meta["vocab"])}
        self.device = torch.device(device)
        self.embedding = weights["embedding"].to(self.device)
        self.weight = weights["classifier.weight"].to(self.device)
        self.bias = weights["classifier.bias"].to(self.device)

    def predict(self, text: str) -> dict[str, Any]:
        ids = [self.ids.get(token, 0) for token in WORD.findall(text.lower())] or [0]
        with torch.no_grad():
            h = self.embedding[torch.tensor(ids, device=self.device)].mean(dim=0)
            probs = torch.softmax(self.weight @ h + self.bias, dim=0).cpu()
        return {"label": self.labels[int(probs.argmax())],
                "scores": {label: float(p) for label, p in zip(self.labels, probs, strict=True)}}


class PredictRequest(BaseModel):
    text: str = Field(min_length=1)


class BatchRequest(BaseModel):
    texts: list[str] = Field(min_length=1)


class Prediction(BaseModel):
    label: str
    scores: dict[str, float]


class BatchPrediction(BaseModel):
    predictions: list[Prediction]


def create_app(model: TextClassifier, max_text_chars: int, max_batch: int) -> FastAPI:
    app = FastAPI(title="text classifier")

    def check_text(text: str, where: str) -> None:
        if not text:
            raise HTTPException(422, detail=f"{where} is empty: send at least one character")
        if len(text) > max_text_chars:
            raise HTTPException(413, detail=f"{where} has {len(text)} characters; the limit is {max_text_chars}")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict", response_model=Prediction)
    def predict(request: PredictRequest) -> dict[str, Any]:
        check_text(request.text, "text")
        return model.predict(request.text)

    @app.post("/predict_batch", response_model=BatchPrediction)
    def predict_batch(request: BatchRequest) -> dict[str, Any]:
        if len(request.texts) > max_batch:
            raise HTTPException(413, detail=f"{len(request.texts)} texts in one batch; the limit is {max_batch}")
        for i, text in enumerate(request.texts):
            check_text(text, f"texts[{i}]")
        return {"predictions": [model.predict(text) for text in request.texts]}

    return app


class ModelServer:
    def __init__(self, config: dict[str, Any]) -> None:
        model = TextClassifier(config["model_dir"], config.get("device", "cpu"))  # once, at start-up
        app = create_app(model, int(config["max_text_chars"]), int(config["max_batch"]))
        settings = uvicorn.Config(app, uds=config["socket_path"], log_level="warning", timeout_graceful_shutdown=10)
        self.server = uvicorn.Server(settings)
        self.thread = threading.Thread(target=self.server.run, name="model-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start listening on {config['socket_path']}")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
