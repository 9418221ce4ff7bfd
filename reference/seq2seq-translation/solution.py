"""Reference: a Transformer encoder-decoder for translation, with teacher forcing and batched greedy decoding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PAD, BOS, EOS = 0, 1, 2


def padding_mask(ids: torch.Tensor, pad_id: int = PAD) -> torch.Tensor:
    return ids == pad_id


def causal_mask(size: int) -> torch.Tensor:
    return torch.triu(torch.ones(size, size, dtype=torch.bool), diagonal=1)


def shift_right(labels: torch.Tensor, bos_id: int = BOS) -> torch.Tensor:
    start = torch.full_like(labels[:, :1], bos_id)
    return torch.cat([start, labels[:, :-1]], dim=1)


def make_batch(src_seqs: list[list[int]], tgt_seqs: list[list[int]], pad_id: int = PAD,
               eos_id: int = EOS) -> tuple[torch.Tensor, torch.Tensor]:
    if not src_seqs or len(src_seqs) != len(tgt_seqs):
        raise ValueError(f"need as many targets as sources, at least one: {len(src_seqs)} and {len(tgt_seqs)}")
    if any(len(s) == 0 for s in src_seqs):
        raise ValueError("a source sequence is empty: the encoder would attend to nothing")
    src_len = max(len(s) for s in src_seqs)
    tgt_len = max(len(t) for t in tgt_seqs) + 1
    src = torch.full((len(src_seqs), src_len), pad_id, dtype=torch.long)
    labels = torch.full((len(tgt_seqs), tgt_len), pad_id, dtype=torch.long)
    for i, (s, t) in enumerate(zip(src_seqs, tgt_seqs, strict=True)):
        src[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        labels[i, :len(t) + 1] = torch.tensor([*t, eos_id], dtype=torch.long)
    return src, labels


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


class Seq2SeqTransformer(nn.Module):
    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int = 64, nhead: int = 4,
                 num_encoder_layers: int = 2, num_decoder_layers: int = 2, dim_feedforward: int = 128,
                 dropout: float = 0.1, max_len: int = 64) -> None:
        super().__init__()
        self.d_model = d_model
        self.src_embed = nn.Embedding(src_vocab_size, d_model)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model)
        self.register_buffer("positions", sinusoidal_table(max_len, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.transformer = nn.Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward,
                                          dropout, batch_first=True)
        self.transformer.encoder.use_nested_tensor = False  # same values; avoids the prototype warning
        self.generator = nn.Linear(d_model, tgt_vocab_size)

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state, strict=True)

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu").clone() for k, v in self.state_dict().items()}

    def _embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        x = table(ids) * math.sqrt(self.d_model) + self.positions[:ids.shape[1]]
        return self.dropout(x)

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        return self.transformer.encoder(self._embed(self.src_embed, src), src_key_padding_mask=padding_mask(src))

    def decode(self, decoder_input: torch.Tensor, memory: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        size = decoder_input.shape[1]
        hidden = self.transformer.decoder(
            self._embed(self.tgt_embed, decoder_input), memory,
            tgt_mask=causal_mask(size).to(decoder_input.device),
            tgt_key_padding_mask=padding_mask(decoder_input),
            memory_key_padding_mask=padding_mask(src))
        return self.generator(hidden)

    def forward(self, src: torch.Tensor, decoder_input: torch.Tensor) -> torch.Tensor:
        return self.decode(decoder_input, self.encode(src), src)

    def loss(self, src: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.forward(src, shift_right(labels))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=PAD)

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, max_len: int = 20) -> list[list[int]]:
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1, got {max_len}")
        self.eval()
        memory = self.encode(src)
        out = torch.full((src.shape[0], 1), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            step = self.decode(out, memory, src)[:, -1].argmax(dim=-1)
            step = torch.where(done, torch.full_like(step, PAD), step)
            out = torch.cat([out, step[:, None]], dim=1)
            done |= step == EOS
            if bool(done.all()):
                break
        result = []
        for row in out[:, 1:].tolist():
            result.append(row[:row.index(EOS)] if EOS in row else row)
        return result

    def fit(self, src_seqs: list[list[int]], tgt_seqs: list[list[int]], steps: int, batch_size: int = 64,
            lr: float = 3e-3, seed: int = 0, device: str = "cpu") -> list[float]:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        self.to(device).train()
        optimiser = torch.optim.Adam(self.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9)
        losses = []
        for _ in range(steps):
            if len(src_seqs) <= batch_size:
                picked = list(range(len(src_seqs)))
            else:
                picked = torch.randint(len(src_seqs), (batch_size,), generator=generator).tolist()
            src, labels = make_batch([src_seqs[i] for i in picked], [tgt_seqs[i] for i in picked])
            loss = self.loss(src.to(device), labels.to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.item()))
        self.to("cpu").eval()
        return losses
