"""Named course assets: pre-trained models, corpora and word lists that exercises ask for by name.

An exercise declares ``assets = ["encoder-small"]`` in its exercise.toml, never a path or a hub id.
Plugins register :class:`Asset` objects through ``grader_register_assets``; an asset knows how to
build its files (copy a packaged model, extract a corpus, train vectors, download from a hub).
Prepared assets live in a cache (``$GRADER_ASSETS_DIR``, default ``~/.cache/grader/assets``), one
folder per asset and provider, each with an ``asset.json`` manifest: licence, source, size and the
SHA-256 of every file.

Preparing builds into a partial folder that survives an interrupted run (finished steps are not
redone), then renames it into place, under an ``fcntl`` lock per asset: two processes preparing at
once build it once, and a reader (the grader) never sees half an asset.  Nothing here imports
torch, transformers or gensim; builders import what they need when they run.
"""

from grader.assets.cache import Prepared, prepare, prepare_one, verify
from grader.assets.registry import (
    ENV_DIR,
    ENV_PREFIX,
    KINDS,
    MANIFEST,
    Asset,
    AssetConfig,
    AssetError,
    AssetRegistry,
    BuildContext,
    Progress,
    default_cache_dir,
    read_manifest,
)
from grader.assets.resolve import AssetPaths, Resolved, resolve

__all__ = [
    "ENV_DIR", "ENV_PREFIX", "KINDS", "MANIFEST", "Asset", "AssetConfig", "AssetError", "AssetPaths", "AssetRegistry",
    "BuildContext", "Prepared", "Progress", "Resolved", "default_cache_dir", "prepare", "prepare_one",
    "read_manifest", "resolve", "verify",
]
