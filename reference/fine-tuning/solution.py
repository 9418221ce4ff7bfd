"""Reference: full fine-tuning of a pre-trained encoder for sentiment (AdamW, linear warm-up/decay, clipping)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    return base_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def train_classifier(model: nn.Module, batches: list[dict[str, torch.Tensor]], *, lr: float, warmup_steps: int,
                     max_grad_norm: float, weight_decay: float = 0.01, seed: int = 0) -> dict[str, list[float]]:
    torch.manual_seed(seed)
    total = len(batches)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, 1.0, warmup_steps, total))
    history: dict[str, list[float]] = {"losses": [], "lrs": [], "grad_norms": []}
    model.train()
    for batch in batches:
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        loss = F.cross_entropy(model(**inputs), batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        history["lrs"].append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
        history["losses"].append(float(loss.detach()))
        history["grad_norms"].append(float(norm))
    model.eval()
    return history


class _LinearProbe(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype)
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(features))


def train_linear(weight: torch.Tensor, bias: torch.Tensor, batches: list[dict[str, torch.Tensor]], *, lr: float,
                 warmup_steps: int, max_grad_norm: float, weight_decay: float = 0.01, dropout: float = 0.0,
                 seed: int = 0) -> dict[str, object]:
    model = _LinearProbe(weight, bias, dropout)
    history = train_classifier(model, batches, lr=lr, warmup_steps=warmup_steps, max_grad_norm=max_grad_norm,
                               weight_decay=weight_decay, seed=seed)
    return {"weight": model.linear.weight.detach().clone(), "bias": model.linear.bias.detach().clone(), **history}


class _Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.pooled(input_ids, attention_mask)))


class SentimentFineTuner:
    def __init__(self, model_dir: str, num_labels: int = 2, max_length: int = 32, seed: int = 0) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        encoder = AutoModel.from_pretrained(model_dir, local_files_only=True, add_pooling_layer=False)
        torch.manual_seed(seed)
        self.model = _Classifier(encoder, num_labels).eval()
        self.max_length = max_length

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    @torch.no_grad()
    def embed(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        self.model.eval()
        parts = [self.model.pooled(**self.tokenize(texts[i:i + batch_size])) for i in range(0, len(texts), batch_size)]
        return torch.cat(parts)

    @torch.no_grad()
    def logits(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        self.model.eval()
        chunks = range(0, len(texts), batch_size)
        return torch.cat([self.model(**self.tokenize(texts[i:i + batch_size])) for i in chunks])

    def predict(self, texts: list[str]) -> list[int]:
        return [int(i) for i in self.logits(texts).argmax(dim=-1).tolist()]

    def fit(self, texts: list[str], labels: list[int], steps: int, batch_size: int = 16, lr: float = 3e-4,
            warmup_ratio: float = 0.1, max_grad_norm: float = 1.0, weight_decay: float = 0.01,
            seed: int = 0) -> dict[str, list[float]]:
        generator = torch.Generator().manual_seed(seed)
        targets = torch.tensor(labels)
        batches = []
        order: list[int] = []
        for _ in range(steps):
            if len(order) < batch_size:
                order += torch.randperm(len(texts), generator=generator).tolist()
            idx, order = order[:batch_size], order[batch_size:]
            batches.append({**self.tokenize([texts[i] for i in idx]), "labels": targets[idx]})
        return train_classifier(self.model, batches, lr=lr, warmup_steps=math.ceil(warmup_ratio * steps),
                                max_grad_norm=max_grad_norm, weight_decay=weight_decay, seed=seed)
