"""The seq2seq assets: number-word pairs built here; the online corpus builder against a faked ``datasets``."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import pytest

from grader.assets import AssetConfig, AssetError, AssetRegistry, prepare, read_manifest
from grader.builtin import assets_online, assets_seq2seq


def _registry(tmp_path, online=None):
    reg = AssetRegistry(AssetConfig(cache_dir=tmp_path / "cache", online=online or {}))
    assets_seq2seq.grader_register_assets(registry=reg, config=reg.config)
    assets_online.grader_register_assets(registry=reg, config=reg.config)
    return reg


def test_assets_seq2seq_number_pairs_are_disjoint_and_tokenized(tmp_path):
    from tokenizers import Tokenizer

    reg = _registry(tmp_path)
    prepare(reg, ["parallel-en-es"])
    folder = reg.path("parallel-en-es")
    splits = {s: assets_seq2seq.read_pairs(folder / f"{s}.txt") for s in ("train", "valid", "test")}
    assert [len(p) for p in splits.values()] == [20_000, 1_000, 2_000]
    sources = [{s for s, _ in pairs} for pairs in splits.values()]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert assets_seq2seq.number_pair(321) == ("three hundred and twenty-one", "trescientos veintiuno")
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    assert meta["generator"] == "num2words" and (meta["low"], meta["high"]) == (1, 99_999)
    source = Tokenizer.from_file(str(folder / "source-tokenizer.json"))
    target = Tokenizer.from_file(str(folder / "target-tokenizer.json"))
    for tok in (source, target):
        assert [tok.token_to_id(s) for s in assets_seq2seq.SPECIALS] == [0, 1, 2, 3]
    assert source.encode("twenty-one thousand, five").tokens == ["twenty", "-", "one", "thousand", ",", "five"]
    assert target.decode(target.encode("dieciséis mil veintiuno").ids) == "dieciséis mil veintiuno"
    manifest = read_manifest(folder)
    assert "LGPL" in manifest["licence"] and {"train.txt", "source-tokenizer.json"} <= set(manifest["files"])


def _fake_datasets(monkeypatch, calls):
    class Split:
        def __init__(self, rows):
            self.rows = rows
            self.column_names = ["translation"]

        def __len__(self):
            return len(self.rows)

        def select(self, indices):
            return Split([self.rows[i] for i in indices])

        def __getitem__(self, column):
            return [dict(r) for r in self.rows] if column == "translation" else None

    def load_dataset(path, config):
        calls.append((path, config))
        pair = [{"en": f"the {w} house", "es": f"la casa {w}"} for w in ("red", "big", "old", "white\tnew")]
        return {"train": Split(pair * 50), "validation": Split(pair[:2]), "test": Split(pair[2:])}

    fake = types.ModuleType("datasets")
    fake.__spec__ = importlib.machinery.ModuleSpec("datasets", None)
    fake.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", fake)


def test_assets_seq2seq_online_corpus_wins_and_becomes_tsv_with_bpe(tmp_path, monkeypatch):
    from tokenizers import Tokenizer

    calls = []
    _fake_datasets(monkeypatch, calls)
    reg = _registry(tmp_path, {"parallel-en-es": "hf-dataset:Helsinki-NLP/opus-100:en-es"})
    asset = reg.get("parallel-en-es")
    assert (asset.provider, asset.source) == ("online-parallel", "hf-dataset:Helsinki-NLP/opus-100:en-es")
    assert reg.get("parallel-en-es", provider="offline").provider == "offline"
    prepare(reg, ["parallel-en-es"])
    folder = reg.path(asset)
    assert calls == [("Helsinki-NLP/opus-100", "en-es")]
    assert assets_seq2seq.read_pairs(folder / "test.txt") == [("the old house", "la casa old"),
                                                              ("the white new house", "la casa white new")]
    assert len(assets_seq2seq.read_pairs(folder / "train.txt")) == 200
    target = Tokenizer.from_file(str(folder / "target-tokenizer.json"))
    assert target.token_to_id("[EOS]") == 2
    assert target.decode(target.encode("la casa roja").ids) == "la casa roja"
    assert json.loads((folder / "meta.json").read_text())["generator"] == "hf-dataset:Helsinki-NLP/opus-100:en-es"


def test_assets_seq2seq_online_reference_must_be_a_data_set(tmp_path):
    with pytest.raises(AssetError, match="hf-dataset:PATH:CONFIG"):
        _registry(tmp_path, {"parallel-en-es": "hf:Helsinki-NLP/opus-mt-en-es"})


def test_assets_seq2seq_title_pairs_hold_out_every_fifth_paragraph():
    long = " ".join(["word"] * 30)
    articles = [{"title": "Aardwolf", "split": "train", "text": "\n".join([f"{long} {i}" for i in range(7)])},
                {"title": "Short", "split": "train", "text": "too short\n== Section ==\n" + long},
                {"title": "Held", "split": "test", "text": long}]
    splits = assets_seq2seq.title_pairs(articles)
    assert [r["document"][-1] for r in splits["test"]] == ["4"]
    assert [r["summary"] for r in splits["train"]] == ["Aardwolf"] * 6 + ["Short"]
    assert all(r["document"].split()[0] == "word" for r in splits["train"])


def test_assets_seq2seq_online_summaries_take_xsum_columns(tmp_path, monkeypatch):
    class Split:
        def __init__(self, docs, sums):
            self.data = {"document": docs, "summary": sums, "id": list(range(len(docs)))}
            self.column_names = list(self.data)

        def __len__(self):
            return len(self.data["document"])

        def select(self, indices):
            return Split([self.data["document"][i] for i in indices], [self.data["summary"][i] for i in indices])

        def __getitem__(self, column):
            return self.data[column]

    fake = types.ModuleType("datasets")
    fake.__spec__ = importlib.machinery.ModuleSpec("datasets", None)
    fake.load_dataset = lambda path, config: {"train": Split(["a long story"], ["story"]),
                                              "test": Split(["Zürich news"], ["Zürich"])}
    monkeypatch.setitem(sys.modules, "datasets", fake)
    reg = _registry(tmp_path, {"summarisation-pairs": "hf-dataset:EdinburghNLP/xsum"})
    assert reg.get("summarisation-pairs").provider == "online-summaries"
    prepare(reg, ["summarisation-pairs"])
    folder = reg.path("summarisation-pairs")
    assert assets_seq2seq.read_jsonl(folder / "test.jsonl") == [{"document": "Zürich news", "summary": "Zürich"}]


def test_assets_seq2seq_small_bart_where_prepared():
    """The pre-trained BART (about 3 minutes to build): checked where `grader assets prepare` built it."""
    import os

    from grader.assets import default_cache_dir

    reg = AssetRegistry(AssetConfig(cache_dir=default_cache_dir()))
    assets_seq2seq.grader_register_assets(registry=reg, config=reg.config)
    asset = reg.get("seq2seq-small")
    if reg.status(asset) != "ready":
        if os.environ.get("GRADER_REQUIRE_ASSETS") == "1":
            pytest.fail(f"CI prepares seq2seq-small, but it is {reg.status(asset)} in {reg.root}")
        pytest.skip(f"seq2seq-small is not prepared in {reg.root} (grader assets prepare seq2seq-small)")
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = reg.path(asset)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    assert model.config.model_type == "bart" and model.config.decoder_start_token_id == 2
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    text = "Zürich café 東京 ☕"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and tokenizer.decode(ids, skip_special_tokens=True).strip() == text
    assert 1.0e6 < sum(p.numel() for p in model.parameters()) < 2.0e6
