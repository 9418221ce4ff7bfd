"""Classic seq2seq mistakes, recomputed on the reference's weights to name the one a student made.

Hidden from student packs: it implements the exercise.  Each ``diagnose_*`` returns a sentence that
leads the failure message, or ``None`` when no known mistake explains the result.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

PAD, BOS, EOS = 0, 1, 2
TOL = {"rtol": 1e-4, "atol": 1e-4}


def _table(kind: str, length: int, d_model: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    if kind == "none":
        return table
    if kind == "concat":
        return torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=1)
    first, second = (torch.cos, torch.sin) if kind == "swapped" else (torch.sin, torch.cos)
    table[:, 0::2] = first(pos * freq)
    table[:, 1::2] = second(pos * freq)
    return table


@torch.no_grad()
def variant_forward(model: Any, src: torch.Tensor, dec: torch.Tensor, *, scale: bool = True,
                    pe: str = "interleaved", scale_after_pe: bool = False, src_mask: bool = True,
                    memory_mask: bool = True, causal: str = "upper", tgt_pad: bool = False) -> torch.Tensor:
    d = model.d_model

    def embed(table: torch.nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        x, positions = table(ids), _table(pe, ids.shape[1], d)
        if scale_after_pe:
            return (x + positions) * math.sqrt(d)
        return x * (math.sqrt(d) if scale else 1.0) + positions

    pad_src = src == PAD
    memory = model.transformer.encoder(embed(model.src_embed, src), src_key_padding_mask=pad_src if src_mask else None)
    size = dec.shape[1]
    masks = {"upper": torch.triu(torch.ones(size, size, dtype=torch.bool), 1),
             "lower": torch.tril(torch.ones(size, size, dtype=torch.bool), -1),
             "none": torch.zeros(size, size, dtype=torch.bool)}
    hidden = model.transformer.decoder(embed(model.tgt_embed, dec), memory, tgt_mask=masks[causal],
                                       tgt_key_padding_mask=(dec == PAD) if tgt_pad else None,
                                       memory_key_padding_mask=pad_src if memory_mask else None)
    return model.generator(hidden)


FORWARD_MISTAKES = [
    ("the embeddings are not multiplied by sqrt(d_model)", {"scale": False}),
    ("(embedding + positions) is scaled: multiply only the embedding by sqrt(d_model), then add the positions",
     {"scale_after_pe": True}),
    ("no positional encoding is added", {"pe": "none"}),
    ("the positional table puts all sines first, then all cosines: interleave them (sin on even dims, cos on odd)",
     {"pe": "concat"}),
    ("the positional table has cos on even dims and sin on odd ones: sin goes on 2i, cos on 2i + 1",
     {"pe": "swapped"}),
    ("the encoder ignores the source padding mask: pass src_key_padding_mask = padding_mask(src)",
     {"src_mask": False}),
    ("the cross-attention attends to source padding: pass memory_key_padding_mask = padding_mask(src) to the decoder",
     {"memory_mask": False}),
    ("no source padding mask anywhere: the encoder and the cross-attention both need padding_mask(src)",
     {"src_mask": False, "memory_mask": False}),
    ("the decoder has no causal mask: each position sees the tokens after it", {"causal": "none"}),
    ("the causal mask is transposed: True (blocked) goes above the diagonal", {"causal": "lower"}),
]


def _same(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    return tuple(actual.shape) == tuple(expected.shape) and bool(torch.allclose(actual, expected, **TOL))


def diagnose_forward(actual: torch.Tensor, model: Any, src: torch.Tensor, dec: torch.Tensor) -> str | None:
    real = dec != PAD
    if tuple(actual.shape) != (*dec.shape, model.generator.out_features):
        return None
    for text, flags in FORWARD_MISTAKES:
        for tgt_pad in (False, True):  # the target padding mask is optional; without a causal mask it matters
            if _same(actual[real], variant_forward(model, src, dec, tgt_pad=tgt_pad, **flags)[real]):
                return f"it looks like {text}"
    return None


def _shift(labels: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.full_like(labels[:, :1], BOS), labels[:, :-1]], dim=1)


@torch.no_grad()
def loss_variants(model: Any, src: torch.Tensor, labels: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    logits = model(src, _shift(labels))
    flat, flat_labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    per_token = F.cross_entropy(flat, flat_labels, reduction="none").reshape(labels.shape)
    real = (labels != PAD).float()
    unshifted = model(src, labels)
    left = model(src, labels[:, :-1])
    no_mask = variant_forward(model, src, _shift(labels), causal="none")
    with torch.enable_grad():  # with gradients on, a fully masked first position gives numbers, not NaN
        pad_start = model(src, _pad_start(labels)).detach()
    no_mask_padded = variant_forward(model, src, _shift(labels), causal="none", tgt_pad=True)
    return [
        ("the decoder input is the labels themselves (unshifted): it reads the token it must predict; use "
         "shift_right(labels)",
         F.cross_entropy(unshifted.reshape(-1, logits.shape[-1]), flat_labels, ignore_index=PAD)),
        ("the labels are treated as if they began with BOS (input labels[:, :-1], target labels[:, 1:]): the first "
         "token is never predicted; the decoder input is shift_right(labels) and the target is labels",
         F.cross_entropy(left.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=PAD)),
        *[("the decoder input starts with PAD, not BOS: shift_right puts bos_id first (the decoder start token)",
           F.cross_entropy(v.reshape(-1, logits.shape[-1]), flat_labels, ignore_index=PAD))
          for v in (pad_start, variant_forward(model, src, _pad_start(labels)))],
        ("PAD labels are counted in the loss: use ignore_index=PAD", F.cross_entropy(flat, flat_labels)),
        ("the loss is a mean of per-sequence means: average over all non-PAD tokens of the batch at once",
         ((per_token * real).sum(1) / real.sum(1)).mean()),
        ("the loss is summed, not averaged over the non-PAD tokens", (per_token * real).sum()),
        *[("the loss is computed without the causal mask: the decoder sees the token it must predict",
           F.cross_entropy(v.reshape(-1, logits.shape[-1]), flat_labels, ignore_index=PAD))
          for v in (no_mask, no_mask_padded)],
    ]


def _pad_start(labels: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.full_like(labels[:, :1], PAD), labels[:, :-1]], dim=1)


def diagnose_loss(actual: torch.Tensor, model: Any, src: torch.Tensor, labels: torch.Tensor) -> str | None:
    if bool(torch.isnan(actual).any()):
        with torch.no_grad():
            pad_start = model(src, _pad_start(labels))
        if bool(torch.isnan(pad_start).any()):
            return ("the loss is NaN, as when the decoder input starts with PAD, not BOS: the target padding mask "
                    "then hides every key of position 0; shift_right puts bos_id first (the decoder start token)")
        return None
    for text, value in loss_variants(model, src, labels):
        if _same(actual.reshape(()).to(value.dtype), value):
            return f"it looks like {text}"
    return None


@torch.no_grad()
def raw_stream(model: Any, src: torch.Tensor, steps: int) -> list[list[int]]:
    """Every sequence decoded for ``steps`` steps, going on after its EOS."""
    model.eval()
    memory = model.encode(src)
    out = torch.full((src.shape[0], 1), BOS, dtype=torch.long)
    for _ in range(steps):
        out = torch.cat([out, model.decode(out, memory, src)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out[:, 1:].tolist()


def _cut(row: list[int], keep_eos: bool = False) -> list[int]:
    return row[:row.index(EOS) + int(keep_eos)] if EOS in row else row


def diagnose_greedy(actual: list[list[int]], model: Any, src: torch.Tensor, max_len: int) -> str | None:
    raw = raw_stream(model, src, max_len + 1)
    right = [_cut(r[:max_len]) for r in raw]
    first_end = min((r.index(EOS) for r in (row[:max_len] for row in raw) if EOS in r), default=max_len)
    variants = [
        ("each result keeps its EOS: return the tokens BEFORE the first EOS", [_cut(r[:max_len], True) for r in raw]),
        ("decoding does not stop at EOS: a sequence ends at its first EOS, and what follows is dropped",
         [r[:max_len] for r in raw]),
        ("EOS is dropped but the tokens after it are kept: a sequence ends at its first EOS",
         [[t for t in r[:max_len] if t != EOS] for r in raw]),
        ("each result starts with BOS: return only the generated tokens", [[BOS, *r] for r in right]),
        ("one token too few: decode up to max_len steps (max_len tokens when no EOS comes)",
         [_cut(r[:max_len - 1]) for r in raw]),
        ("one token too many: at most max_len tokens", [_cut(r[:max_len + 1]) for r in raw]),
        ("the whole batch stops when the FIRST sequence produces EOS: keep going until every sequence has finished",
         [_cut(r[:first_end + 1]) for r in raw]),
    ]
    for text, want in variants:
        if actual == want and want != right:
            return f"it looks like {text}"
    return None
