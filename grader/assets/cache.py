"""Preparing assets into the cache (resumable, locked, renamed into place) and verifying them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grader.assets.registry import (
    MANIFEST,
    STEPS,
    Asset,
    AssetError,
    AssetRegistry,
    BuildContext,
    Progress,
    is_current,
    quiet,
    read_manifest,
)
from grader.fs import Lock, force_rmtree


@dataclass(frozen=True)
class Prepared:
    """The outcome of preparing one asset."""

    asset: Asset
    path: Path
    built: bool
    seconds: float
    size_bytes: int


def prepare(registry: AssetRegistry, names: Iterable[str], progress: Progress = quiet,
            force: bool = False) -> list[Prepared]:
    """Prepare ``names`` and their dependencies; ready ones are left alone unless ``force``."""
    wanted = list(names)
    return [prepare_one(registry, asset, registry.inputs(asset), progress, force=force and asset.name in wanted)
            for asset in registry.closure(wanted)]


def prepare_one(registry: AssetRegistry, asset: Asset, inputs: Mapping[str, Path], progress: Progress = quiet,
                force: bool = False) -> Prepared:
    """Build one asset into the cache, atomically, under its lock."""
    root = registry.root
    final = registry.path(asset)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".locks" / f"{asset.name}--{asset.key}.lock", asset, progress):
        manifest = read_manifest(final)
        if manifest is not None and is_current(manifest, asset) and not force:
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
