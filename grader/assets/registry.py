"""Assets by name and provider: what an asset is, the cache configuration, and the registry plugins fill."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.config import project_file, project_table
from grader.errors import GraderError, PluginError
from grader.registry import Registry

ENV_DIR = "GRADER_ASSETS_DIR"
#: ``GRADER_ASSET_ENCODER_SMALL=hf:distilbert-base-uncased`` maps one asset to a hub id (empty: offline)
ENV_PREFIX = "GRADER_ASSET_"
MANIFEST = "asset.json"
STEPS = ".grader-steps"
#: what an asset's folder holds, by kind (online providers must produce the same layout)
KINDS = {
    "model": "a Hugging Face model folder: config.json, *.safetensors, tokenizer files",
    "vectors": "vectors.txt: one word per line followed by its values (GloVe text format, no header)",
    "text": "train.txt, and valid.txt, test.txt where the source has them: plain UTF-8 text",
    "labelled-text": "sentences.tsv: label<TAB>text per line, label 0 (negative) or 1 (positive)",
    "word-lists": "benchmark word lists (analogy questions, word-similarity pairs)",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

#: progress callback: (message, fraction done in [0, 1] or None when unknown)
Progress = Callable[[str, float | None], None]


def quiet(message: str, fraction: float | None) -> None:
    """The default progress callback: say nothing."""


class AssetError(GraderError):
    """An asset that is unknown, cannot be prepared here, or failed to build."""


@dataclass
class BuildContext:
    """What a builder gets: the folder to fill, its prepared inputs, a progress callback.

    ``out`` is kept when a build is interrupted; a builder that splits its work into named steps
    (``if ctx.pending("convert"): ...; ctx.finished("convert")``) resumes where it stopped.
    """

    asset: Asset
    out: Path
    inputs: Mapping[str, Path]
    progress: Progress = quiet

    def pending(self, step: str) -> bool:
        return not (self.out / STEPS / step).exists()

    def finished(self, step: str) -> None:
        (self.out / STEPS).mkdir(exist_ok=True)
        (self.out / STEPS / step).touch()


@dataclass(frozen=True)
class Asset:
    """One named asset from one provider.

    :ivar kind: one of :data:`KINDS`: the layout of the prepared folder
    :ivar source: where the bytes come from (a package, a file in it, a hub id)
    :ivar build: fills ``ctx.out``; may raise :class:`AssetError` with advice
    :ivar size_mb: the prepared size, roughly, shown before preparing
    :ivar modules: top-level modules the build imports; ``install`` says how to get them
    :ivar depends: assets whose prepared folders the build reads (``ctx.inputs``)
    :ivar recipe: bump when the build changes, so older caches are rebuilt
    :ivar priority: when several providers register one name, the lowest wins
    """

    name: str
    kind: str
    summary: str
    licence: str
    source: str
    build: Callable[[BuildContext], None] = field(repr=False, compare=False)
    provider: str = "offline"
    size_mb: float = 0.0
    modules: tuple[str, ...] = ()
    install: str = ""
    depends: tuple[str, ...] = ()
    recipe: str = "1"
    priority: int = 50

    @property
    def key(self) -> str:
        """The folder name under ``<cache>/<name>/``: one per provider and source."""
        if self.provider == "offline":
            return "offline"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.provider}-{self.source}")[:120]

    def missing(self) -> str:
        """Why this asset cannot be built here (a module is not installed), or ``""``."""
        absent = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if not absent:
            return ""
        hint = f" ({self.install})" if self.install else ""
        return f"needs the Python module(s) {', '.join(absent)}{hint}"


@dataclass(frozen=True)
class AssetConfig:
    """Where the cache is and which assets a course maps to hub ids (online providers).

    ``[tool.grader.assets]`` in ./pyproject.toml maps names to references such as
    ``"hf:distilbert-base-uncased"``; ``GRADER_ASSET_<NAME>`` overrides one (empty: back to offline).
    """

    cache_dir: Path
    online: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> AssetConfig:
        env = os.environ if environ is None else environ
        online: dict[str, str] = {}
        mapped = project_table(cwd).get("assets", {})
        if not isinstance(mapped, dict) or not all(isinstance(v, str) for v in mapped.values()):
            raise GraderError(f"{project_file(cwd)}: [tool.grader.assets] maps asset names to hub ids (strings)")
        online.update(mapped)
        for key, value in env.items():
            if key.startswith(ENV_PREFIX):
                online[key[len(ENV_PREFIX):].lower().replace("_", "-")] = value
        online = {k: v.strip() for k, v in online.items() if v.strip()}
        return cls(cache_dir=default_cache_dir(env), online=online)


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$GRADER_ASSETS_DIR``, else ``$XDG_CACHE_HOME/grader/assets``, else ``~/.cache/grader/assets``."""
    env = os.environ if environ is None else environ
    if env.get(ENV_DIR):
        return Path(env[ENV_DIR]).expanduser().resolve()
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return (base / "grader" / "assets").resolve()


class AssetRegistry(Registry[dict[str, Asset]]):
    """Assets by name; a name may come from several providers, and the lowest priority is used.

    The common :class:`~grader.registry.Registry`, keyed by name, holds each name's assets by provider.
    """

    kind = "asset"

    def __init__(self, config: AssetConfig | None = None) -> None:
        super().__init__()
        self.config = config or AssetConfig.load()

    def add(self, asset: Asset) -> None:  # type: ignore[override]  # one asset, filed under its provider
        if not _NAME.match(asset.name):
            raise PluginError(f"asset name {asset.name!r} must be lower-case letters, digits and dashes")
        if asset.kind not in KINDS:
            raise PluginError(f"asset {asset.name!r}: kind must be one of {', '.join(KINDS)}")
        providers = self._items.setdefault(asset.name, {})
        if asset.provider in providers:
            raise PluginError(f"two plugins register the asset {asset.name!r} for provider {asset.provider!r}")
        providers[asset.provider] = asset

    def get(self, name: str, provider: str | None = None) -> Asset:  # type: ignore[override]
        providers = super().get(name)  # an unknown name lists the known ones
        if provider is not None and provider in providers:
            return providers[provider]
        return min(providers.values(), key=lambda a: a.priority)

    def providers(self, name: str) -> list[Asset]:
        return sorted(self._items.get(name, {}).values(), key=lambda a: a.priority)

    def __iter__(self) -> Iterator[Asset]:  # type: ignore[override]  # the chosen asset of each name
        return iter([self.get(name) for name in sorted(self._items)])

    @property
    def root(self) -> Path:
        return self.config.cache_dir

    def path(self, asset: Asset | str) -> Path:
        """Where ``asset`` is (or will be) prepared."""
        a = self.get(asset) if isinstance(asset, str) else asset
        return self.root / a.name / a.key

    def status(self, asset: Asset) -> str:
        """``ready``, ``outdated``, ``not prepared``, or ``unavailable: <why>``."""
        manifest = read_manifest(self.path(asset))
        if manifest is not None:
            return "ready" if is_current(manifest, asset) else "outdated"
        why = asset.missing()
        return f"unavailable: {why}" if why else "not prepared"

    def inputs(self, asset: Asset) -> dict[str, Path]:
        """Where the assets ``asset`` is built from are prepared (same provider where there is one)."""
        return {dep: self.path(self.get(dep, provider=asset.provider)) for dep in asset.depends}

    def closure(self, names: Iterable[str]) -> list[Asset]:
        """The named assets and everything they depend on, dependencies first."""
        order: list[Asset] = []
        seen: set[tuple[str, str]] = set()

        def visit(asset: Asset, trail: tuple[str, ...]) -> None:
            if asset.name in trail:
                raise PluginError(f"assets depend on each other in a cycle: {' -> '.join([*trail, asset.name])}")
            if (asset.name, asset.provider) in seen:
                return
            for dep in asset.depends:
                visit(self.get(dep, provider=asset.provider), (*trail, asset.name))
            seen.add((asset.name, asset.provider))
            order.append(asset)

        for name in names:
            visit(self.get(name), ())
        return order


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_current(manifest: Mapping[str, Any], asset: Asset) -> bool:
    return manifest.get("recipe") == asset.recipe and manifest.get("source") == asset.source
