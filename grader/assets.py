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

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grader.config import project_file, project_table
from grader.errors import GraderError, PluginError, UnknownName
from grader.fs import Lock, force_rmtree

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


def _quiet(message: str, fraction: float | None) -> None:
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
    progress: Progress = _quiet

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


class AssetRegistry:
    """Assets by name; a name may come from several providers, and the lowest priority is used."""

    kind = "asset"

    def __init__(self, config: AssetConfig | None = None) -> None:
        self.config = config or AssetConfig.load()
        self._items: dict[str, dict[str, Asset]] = {}

    def add(self, asset: Asset) -> None:
        if not _NAME.match(asset.name):
            raise PluginError(f"asset name {asset.name!r} must be lower-case letters, digits and dashes")
        if asset.kind not in KINDS:
            raise PluginError(f"asset {asset.name!r}: kind must be one of {', '.join(KINDS)}")
        providers = self._items.setdefault(asset.name, {})
        if asset.provider in providers:
            raise PluginError(f"two plugins register the asset {asset.name!r} for provider {asset.provider!r}")
        providers[asset.provider] = asset

    def get(self, name: str, provider: str | None = None) -> Asset:
        providers = self._items.get(name)
        if not providers:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownName(f"unknown asset {name!r} (known: {known})")
        if provider is not None and provider in providers:
            return providers[provider]
        return min(providers.values(), key=lambda a: a.priority)

    def providers(self, name: str) -> list[Asset]:
        return sorted(self._items.get(name, {}).values(), key=lambda a: a.priority)

    def __iter__(self) -> Iterator[Asset]:
        return iter([self.get(name) for name in sorted(self._items)])

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

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
            return "ready" if _current(manifest, asset) else "outdated"
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


def _current(manifest: Mapping[str, Any], asset: Asset) -> bool:
    return manifest.get("recipe") == asset.recipe and manifest.get("source") == asset.source


@dataclass(frozen=True)
class Prepared:
    """The outcome of preparing one asset."""

    asset: Asset
    path: Path
    built: bool
    seconds: float
    size_bytes: int


def prepare(registry: AssetRegistry, names: Iterable[str], progress: Progress = _quiet,
            force: bool = False) -> list[Prepared]:
    """Prepare ``names`` and their dependencies; ready ones are left alone unless ``force``."""
    wanted = list(names)
    return [prepare_one(registry, asset, registry.inputs(asset), progress, force=force and asset.name in wanted)
            for asset in registry.closure(wanted)]


def prepare_one(registry: AssetRegistry, asset: Asset, inputs: Mapping[str, Path], progress: Progress = _quiet,
                force: bool = False) -> Prepared:
    """Build one asset into the cache, atomically, under its lock."""
    root = registry.root
    final = registry.path(asset)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".locks" / f"{asset.name}--{asset.key}.lock", asset, progress):
        manifest = read_manifest(final)
        if manifest is not None and _current(manifest, asset) and not force:
            return Prepared(asset, final, False, 0.0, int(manifest.get("size_bytes", 0)))
        why = asset.missing()
        if why:
            raise AssetError(f"cannot prepare {asset.name}: it {why}")
        partial = _partial_dir(root, asset, fresh=force)
        started = time.perf_counter()
        progress(f"{asset.name}: building ({asset.summary})", 0.0)
        try:
            asset.build(BuildContext(asset, partial, inputs, progress))
        except AssetError:
            raise
        except Exception as exc:  # a builder's own failure: keep the partial folder, say how to resume
            raise AssetError(f"preparing {asset.name} failed: {type(exc).__name__}: {exc} "
                             f"(finished steps are kept; rerun `grader assets prepare {asset.name}`)") from exc
        manifest = _finish(asset, partial, time.perf_counter() - started, progress)
        if final.exists():
            _discard(final, root)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(partial, final)
        os.chmod(final, 0o555)  # only now: moving a folder to another parent needs it writable
        return Prepared(asset, final, True, time.perf_counter() - started, int(manifest["size_bytes"]))


@contextlib.contextmanager
def _locked(path: Path, asset: Asset, progress: Progress) -> Iterator[None]:
    lock = Lock(path)
    if not lock.acquire(wait=False):
        progress(f"{asset.name}: another process is preparing it; waiting", None)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _partial_dir(root: Path, asset: Asset, fresh: bool) -> Path:
    """The build folder, kept from an interrupted run of the same recipe (that is the resume)."""
    partial = root / ".partial" / f"{asset.name}--{asset.key}"
    marker = partial / STEPS / "recipe"
    if partial.exists() and (fresh or not marker.is_file() or marker.read_text() != asset.recipe):
        force_rmtree(partial)
    (partial / STEPS).mkdir(parents=True, exist_ok=True)
    marker.write_text(asset.recipe)
    return partial


def _finish(asset: Asset, folder: Path, seconds: float, progress: Progress) -> dict[str, Any]:
    """Drop the step markers, checksum every file, write the manifest, make it all read-only."""
    force_rmtree(folder / STEPS)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    total = sum(p.stat().st_size for p in files) or 1
    hashes: dict[str, str] = {}
    done = 0
    for path in files:
        progress(f"{asset.name}: checksum {path.name}", done / total)
        hashes[path.relative_to(folder).as_posix()] = _sha256(path)
        done += path.stat().st_size
    digest = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(hashes.items())).encode()).hexdigest()
    manifest = {
        "name": asset.name, "kind": asset.kind, "provider": asset.provider, "source": asset.source,
        "licence": asset.licence, "summary": asset.summary, "recipe": asset.recipe,
        "sha256": digest, "size_bytes": sum(p.stat().st_size for p in files), "files": hashes,
        "build_seconds": round(seconds, 2), "prepared_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _read_only(folder)
    progress(f"{asset.name}: done", 1.0)
    return manifest


def verify(registry: AssetRegistry, asset: Asset) -> list[str]:
    """Files of a prepared asset whose checksum no longer matches its manifest (missing ones too)."""
    folder = registry.path(asset)
    manifest = read_manifest(folder)
    if manifest is None:
        return [f"{asset.name} is not prepared"]
    bad = []
    for rel, digest in dict(manifest.get("files", {})).items():
        path = folder / rel
        if not path.is_file() or _sha256(path) != digest:
            bad.append(rel)
    return bad


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _read_only(folder: Path) -> None:
    """Files 0444 and folders 0555 (the top one once it is in place): readable by a sandbox's uid."""
    for path in folder.rglob("*"):
        os.chmod(path, 0o555 if path.is_dir() else 0o444)


def _discard(folder: Path, root: Path) -> None:
    trash = root / ".trash" / uuid.uuid4().hex
    trash.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    os.rename(folder, trash)  # out of the way at once; a grader still reading it keeps its files
    force_rmtree(trash)


# -- grading side ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """An exercise's assets on this machine: prepared paths, or what is missing and how to fix it."""

    paths: dict[str, str]
    problem: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)


def resolve(registry: AssetRegistry, names: Iterable[str]) -> Resolved:
    """Map asset names to prepared folders; never builds (preparing can take minutes)."""
    paths: dict[str, str] = {}
    info: dict[str, Any] = {}
    unknown: list[str] = []
    missing: list[str] = []
    for name in names:
        if name not in registry:
            unknown.append(name)
            continue
        asset = registry.get(name)
        folder = registry.path(asset)
        manifest = read_manifest(folder)
        if manifest is None or not _current(manifest, asset):
            missing.append(name)
            continue
        paths[name] = str(folder)
        info[name] = {"provider": asset.provider, "source": asset.source, "sha256": manifest.get("sha256")}
    problem = ""
    if unknown:
        problem = f"no installed plugin provides the asset(s) {', '.join(unknown)} this exercise needs"
    elif missing:
        problem = (f"the course asset(s) {', '.join(missing)} are not prepared on this machine: run "
                   f"`grader assets prepare {' '.join(missing)}` once (cache: {registry.root})")
    return Resolved(paths, problem, info)


class AssetPaths(dict[str, Path]):
    """The ``assets`` fixture: asset name -> read-only prepared folder."""

    def __missing__(self, key: str) -> Path:
        raise KeyError(f"asset {key!r} is not declared in this exercise's exercise.toml (assets = [...])")
