"""The online provider: assets a course maps to hub ids, for users with internet (and GPUs).

A course opts in per asset, in its pyproject.toml (or with ``GRADER_ASSET_<NAME>`` variables)::

    [tool.grader.assets]
    encoder-small = "hf:distilbert-base-uncased"          # a Hugging Face model (hf:ORG/NAME@REVISION)
    word-vectors = "gensim:glove-wiki-gigaword-100"        # a gensim-data set of vectors
    wiki-sample = "hf-dataset:Salesforce/wikitext:wikitext-103-raw-v1"  # a data set (PATH[:CONFIG])

A reference without a scheme takes the one of the asset's kind (model: ``hf``, vectors: ``gensim``,
text: ``hf-dataset``).  Every builder writes the same layout as the offline asset of its kind
(:data:`grader.assets.KINDS`), so exercises run unchanged; the mapped asset is preferred over the
offline one (lower priority).  Downloads resume where they stopped (the hub's own caches).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grader import hookimpl
from grader.assets import Asset, AssetConfig, AssetError, AssetRegistry, BuildContext

SCHEME_KIND = {"hf": "model", "gensim": "vectors", "hf-dataset": "text"}
KIND_SCHEME = {"model": "hf", "vectors": "gensim", "text": "hf-dataset", "labelled-text": "hf-dataset"}
HF_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "tokenizer*"]
SPLITS = {"train": "train", "validation": "valid", "test": "test"}


def parse_reference(ref: str, kind: str | None) -> tuple[str, str]:
    """``"hf:org/name"`` -> ``("hf", "org/name")``; a bare id takes the scheme of ``kind``."""
    scheme, sep, ident = ref.partition(":")
    if sep and scheme in SCHEME_KIND:
        return scheme, ident
    if kind in KIND_SCHEME:
        return KIND_SCHEME[kind], ref
    raise AssetError(f"asset reference {ref!r}: start it with one of {', '.join(s + ':' for s in SCHEME_KIND)}")


def build_hf_model(ident: str) -> Callable[[BuildContext], None]:
    def build(ctx: BuildContext) -> None:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise AssetError(f"{ctx.asset.name} comes from the Hugging Face hub ({ident}), but HF_HUB_OFFLINE=1")
        from huggingface_hub import snapshot_download

        repo, _, revision = ident.partition("@")
        ctx.progress(f"{ctx.asset.name}: downloading {repo} from the Hugging Face hub", None)
        snapshot_download(repo_id=repo, revision=revision or None, local_dir=ctx.out, allow_patterns=HF_PATTERNS)
        if (ctx.out / ".cache").exists():  # the hub's download bookkeeping, not part of the asset
            shutil.rmtree(ctx.out / ".cache")
        if not any(ctx.out.glob("*.safetensors")):
            raise AssetError(f"{repo} has no safetensors weights; choose a revision or model that has them")

    return build


def build_gensim_vectors(ident: str) -> Callable[[BuildContext], None]:
    def build(ctx: BuildContext) -> None:
        import gensim.downloader

        ctx.progress(f"{ctx.asset.name}: downloading {ident} with gensim.downloader", None)
        kv = gensim.downloader.load(ident)
        write_vectors(ctx.out / "vectors.txt", list(kv.index_to_key), kv.vectors,
                      lambda f: ctx.progress(f"{ctx.asset.name}: writing vectors.txt", f))

    return build


def write_vectors(path: Path, words: list[str], vectors: Any, progress: Callable[[float], None]) -> None:
    """GloVe text format, in chunks (400,000 words of GloVe make a 160 MB file)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for start in range(0, len(words), 10000):
            fh.write("".join(f"{w} {' '.join(f'{v:.6f}' for v in vectors[i])}\n"
                             for i, w in enumerate(words[start:start + 10000], start)))
            progress(min(start + 10000, len(words)) / max(len(words), 1))
    os.replace(tmp, path)


def build_hf_dataset(ident: str, kind: str) -> Callable[[BuildContext], None]:
    def build(ctx: BuildContext) -> None:
        from datasets import load_dataset

        path, _, config = ident.partition(":")
        ctx.progress(f"{ctx.asset.name}: downloading {ident} with datasets", None)
        data = load_dataset(path, config or None)
        if kind == "labelled-text":
            write_labelled(ctx.out / "sentences.tsv", data["train"])
            return
        for split, name in SPLITS.items():
            if split in data:
                (ctx.out / f"{name}.txt").write_text("\n".join(data[split]["text"]), encoding="utf-8")

    return build


def write_labelled(path: Path, rows: Any) -> None:
    columns = list(rows.column_names)
    text_col = next((c for c in ("sentence", "text") if c in columns), None)
    if text_col is None or "label" not in columns:
        raise AssetError(f"a labelled-text data set needs a 'sentence' or 'text' column and 'label': {columns}")
    labels = rows["label"]
    if set(labels) - {0, 1}:
        raise AssetError("a labelled-text data set must have labels 0 (negative) and 1 (positive)")
    texts = [" ".join(str(t).split()) for t in rows[text_col]]
    path.write_text("".join(f"{y}\t{t}\n" for y, t in zip(labels, texts, strict=True)), encoding="utf-8")


def online_asset(name: str, ref: str, offline: Asset | None) -> Asset:
    kind = offline.kind if offline else None
    scheme, ident = parse_reference(ref, kind)
    kind = kind or SCHEME_KIND[scheme]
    if scheme == "hf":
        build, modules = build_hf_model(ident), ("huggingface_hub",)
    elif scheme == "gensim":
        build, modules = build_gensim_vectors(ident), ("gensim",)
    else:
        build, modules = build_hf_dataset(ident, kind), ("datasets",)
    summary = f"{ident} ({offline.summary if offline else kind}, online)"
    return Asset(name, kind, summary, f"see the licence of {ident} on its hub page", f"{scheme}:{ident}", build,
                 provider="online", modules=modules, install=f"pip install {modules[0].replace('_', '-')}",
                 priority=10)


@hookimpl(trylast=True)
def grader_register_assets(registry: AssetRegistry, config: AssetConfig) -> None:
    for name, ref in sorted(config.online.items()):
        offline = registry.get(name) if name in registry else None
        registry.add(online_asset(name, ref, offline))
