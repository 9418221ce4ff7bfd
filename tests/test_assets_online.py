"""The online provider, with the hubs faked: the machines that test grader cannot reach them."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest

from grader.assets import AssetConfig, AssetError, AssetRegistry, prepare, read_manifest
from grader.builtin import assets_offline, assets_online


def _registry(tmp_path, online):
    reg = AssetRegistry(AssetConfig(cache_dir=tmp_path / "cache", online=online))
    assets_offline.grader_register_assets(registry=reg, config=reg.config)
    assets_online.grader_register_assets(registry=reg, config=reg.config)
    return reg


def test_assets_online_mapping_wins_over_offline(tmp_path):
    reg = _registry(tmp_path, {"encoder-small": "distilbert-base-uncased", "glove": "gensim:glove-wiki-gigaword-50"})
    encoder = reg.get("encoder-small")
    assert (encoder.provider, encoder.kind, encoder.source) == ("online", "model", "hf:distilbert-base-uncased")
    assert reg.get("encoder-small", provider="offline").provider == "offline"
    assert reg.path(encoder).name == "online-hf_distilbert-base-uncased"
    assert reg.get("glove").kind == "vectors"
    assert reg.get("word-vectors").provider == "offline"  # not mapped: stays offline
    with pytest.raises(AssetError, match="start it with one of hf:, gensim:, hf-dataset:"):
        _registry(tmp_path, {"brand-new": "some-id"})


def test_assets_online_hf_model_downloads_the_model_files(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, revision, local_dir, allow_patterns):
        calls.append((repo_id, revision, allow_patterns))
        (local_dir / "config.json").write_text('{"model_type": "distilbert"}')
        (local_dir / "model.safetensors").write_bytes(b"weights")
        (local_dir / ".cache").mkdir()
        (local_dir / ".cache" / "lock").write_text("")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    reg = _registry(tmp_path, {"encoder-small": "hf:distilbert/distilbert-base-uncased@abc123"})
    prepare(reg, ["encoder-small"])
    assert calls[0][:2] == ("distilbert/distilbert-base-uncased", "abc123") and "*.safetensors" in calls[0][2]
    manifest = read_manifest(reg.path("encoder-small"))
    assert manifest["provider"] == "online" and set(manifest["files"]) == {"config.json", "model.safetensors"}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AssetError, match="HF_HUB_OFFLINE=1"):
        prepare(reg, ["encoder-small"], force=True)


def test_assets_online_gensim_vectors_use_the_glove_layout(tmp_path, monkeypatch):
    import gensim.downloader
    import numpy as np

    fake = types.SimpleNamespace(index_to_key=["the", "cat"],
                                 vectors=np.array([[0.5, -1.0], [0.25, 2.0]], dtype=np.float32))
    monkeypatch.setattr(gensim.downloader, "load", lambda name: fake)
    reg = _registry(tmp_path, {"word-vectors": "glove-wiki-gigaword-100"})
    prepare(reg, ["word-vectors"])
    text = (reg.path("word-vectors") / "vectors.txt").read_text()
    assert text == "the 0.500000 -1.000000\ncat 0.250000 2.000000\n"


def test_assets_online_datasets_become_text_and_labelled_text(tmp_path, monkeypatch):
    class Split(dict):
        @property
        def column_names(self):
            return list(self)

    def load_dataset(path, config):
        if path == "stanfordnlp/sst2":
            return {"train": Split(sentence=["a  great film", "dull"], label=[1, 0], idx=[0, 1])}
        assert (path, config) == ("Salesforce/wikitext", "wikitext-103-raw-v1")
        return {"train": {"text": [" = A = ", "body"]}, "validation": {"text": ["v"]}, "test": {"text": ["t"]}}

    fake = types.ModuleType("datasets")
    fake.__spec__ = importlib.machinery.ModuleSpec("datasets", None)
    fake.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", fake)
    reg = _registry(tmp_path, {"wiki-sample": "hf-dataset:Salesforce/wikitext:wikitext-103-raw-v1",
                               "sentiment-sentences": "stanfordnlp/sst2"})
    prepare(reg, ["wiki-sample", "sentiment-sentences"])
    wiki = reg.path("wiki-sample")
    assert (wiki / "train.txt").read_text() == " = A = \nbody" and (wiki / "valid.txt").read_text() == "v"
    assert (reg.path("sentiment-sentences") / "sentences.tsv").read_text() == "1\ta great film\n0\tdull\n"
