"""Assets for the sequence-to-sequence exercises: parallel text, summarisation pairs, a small BART.

``parallel-en-es`` is English -> Spanish sentence pairs, ``source<TAB>target`` per line in
``train.txt``, ``valid.txt`` and ``test.txt``, with one ``tokenizers`` file per side
(``source-tokenizer.json``, ``target-tokenizer.json``; ids 0-3 are ``[PAD] [BOS] [EOS] [UNK]``) and
``meta.json`` saying where the pairs come from.  Offline the pairs are cardinal numbers written out
by ``num2words`` in both languages ("three hundred and twenty-one" -> "trescientos veintiuno"): real
text with reordering and agreement that a tiny Transformer learns on a CPU in a minute; the numbers
of the three splits are disjoint, and ``meta.json`` gives the range, so a grader can draw fresh
held-out numbers.  Online (``[tool.grader.assets] parallel-en-es = "hf-dataset:PATH:CONFIG"``, e.g.
``Helsinki-NLP/opus-100:en-es``) the pairs are a real corpus's ``translation`` column, and the
tokenizers are byte-level BPE trained on its training split.

``summarisation-pairs`` is ``train.jsonl`` / ``test.jsonl`` of ``{"document", "summary"}``: offline, the
long paragraphs of wiki-sample's training articles, each summarised by its article's title (every
fifth paragraph of an article held out for test); online, XSum or CNN/DailyMail.  ``seq2seq-small`` is
a 1.3 M-parameter BART that ``grader assets prepare`` pre-trains by text infilling on the training
documents and the Lee corpus (about three minutes of one core); online, any hub model (``hf:``).

The online builder of :mod:`grader.builtin.assets_online` knows only ``text`` columns, so this module
registers its own online providers for the two data sets, preferred over that one (lower priority).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict

from grader import hookimpl
from grader.assets import Asset, AssetConfig, AssetError, AssetRegistry, BuildContext

SPECIALS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]
#: the offline pairs: which numbers, how many per split, the sampling seed (disjoint splits)
NUMBERS = {"low": 1, "high": 99_999, "seed": 0, "train": 20_000, "valid": 1_000, "test": 2_000}
#: the online provider's limits: pairs kept per split, BPE vocabulary per side
ONLINE = {"max_train": 1_000_000, "max_eval": 2_000, "vocab_size": 8_000}
PARALLEL = "parallel-en-es"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _clean(text: str) -> str:
    """One line of a TSV cell: tabs and newlines become spaces."""
    return " ".join(str(text).split())


def write_pairs(path: Path, pairs: Iterable[tuple[str, str]]) -> int:
    rows = [f"{_clean(s)}\t{_clean(t)}\n" for s, t in pairs if _clean(s) and _clean(t)]
    _write(path, "".join(rows))
    return len(rows)


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """``source<TAB>target`` lines -> pairs (what the exercises read)."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        source, sep, target = line.partition("\t")
        if sep:
            pairs.append((source, target))
    return pairs


def number_pair(n: int) -> tuple[str, str]:
    """The English and Spanish words of ``n`` (num2words' cardinal forms)."""
    from num2words import num2words

    return num2words(n, lang="en"), num2words(n, lang="es")


def number_splits() -> dict[str, list[int]]:
    """Disjoint train/valid/test numbers drawn from NUMBERS' range with its seed."""
    rng = random.Random(NUMBERS["seed"])
    sizes = [NUMBERS["train"], NUMBERS["valid"], NUMBERS["test"]]
    drawn = rng.sample(range(NUMBERS["low"], NUMBERS["high"] + 1), sum(sizes))
    return {"train": drawn[:sizes[0]], "valid": drawn[sizes[0]:sizes[0] + sizes[1]], "test": drawn[sum(sizes[:2]):]}


def word_tokenizer(texts: list[str], split_punctuation: bool) -> Any:
    """A word-level tokenizer over ``texts``; hyphens and commas are tokens of their own on the source side."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace() if split_punctuation else pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIALS, min_frequency=1))
    return tok


def bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """Byte-level BPE (no unknown characters), so ``decode`` gives back the detokenised text."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def _check_specials(tok: Any) -> None:
    ids = [tok.token_to_id(s) for s in SPECIALS]
    if ids != [0, 1, 2, 3]:
        raise AssetError(f"the tokenizer's special tokens {SPECIALS} got ids {ids}, expected 0-3")


def _finish_parallel(ctx: BuildContext, source_tok: Any, target_tok: Any, meta: dict[str, Any]) -> None:
    for tok, name in ((source_tok, "source"), (target_tok, "target")):
        _check_specials(tok)
        tok.save(str(ctx.out / f"{name}-tokenizer.json"))
    _write(ctx.out / "meta.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")


def build_number_pairs(ctx: BuildContext) -> None:
    """English -> Spanish number words, 20,000 / 1,000 / 2,000 disjoint numbers (a few seconds)."""
    splits = number_splits()
    pairs: dict[str, list[tuple[str, str]]] = {}
    for i, (split, numbers) in enumerate(splits.items()):
        ctx.progress(f"{PARALLEL}: writing {split} ({len(numbers)} numbers)", i / 4)
        pairs[split] = [number_pair(n) for n in numbers]
        write_pairs(ctx.out / f"{split}.txt", pairs[split])
    train = pairs["train"]
    meta = {"source_lang": "en", "target_lang": "es", "generator": "num2words",
            "low": NUMBERS["low"], "high": NUMBERS["high"], "seed": NUMBERS["seed"],
            "sizes": {s: len(p) for s, p in pairs.items()}}
    _finish_parallel(ctx, word_tokenizer([s for s, _ in train], True), word_tokenizer([t for _, t in train], False),
                     meta)
    _write(ctx.out / "README.txt", (
        "English -> Spanish cardinal numbers written out by num2words (source<TAB>target per line).\n"
        f"Numbers {NUMBERS['low']}..{NUMBERS['high']}, drawn without replacement with random.Random("
        f"{NUMBERS['seed']}): {NUMBERS['train']} train, {NUMBERS['valid']} valid, {NUMBERS['test']} test, "
        "disjoint.\nTokenizers: word level (source: hyphens and commas split off); ids 0-3 = "
        f"{' '.join(SPECIALS)}.\n"))


def _language_pair(config: str) -> tuple[str, str]:
    source, sep, target = config.partition("-")
    return (source, target) if sep and source and target else ("en", "es")


def build_online_pairs(ident: str) -> Any:
    """A hub corpus's ``translation`` column as TSV, with BPE tokenizers trained on its training split."""

    def build(ctx: BuildContext) -> None:
        from datasets import load_dataset

        path, _, config = ident.partition(":")
        src, tgt = _language_pair(config)
        ctx.progress(f"{ctx.asset.name}: downloading {ident} with datasets", None)
        data = load_dataset(path, config or None)
        if "train" not in data or "translation" not in data["train"].column_names:
            raise AssetError(f"{ident} needs a train split with a 'translation' column of {{{src!r}, {tgt!r}}}")
        sizes = {}
        for split, name in (("train", "train"), ("validation", "valid"), ("test", "test")):
            if split not in data:
                continue
            limit = ONLINE["max_train"] if split == "train" else ONLINE["max_eval"]
            rows = data[split].select(range(min(limit, len(data[split]))))["translation"]
            sizes[name] = write_pairs(ctx.out / f"{name}.txt", ((r[src], r[tgt]) for r in rows))
        train = read_pairs(ctx.out / "train.txt")
        ctx.progress(f"{ctx.asset.name}: training BPE tokenizers", 0.8)
        meta = {"source_lang": src, "target_lang": tgt, "generator": f"hf-dataset:{ident}", "sizes": sizes}
        _finish_parallel(ctx, bpe_tokenizer((s for s, _ in train), ONLINE["vocab_size"]),
                         bpe_tokenizer((t for _, t in train), ONLINE["vocab_size"]), meta)

    return build


# -- summarisation pairs -----------------------------------------------------------------------------

SUMMARIES = "summarisation-pairs"
#: a paragraph becomes a document when it has this many words; every HELD_OUT-th one of an article is test
MIN_WORDS, HELD_OUT = 25, 5


def write_jsonl(path: Path, rows: Iterable[dict[str, str]]) -> int:
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in rows]
    _write(path, "".join(lines))
    return len(lines)


def read_jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def title_pairs(articles: Iterable[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """Each long paragraph of a training article, summarised by the article's title; every 5th held out."""
    splits: dict[str, list[dict[str, str]]] = {"train": [], "test": []}
    for article in articles:
        if article.get("split") != "train":
            continue
        paragraphs = [p.strip() for p in article["text"].split("\n")
                      if len(p.split()) >= MIN_WORDS and not p.lstrip().startswith("=")]
        for i, paragraph in enumerate(paragraphs):
            split = "test" if i % HELD_OUT == HELD_OUT - 1 else "train"
            splits[split].append({"document": paragraph, "summary": article["title"], "topic": article["title"]})
    return splits


def build_title_pairs(ctx: BuildContext) -> None:
    """Wikipedia paragraphs -> their article's title, from wiki-sample's training articles (a second)."""
    splits = title_pairs(read_jsonl(Path(ctx.inputs["wiki-sample"]) / "articles.jsonl"))
    sizes = {split: write_jsonl(ctx.out / f"{split}.jsonl", rows) for split, rows in splits.items()}
    meta = {"task": "the title of a Wikipedia article from one of its paragraphs", "generator": "wiki-sample titles",
            "sizes": sizes, "topics": len({r["topic"] for r in splits["train"]})}
    _write(ctx.out / "meta.json", json.dumps(meta, indent=2) + "\n")


#: column names of the summarisation data sets the online provider knows
SUMMARY_COLUMNS = (("document", "summary"), ("article", "highlights"), ("text", "summary"), ("dialogue", "summary"))


def build_online_summaries(ident: str) -> Any:
    """A hub summarisation corpus (XSum, CNN/DailyMail, ...) as train/test JSON lines."""

    def build(ctx: BuildContext) -> None:
        from datasets import load_dataset

        path, _, config = ident.partition(":")
        ctx.progress(f"{ctx.asset.name}: downloading {ident} with datasets", None)
        data = load_dataset(path, config or None)
        columns = list(data["train"].column_names) if "train" in data else []
        doc, summ = next(((d, s) for d, s in SUMMARY_COLUMNS if d in columns and s in columns), (None, None))
        if doc is None or summ is None or "test" not in data:
            raise AssetError(f"{ident} needs train and test splits with one of the column pairs {SUMMARY_COLUMNS}")
        sizes = {}
        for split in ("train", "test"):
            limit = ONLINE["max_train"] if split == "train" else ONLINE["max_eval"]
            rows = data[split].select(range(min(limit, len(data[split]))))
            sizes[split] = write_jsonl(ctx.out / f"{split}.jsonl", (
                {"document": str(d), "summary": str(s)} for d, s in zip(rows[doc], rows[summ], strict=True)))
        meta = {"task": f"{summ} of {doc}", "generator": f"hf-dataset:{ident}", "sizes": sizes}
        _write(ctx.out / "meta.json", json.dumps(meta, indent=2) + "\n")

    return build


# -- a small pre-trained encoder-decoder -------------------------------------------------------------

MODEL = "seq2seq-small"
SPECIAL_BART = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
#: the model (BART layout, 1.3 M parameters): BartConfig's keyword arguments
BART: dict[str, Any] = {
    "vocab_size": 2048, "d_model": 128, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
    "decoder_attention_heads": 4, "encoder_ffn_dim": 512, "decoder_ffn_dim": 512, "max_position_embeddings": 256,
    "dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0, "scale_embedding": True}


class Pretraining(TypedDict):
    """BART's denoising pre-training (one thread, fixed seeds): written into the asset's README."""

    steps: int
    batch_size: int
    chunk: int
    lr: float
    warmup: int
    mask_ratio: float
    poisson_lambda: float
    seed: int


PRETRAIN: Pretraining = {"steps": 1200, "batch_size": 16, "chunk": 46, "lr": 1e-3, "warmup": 100, "mask_ratio": 0.3,
                         "poisson_lambda": 3.0, "seed": 0}


def pretraining_texts(inputs: Mapping[str, Path]) -> list[str]:
    """The training documents of summarisation-pairs (never its test ones) and the Lee background corpus."""
    docs = [r["document"] for r in read_jsonl(Path(inputs[SUMMARIES]) / "train.jsonl")]
    lee = Path(inputs["lee-corpus"]) / "train.txt"
    return list(dict.fromkeys(docs)) + [t for t in lee.read_text(encoding="utf-8").splitlines() if t.strip()]


def bart_tokenizer(texts: list[str]) -> Any:
    """Byte-level BPE with BART's special tokens and its "<s> ... </s>" template."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=BART["vocab_size"], special_tokens=SPECIAL_BART, min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", mask_token="<mask>", model_max_length=BART[
                                       "max_position_embeddings"])


def infill(ids: list[int], rng: Any, mask_id: int) -> list[int]:
    """BART's text infilling: spans of Poisson length cover ``mask_ratio`` of the tokens, one <mask> each."""
    import numpy as np

    covered = np.zeros(len(ids), dtype=bool)
    while covered.sum() < round(PRETRAIN["mask_ratio"] * len(ids)):
        span = max(1, min(int(rng.poisson(PRETRAIN["poisson_lambda"])), len(ids)))
        start = int(rng.integers(0, len(ids) - span + 1))
        covered[start:start + span] = True
    out: list[int] = []
    for i, token in enumerate(ids):
        if not covered[i]:
            out.append(token)
        elif i == 0 or not covered[i - 1]:
            out.append(mask_id)
    return out


def pretrain(model: Any, chunks: list[list[int]], ctx: BuildContext) -> None:
    import numpy as np
    import torch

    rng = np.random.default_rng(PRETRAIN["seed"])
    steps, size = PRETRAIN["steps"], PRETRAIN["batch_size"]
    optimiser = torch.optim.AdamW(model.parameters(), lr=PRETRAIN["lr"], weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / PRETRAIN["warmup"]) * max(0.1, 1 - s / steps))
    bos, pad, eos = 0, 1, 2
    model.train()
    for step in range(steps):
        batch = [chunks[i] for i in rng.integers(0, len(chunks), size)]
        sources = [[bos, *infill(c, rng, 4), eos] for c in batch]
        targets = [[bos, *c, eos] for c in batch]
        src = torch.tensor([s + [pad] * (max(map(len, sources)) - len(s)) for s in sources])
        labels = torch.tensor([t + [-100] * (max(map(len, targets)) - len(t)) for t in targets])
        loss = model(input_ids=src, attention_mask=(src != pad).long(), labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        if step % 50 == 0:
            ctx.progress(f"{MODEL}: denoising step {step}/{steps}, loss {loss.item():.2f}", 0.1 + 0.85 * step / steps)


def build_small_bart(ctx: BuildContext) -> None:
    """A 1.3 M-parameter BART pre-trained by text infilling on real text (about 3 minutes on 2 cores)."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig

    texts = pretraining_texts(ctx.inputs)
    ctx.progress(f"{MODEL}: training a byte-level BPE tokenizer on {len(texts)} texts", 0.02)
    tokenizer = bart_tokenizer(texts)
    encoded = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    chunks = [e.ids[i:i + PRETRAIN["chunk"]] for e in encoded
              for i in range(0, len(e.ids), PRETRAIN["chunk"]) if len(e.ids[i:i + PRETRAIN["chunk"]]) >= 8]
    torch.manual_seed(PRETRAIN["seed"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: a fixed order of sums, and no oversubscription on shared cores
    try:
        config = BartConfig(**BART, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                            forced_eos_token_id=2)
        model = BartForConditionalGeneration(config)
        pretrain(model, chunks, ctx)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.generation_config = GenerationConfig(decoder_start_token_id=2, bos_token_id=0, eos_token_id=2,
                                               pad_token_id=1, forced_eos_token_id=2)
    model.save_pretrained(ctx.out)
    tokenizer.save_pretrained(ctx.out)
    _write(ctx.out / "README.txt", (
        f"A small BART pre-trained by grader with text infilling (Lewis et al. 2019) on {len(texts)} texts: the "
        "training documents of summarisation-pairs (Wikipedia, CC BY-SA 3.0) and the Lee background corpus.\n"
        f"Model: {json.dumps(BART)}\nPre-training: {json.dumps(PRETRAIN)}\n"
        "Special tokens: <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4; decoder_start_token_id=2 (as BART).\n"))


def seq2seq_assets() -> list[Asset]:
    return [
        Asset(PARALLEL, "text", "English -> Spanish number words (23,000 pairs) with word-level tokenizers",
              "generated text (facts: numbers); num2words is LGPL-2.1", "num2words cardinals en/es, recipe 1",
              build_number_pairs, size_mb=1.3, modules=("num2words", "tokenizers"),
              install="pip install num2words tokenizers", recipe="1"),
        Asset(SUMMARIES, "text", "Wikipedia paragraphs, each summarised by its article's title (train/test JSON lines)",
              "CC BY-SA 3.0 (Wikipedia, from wiki-sample)", "wiki-sample articles.jsonl, recipe 1", build_title_pairs,
              size_mb=2.5, depends=("wiki-sample",), recipe="1"),
        Asset(MODEL, "model", "a small BART (1.3 M parameters) pre-trained here by text infilling",
              "CC BY-SA 3.0 (trained on Wikipedia text) and research use (Lee corpus)",
              "trained by grader: BART text infilling on summarisation-pairs train documents + lee-corpus",
              build_small_bart, size_mb=6, modules=("transformers", "tokenizers", "torch", "numpy"),
              install="pip install transformers tokenizers torch", depends=(SUMMARIES, "lee-corpus"), recipe="2"),
    ]


def online_parallel(ref: str) -> Asset:
    scheme, sep, ident = ref.partition(":")
    if not sep or scheme != "hf-dataset":
        raise AssetError(f"{PARALLEL} maps to a translation data set: 'hf-dataset:PATH:CONFIG', not {ref!r}")
    return Asset(PARALLEL, "text", f"{ident} (parallel text with BPE tokenizers, online)",
                 f"see the licence of {ident} on its hub page", f"hf-dataset:{ident}", build_online_pairs(ident),
                 provider="online-parallel", modules=("datasets", "tokenizers"), install="pip install datasets",
                 priority=5)


def online_summaries(ref: str) -> Asset:
    scheme, sep, ident = ref.partition(":")
    if not sep or scheme != "hf-dataset":
        raise AssetError(f"{SUMMARIES} maps to a summarisation data set: 'hf-dataset:PATH[:CONFIG]', not {ref!r}")
    return Asset(SUMMARIES, "text", f"{ident} (document/summary pairs, online)",
                 f"see the licence of {ident} on its hub page", f"hf-dataset:{ident}", build_online_summaries(ident),
                 provider="online-summaries", modules=("datasets",), install="pip install datasets", priority=5)


@hookimpl
def grader_register_assets(registry: AssetRegistry, config: AssetConfig) -> None:
    for asset in seq2seq_assets():
        registry.add(asset)
    if config.online.get(PARALLEL):
        registry.add(online_parallel(config.online[PARALLEL]))
    if config.online.get(SUMMARIES):
        registry.add(online_summaries(config.online[SUMMARIES]))
