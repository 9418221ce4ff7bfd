"""Shared fixtures for the seq2seq-translation checks (trusted side), given to checks as ``s2s`` and ``corpus``.

Mechanics are compared with the reference on small random models whose weights are made here and
loaded into both (the student's model stays in the sandbox; its state dict crosses as tensors).
Translation quality is measured here too: the student's trained weights are loaded into the reference
model and decoded in this process, on numbers drawn from the grading seed that occur nowhere in the
``parallel-en-es`` asset, and scored with sacrebleu on the detokenised text.  When a result is wrong,
``hidden/mistakes.py`` (left out of student packs) recomputes classic mistakes to name the one made.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import assert_tensor_close, expect_type, load_module

torch.set_num_threads(1)  # the models are tiny: more threads only contend for the shared cores

PAD, BOS, EOS = 0, 1, 2
#: the small models of the mechanics checks: encoder and decoder depths differ, so swapping them shows
SMALL = {"src_vocab_size": 13, "tgt_vocab_size": 17, "d_model": 16, "nhead": 4, "num_encoder_layers": 2,
         "num_decoder_layers": 1, "dim_feedforward": 24, "dropout": 0.1, "max_len": 32}
#: the keys of [profiles.*] that configure the model the outcome checks train
MODEL_KEYS = ("d_model", "nhead", "num_encoder_layers", "num_decoder_layers", "dim_feedforward", "dropout",
              "max_len")


# hidden/mistakes.py recomputes classic mistakes; it implements the exercise, so packs leave it out.
MISTAKES = load_module(Path(__file__).parent / "hidden" / "mistakes.py", "seq2seq_translation_mistakes", optional=True)


def tol(targets: Mapping[str, Any], dtype: torch.dtype = torch.float32) -> dict[str, float]:
    name = "float64" if dtype == torch.float64 else "float32"
    return {"rtol": float(targets.get(f"{name}_rtol", 1e-4)), "atol": float(targets.get(f"{name}_atol", 1e-5))}


# -- small random models -------------------------------------------------------------------------------


def random_state(seed: int, config: Mapping[str, Any] | None = None, eos_bias: float = 0.0) -> dict[str, torch.Tensor]:
    """Random weights under the stub's state-dict names, biases and LayerNorm gains included (so each one matters).

    Built from torch's own modules, not from the reference, so that student packs replay the reference's
    recorded answers on the same weights.  ``eos_bias`` is added to the generator's EOS logit; PAD and BOS
    are pushed far down, so greedy decoding never picks them (the stub lets a student exclude them or not).
    """
    c = dict(SMALL if config is None else config)
    torch.manual_seed(seed)
    core = torch.nn.Transformer(c["d_model"], c["nhead"], c["num_encoder_layers"], c["num_decoder_layers"],
                                c["dim_feedforward"], c["dropout"], batch_first=True)
    parts = {"src_embed": torch.nn.Embedding(c["src_vocab_size"], c["d_model"]),
             "tgt_embed": torch.nn.Embedding(c["tgt_vocab_size"], c["d_model"]),
             "generator": torch.nn.Linear(c["d_model"], c["tgt_vocab_size"])}
    state = {f"transformer.{k}": v.detach().clone() for k, v in core.state_dict().items()}
    for prefix, module in parts.items():
        state.update({f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    for name, value in state.items():
        if name.endswith("bias") or "norm" in name:
            value.normal_(1.0 if ("norm" in name and name.endswith("weight")) else 0.0, 0.2)
    state["generator.bias"][EOS] += eos_bias
    state["generator.bias"][PAD] -= 1e4
    state["generator.bias"][BOS] -= 1e4
    return state


def reference_model(reference: ModuleType, seed: int, config: Mapping[str, Any] | None = None,
                    eos_bias: float = 0.0) -> tuple[Any, dict[str, torch.Tensor]]:
    """The reference model with ``random_state`` loaded, in eval mode, and that state."""
    state = random_state(seed, config, eos_bias)
    model = reference.Seq2SeqTransformer(**dict(SMALL if config is None else config))
    model.load_weights({k: v.clone() for k, v in state.items()})
    model.eval()
    return model, state


def student_model(student: Any, state: Mapping[str, torch.Tensor] | None = None,
                  config: Mapping[str, Any] | None = None) -> Any:
    """The student's Seq2SeqTransformer with ``state`` loaded, in eval mode."""
    config = dict(SMALL if config is None else config)
    vocab = (config.pop("src_vocab_size"), config.pop("tgt_vocab_size"))
    model = student.new("Seq2SeqTransformer", *vocab, **config)
    if state is not None:
        model.load_weights(dict(state))
    model.handle("eval")
    return model


def random_ids(lengths: list[int], vocab: int, generator: torch.Generator) -> torch.Tensor:
    """Padded (batch, max(lengths)) ids of real tokens 3..vocab-1 (never PAD, BOS or EOS), then PAD."""
    ids = torch.randint(3, vocab, (len(lengths), max(lengths)), generator=generator)
    return ids.masked_fill(torch.arange(max(lengths))[None, :] >= torch.tensor(lengths)[:, None], PAD)


def decoder_input(lengths: list[int], vocab: int, generator: torch.Generator) -> torch.Tensor:
    """A shifted decoder input: BOS, then real tokens, then PAD."""
    ids = random_ids(lengths, vocab, generator)
    ids[:, 0] = BOS
    return ids


@torch.no_grad()
def eos_gaps(model: Any, src: torch.Tensor, steps: int) -> torch.Tensor:
    """(batch, steps): the EOS logit minus the best other logit at each step of decoding with EOS never chosen."""
    memory = model.encode(src)
    out = torch.full((src.shape[0], 1), BOS, dtype=torch.long)
    gaps = []
    for _ in range(steps):
        logits = model.decode(out, memory, src)[:, -1].clone()
        eos = logits[:, EOS].clone()
        logits[:, EOS] = float("-inf")
        best = logits.max(dim=-1)
        gaps.append(eos - best.values)
        out = torch.cat([out, best.indices[:, None]], dim=1)
    return torch.stack(gaps, dim=1)


def greedy_case(reference: ModuleType, seed: int, batch: int = 8,
                max_len: int = 9) -> tuple[Any, dict[str, torch.Tensor], torch.Tensor, int]:
    """Weights and sources on which greedy decoding ends some sequences early (at different steps) and not others.

    Adding b to the EOS bias ends a sequence at its first step with gap + b > 0 (``eos_gaps``), so one
    decoding pass prices every bias; of the biases half-way between two thresholds (no near-ties), the one
    that ends some sequences but not all, with the most distinct lengths (at least 3), wins.
    """
    for attempt in range(seed, seed + 5000, 1000):
        g = torch.Generator().manual_seed(attempt)
        lengths = [int(v) for v in torch.randint(1, 9, (batch,), generator=g)]
        lengths[0] = 8
        src = random_ids(lengths, SMALL["src_vocab_size"], g)
        gaps = eos_gaps(reference_model(reference, attempt)[0], src, max_len)
        thresholds = sorted(set((-gaps).flatten().tolist()))
        best: tuple[int, float] | None = None
        for low, high in itertools.pairwise(thresholds):
            if high - low < 0.01:  # a margin of 0.005 in the logits: far above float32 noise
                continue
            ends = gaps + (low + high) / 2 > 0
            stops = [int(row.nonzero()[0]) if row.any() else max_len for row in ends]
            finished = sum(n < max_len for n in stops)
            if 0 < finished < batch and (best is None or len(set(stops)) > best[0]):
                best = (len(set(stops)), (low + high) / 2)
        if best is not None and best[0] >= 3:
            return (*reference_model(reference, attempt, eos_bias=best[1]), src, max_len)
    raise RuntimeError(f"no EOS bias gives a mixed greedy case for seed {seed}")


def expect_logits(value: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    expect_type(value, torch.Tensor, what)
    if tuple(value.shape) != tuple(shape):
        raise AssertionError(f"{what} has shape {tuple(value.shape)}, expected {shape} (batch, T, tgt_vocab_size): "
                             "one row of logits per DECODER position, over the target vocabulary")
    if not value.is_floating_point():
        raise AssertionError(f"{what} should be float logits, got {value.dtype}")
    return value


def expect_ids(value: Any, n: int, what: str) -> list[list[int]]:
    """A list of ``n`` lists of Python ints (what greedy_decode returns)."""
    expect_type(value, (list, tuple), what)
    assert len(value) == n, f"{what} returned {len(value)} sequences for a batch of {n}: one list per source"
    for row in value:
        expect_type(row, (list, tuple), f"each item of {what}")
        for token in row:
            assert type(token) is int, f"{what} should hold Python ints (use .tolist()), found {type(token).__name__}"
    return [list(row) for row in value]


def expect_losses(value: Any, steps: int, what: str = "fit(...)") -> list[float]:
    expect_type(value, (list, tuple), f"the value returned by {what}")
    assert len(value) == steps, (f"{what} returned {len(value)} losses for steps={steps}: take exactly `steps` "
                                 "optimiser steps and return each step's loss")
    for v in value:
        assert type(v) in (float, int), f"{what} should return Python floats (loss.item()), found {type(v).__name__}"
    losses = [float(v) for v in value]
    assert all(v == v and abs(v) < 1e6 for v in losses), f"{what} returned NaN or huge losses: {losses[:5]}"
    return losses


def expect_state(value: Any, want: Mapping[str, torch.Tensor], what: str = "weights()") -> dict[str, torch.Tensor]:
    """A state dict with exactly the reference's names and shapes."""
    expect_type(value, dict, what)
    missing = sorted(set(want) - set(value))
    extra = sorted(set(value) - set(want))
    if missing or extra:
        raise AssertionError(f"{what} should use nn.Transformer's state-dict names (see the stub): missing "
                             f"{missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected {extra[:4]}")
    for name, tensor in want.items():
        got = value[name]
        expect_type(got, torch.Tensor, f"{what}[{name!r}]")
        if tuple(got.shape) != tuple(tensor.shape):
            raise AssertionError(f"{what}[{name!r}] has shape {tuple(got.shape)}, expected {tuple(tensor.shape)}")
    return dict(value)


def diagnose(kind: str, *args: Any) -> str | None:
    """The name of the classic mistake that explains a wrong result, when the mistake catalogue is here."""
    if MISTAKES is None:
        return None
    found = getattr(MISTAKES, f"diagnose_{kind}")(*args)
    return str(found) if found else None


def forward_differs(model: Any, ref: Any, src: torch.Tensor, dec: torch.Tensor) -> str | None:
    """A lead for a wrong loss or decoding: the forward pass itself already differs from the reference's."""
    if dec.shape[0] != src.shape[0]:
        dec = dec[:1].expand(src.shape[0], -1).clone()
    got = model.forward(src, dec)
    with torch.no_grad():
        want = ref.forward(src, dec)
    real = dec != PAD
    if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got[real], want[real], rtol=1e-4,
                                                                                    atol=1e-4):
        return None
    return "forward() already differs from the reference (see test_forward_matches_reference): fix it first"


def assert_logits(actual: Any, want: torch.Tensor, real: torch.Tensor, *, what: str, advice: str,
                  targets: Mapping[str, Any], why: str | None = None) -> None:
    """Compare logits at the real (non-pad) decoder positions ``real`` (batch, T) bool."""
    expect_logits(actual, tuple(want.shape), what)
    lead = f"{why}\n{advice}" if why else advice
    assert_tensor_close(actual[real], want[real], name=f"{what} (real decoder positions)", advice=lead,
                        **tol(targets, want.dtype))


# -- the corpus ----------------------------------------------------------------------------------------


class Corpus:
    """The parallel-en-es asset: training ids for the student, hidden pairs for the outcome checks."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.folder = folder
        self.meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self.source_tok = Tokenizer.from_file(str(folder / "source-tokenizer.json"))
        self.target_tok = Tokenizer.from_file(str(folder / "target-tokenizer.json"))
        self.train = self.read("train")
        self._ids: dict[int, tuple[list[list[int]], list[list[int]]]] = {}

    def read(self, split: str) -> list[tuple[str, str]]:
        path = self.folder / f"{split}.txt"
        if not path.is_file():
            return []
        rows = (line.partition("\t") for line in path.read_text(encoding="utf-8").splitlines())
        return [(s, t) for s, sep, t in rows if sep]

    def training_ids(self, max_len: int, limit: int) -> tuple[list[list[int]], list[list[int]]]:
        """The first ``limit`` training pairs as ids, cut to fit ``max_len`` positions (target + EOS included)."""
        if limit not in self._ids:
            pairs = self.train[:limit]
            self._ids[limit] = ([e.ids for e in self.source_tok.encode_batch([s for s, _ in pairs])],
                                [e.ids for e in self.target_tok.encode_batch([t for _, t in pairs])])
        src, tgt = self._ids[limit]
        return [s[:max_len] for s in src], [t[:max_len - 1] for t in tgt]

    @property
    def vocab_sizes(self) -> tuple[int, int]:
        return self.source_tok.get_vocab_size(), self.target_tok.get_vocab_size()

    def hidden(self, seed: int, n: int) -> list[tuple[str, str]]:
        """``n`` pairs the student never saw: fresh numbers from the seed, or a seeded sample of test.txt."""
        rng = random.Random(seed)
        if self.meta.get("generator") == "num2words":
            from num2words import num2words

            seen = {s for split in ("train", "valid", "test") for s, _ in self.read(split)}
            pairs: dict[str, str] = {}
            while len(pairs) < n:
                number = rng.randint(int(self.meta["low"]), int(self.meta["high"]))
                english = num2words(number, lang="en")
                if english not in seen:
                    pairs[english] = num2words(number, lang="es")
            return list(pairs.items())
        test = self.read("test")
        return rng.sample(test, min(n, len(test)))

    def encode_sources(self, sources: list[str], max_len: int) -> torch.Tensor:
        rows = [self.source_tok.encode(s).ids[:max_len] for s in sources]
        ids = torch.full((len(rows), max(len(r) for r in rows)), PAD, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        return ids

    def detokenise(self, rows: list[list[int]]) -> list[str]:
        return [self.target_tok.decode(row, skip_special_tokens=True) for row in rows]


@pytest.fixture(scope="session")
def corpus(assets: Any) -> Corpus:
    return Corpus(Path(assets["parallel-en-es"]))


def model_config(targets: Mapping[str, Any], corpus: Corpus) -> dict[str, Any]:
    src_vocab, tgt_vocab = corpus.vocab_sizes
    config: dict[str, Any] = {"src_vocab_size": src_vocab, "tgt_vocab_size": tgt_vocab}
    for key in MODEL_KEYS:
        config[key] = float(targets[key]) if key == "dropout" else int(targets[key])
    return config


@pytest.fixture(scope="session")
def s2s() -> SimpleNamespace:
    """Helpers for the seq2seq-translation checks."""
    return SimpleNamespace(
        PAD=PAD, BOS=BOS, EOS=EOS, SMALL=SMALL, tol=tol, reference_model=reference_model, random_state=random_state,
        student_model=student_model, greedy_case=greedy_case, random_ids=random_ids, decoder_input=decoder_input,
        expect_logits=expect_logits, expect_ids=expect_ids, expect_losses=expect_losses, expect_state=expect_state,
        assert_logits=assert_logits, diagnose=diagnose, forward_differs=forward_differs, model_config=model_config)
