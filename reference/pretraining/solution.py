"""Reference: byte-level BPE trained on the training split, a small GPT, a training loop with progress, perplexity."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(1)  # a small model: one thread is fastest, and never fights other grading jobs for the cores

SPECIAL_TOKENS = ["<|endoftext|>", "<pad>"]


def perplexity_from_logits(logits: torch.Tensor, targets: torch.Tensor, pad_id: int) -> float:
    nll = F.cross_entropy(logits.double().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    real = targets.reshape(-1) != pad_id
    return math.exp(float(nll[real].sum()) / int(real.sum()))


class Block(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        q, k, v = (t.view(batch, length, self.num_heads, -1).transpose(1, 2)
                   for t in self.qkv(self.norm1(x)).chunk(3, dim=-1))
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attn.transpose(1, 2).reshape(batch, length, d_model))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(context_length, d_model)
        self.blocks = nn.ModuleList(Block(d_model, num_heads, d_ff) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # tied input and output embeddings, as in GPT-2
        for name, param in self.named_parameters():
            if param.dim() >= 2:
                nn.init.normal_(param, 0.0, 0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(param)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(ids) + self.pos_emb(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def _read(path: str, max_chars: int) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read(max_chars)


def _lines(text: str, size: int = 1000) -> Iterator[list[str]]:
    lines = text.splitlines(keepends=True)
    for i in range(0, len(lines), size):
        yield lines[i: i + size]


class Pretrainer:
    def __init__(self, config: dict[str, Any], seed: int = 0) -> None:
        self.config = dict(config)
        self.seed = seed
        self.device = config.get("device", "cpu")
        self.tokenizer: Any = None
        self.pad_id: int | None = None
        self._train_ids: torch.Tensor | None = None
        torch.manual_seed(seed)
        c = self.config
        self.model = GPT(c["vocab_size"], c["context_length"], c["d_model"], c["num_layers"], c["num_heads"],
                         c["d_ff"]).to(self.device)
        # built here rather than in train(): a process's first torch.optim optimiser imports torch._dynamo, which
        # takes seconds, and train() must report at once
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        other = [p for p in self.model.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                            {"params": other, "weight_decay": 0.0}], lr=c["lr"], betas=(0.9, 0.95))

    # -- the tokenizer -----------------------------------------------------------------------------------
    def train_tokenizer(self, splits: dict[str, str]) -> None:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=self.config["vocab_size"], special_tokens=SPECIAL_TOKENS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        text = _read(splits["train"], self.config["max_train_chars"])  # the training split only
        tokenizer.train_from_iterator(_lines(text), trainer)
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.token_to_id("<pad>")
        self._train_ids = self._encode_split(splits["train"])  # once, here: train() then starts reporting at once

    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            raise RuntimeError("train the tokenizer first (train_tokenizer)")
        return list(self.tokenizer.encode(text).ids) if text else []

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _encode_split(self, path: str) -> torch.Tensor:
        ids: list[int] = []
        for lines in _lines(_read(path, self.config["max_train_chars"])):
            for encoding in self.tokenizer.encode_batch(lines):
                ids.extend(encoding.ids)
        return torch.tensor(ids, dtype=torch.long)

    # -- training ----------------------------------------------------------------------------------------
    def _lr(self, step: int, max_steps: int) -> float:
        peak, warmup = self.config["lr"], self.config["warmup_steps"]
        if step < warmup:
            return peak * (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
        return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))

    def train(self, splits: dict[str, str], max_steps: int, progress_file: str) -> list[float]:
        c = self.config
        if self._train_ids is None:
            raise RuntimeError("train the tokenizer first (train_tokenizer)")
        data = self._train_ids
        context, batch, every = c["context_length"], c["batch_size"], c["log_every"]
        optimizer = self.optimizer
        losses: list[float] = []
        start = last = time.monotonic()
        self.model.train()
        with open(progress_file, "a", encoding="utf-8") as progress:
            progress.write(json.dumps({"step": 0, "loss": None, "elapsed_s": 0.0}) + "\n")
            progress.flush()
            for step in range(max_steps):
                starts = torch.randint(0, len(data) - context, (batch,))
                chunk = data[starts[:, None] + torch.arange(context + 1)].to(self.device)
                for group in optimizer.param_groups:
                    group["lr"] = self._lr(step, max_steps)
                logits = self.model(chunk[:, :-1])
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                optimizer.step()
                losses.append(float(loss.detach()))
                now = time.monotonic()
                if (step + 1) % every == 0 or step + 1 == max_steps or now - last >= 5.0:
                    record = {"step": step + 1, "loss": round(losses[-1], 4), "elapsed_s": round(now - start, 2)}
                    progress.write(json.dumps(record) + "\n")
                    progress.flush()
                    print(f"step {step + 1}/{max_steps}  loss {losses[-1]:.3f}  {now - start:.0f} s", flush=True)
                    last = now
        return losses

    # -- evaluation --------------------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(ids.to(self.device)).float().cpu()

    def perplexity(self, text: str) -> float:
        ids = self.encode(text)
        context, batch = self.config["context_length"], self.config["batch_size"]
        chunks = [ids[i: i + context + 1] for i in range(0, len(ids) - 1, context)]
        chunks = [chunk + [self.pad_id] * (context + 1 - len(chunk)) for chunk in chunks]
        total, count = 0.0, 0
        for i in range(0, len(chunks), batch):
            block = torch.tensor(chunks[i: i + batch])
            targets = block[:, 1:]
            logits = self.logits(block[:, :-1]).double()
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
            real = targets.reshape(-1) != self.pad_id
            total += float(nll[real].sum())
            count += int(real.sum())
        return math.exp(total / count)
