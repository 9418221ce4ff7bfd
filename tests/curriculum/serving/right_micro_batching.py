# right: requests arriving together are micro-batched: async endpoints queue their texts, one task started in the
# app's lifespan runs a single vectorised forward (F.embedding_bag, mode="mean") per batch in a worker thread and
# hands each request its own row; /predict_batch runs the same batched forward
"""A FastAPI app that batches concurrent requests dynamically, served by uvicorn on a Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import torch
import torch.nn.functional as F
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, StringConstraints, conlist
from safetensors.torch import load_file

TOKEN = re.compile(r"\w+")
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class BagClassifier:
    def __init__(self, folder: Path, device: str) -> None:
        meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        tensors = load_file(str(folder / "weights.safetensors"), device=device)
        self.labels = list(meta["labels"])
        self.index = dict(zip(meta["vocab"], range(len(meta["vocab"])), strict=True))
        self.table, self.w, self.b = tensors["embedding"], tensors["classifier.weight"], tensors["classifier.bias"]
        self.device = device

    def forward(self, texts: list[str]) -> list[dict[str, Any]]:
        """All texts in one embedding_bag call: each bag is one text's token ids, averaged."""
        bags = [[self.index.get(tok, 0) for tok in TOKEN.findall(t.lower())] or [0] for t in texts]
        flat = torch.tensor([i for bag in bags for i in bag], device=self.device)
        starts = torch.tensor([0, *torch.tensor([len(b) for b in bags]).cumsum(0)[:-1].tolist()], device=self.device)
        with torch.inference_mode():
            h = F.embedding_bag(flat, self.table, starts, mode="mean")
            p = (h @ self.w.T + self.b).softmax(dim=-1).cpu().tolist()
        out = []
        for row in p:
            best = max(range(len(row)), key=row.__getitem__)
            out.append({"label": self.labels[best], "scores": dict(zip(self.labels, row, strict=True))})
        return out


class One(BaseModel):
    text: NonEmpty


class Many(BaseModel):
    texts: conlist(NonEmpty, min_length=1)  # type: ignore[valid-type]


class Answer(BaseModel):
    label: str
    scores: dict[str, float]


class Answers(BaseModel):
    predictions: list[Answer]


class MicroBatcher:
    """Collects the texts of requests in flight; one forward per batch, answers handed back by future."""

    def __init__(self, model: BagClassifier, largest: int = 64) -> None:
        self.model, self.largest = model, largest
        self.queue: asyncio.Queue[tuple[str, asyncio.Future[dict[str, Any]]]] = asyncio.Queue()

    async def ask(self, text: str) -> dict[str, Any]:
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        await self.queue.put((text, done))
        return await done

    async def run(self) -> None:
        while True:
            waiting = [await self.queue.get()]
            while len(waiting) < self.largest and not self.queue.empty():
                waiting.append(self.queue.get_nowait())
            try:
                answers = await asyncio.to_thread(self.model.forward, [text for text, _ in waiting])
            except Exception as exc:  # every request of the batch learns it
                for _, done in waiting:
                    done.set_exception(exc)
                continue
            for (_, done), answer in zip(waiting, answers, strict=True):
                if not done.cancelled():
                    done.set_result(answer)


def build(model: BagClassifier, longest: int, most: int) -> FastAPI:
    batcher = MicroBatcher(model)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)

    def too_long(text: str) -> None:
        if len(text) > longest:
            raise HTTPException(status_code=413, detail=f"texts are limited to {longest} characters")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict", response_model=Answer)
    async def predict(body: One) -> dict[str, Any]:
        too_long(body.text)
        return await batcher.ask(body.text)

    @app.post("/predict_batch", response_model=Answers)
    def predict_batch(body: Many) -> dict[str, Any]:
        if len(body.texts) > most:
            raise HTTPException(status_code=413, detail=f"at most {most} texts per batch")
        for text in body.texts:
            too_long(text)
        return {"predictions": model.forward(body.texts)}

    return app


class ModelServer:
    def __init__(self, config: dict[str, Any]) -> None:
        model = BagClassifier(Path(config["model_dir"]), str(config.get("device", "cpu")))
        app = build(model, int(config["max_text_chars"]), int(config["max_batch"]))
        self.server = uvicorn.Server(uvicorn.Config(app, uds=config["socket_path"], log_level="error",
                                                    timeout_graceful_shutdown=10))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        give_up = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > give_up:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
