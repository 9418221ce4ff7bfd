# wrong: the encoder is left in training mode, so dropout changes every forward pass
# loses: test_encoder_is_pretrained, test_embed_and_logits, test_fit_trains_head_only
"""A sentence classifier on a pre-trained encoder, with one deliberate mistake (see the first line)."""


from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)


class SentenceClassifier:
    def __init__(self, model_dir: str, num_labels: int = 2, max_length: int = 128) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.encoder = AutoModel.from_pretrained(model_dir, local_files_only=True).train()
        self.encoder.requires_grad_(False)
        self.max_length = max_length
        self.head = nn.Linear(self.encoder.config.hidden_size, num_labels)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        return self.encoder(**self.tokenize(texts)).last_hidden_state

    @torch.no_grad()
    def embed(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        parts = []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenize(texts[i:i + batch_size])
            hidden = self.encoder(**batch).last_hidden_state
            parts.append(mean_pool(hidden, batch["attention_mask"]))
        return torch.cat(parts) if parts else torch.zeros(0, self.encoder.config.hidden_size)

    def load_head(self, weights: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.head.weight.copy_(weights["weight"])
            self.head.bias.copy_(weights["bias"])

    def logits(self, texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.head(self.embed(texts))

    def fit(self, texts: list[str], labels: list[int], steps: int, batch_size: int = 16, lr: float = 1e-2,
            seed: int = 0) -> list[float]:
        features = self.embed(texts)
        targets = torch.tensor(labels)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(self.head.parameters(), lr=lr)
        losses = []
        for _ in range(steps):
            idx = torch.randint(len(texts), (batch_size,), generator=generator)
            loss = F.cross_entropy(self.head(features[idx]), targets[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        return losses

    def predict(self, texts: list[str]) -> list[int]:
        return [int(i) for i in self.logits(texts).argmax(dim=-1).tolist()]
