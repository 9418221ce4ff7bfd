"""The grading side: an exercise's asset names mapped to prepared folders, never built here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.assets.registry import AssetRegistry, is_current, read_manifest


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
        if manifest is None or not is_current(manifest, asset):
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
