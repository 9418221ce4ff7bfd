"""``grader assets``: list, prepare, locate and verify the named course assets (see grader.assets)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import IO, Any

import click

from grader.cli import common
from grader.cli.common import LiveLine


def _mb(size_bytes: float) -> str:
    return f"{size_bytes / 1e6:,.1f} MB" if size_bytes >= 1e5 else f"{size_bytes / 1e3:,.0f} kB"


@click.group("assets")
def assets() -> None:
    """Pre-trained models, corpora and word lists that exercises use, by name.

    \b
    grader assets list                  name, kind, provider, size, ready or not
    grader assets prepare [NAME...]     build the cache (default: every asset)
    grader assets prepare --needed      only what the installed exercises use
    grader assets where NAME            the prepared folder
    grader assets verify [NAME...]      recheck the prepared files' checksums
    The cache is $GRADER_ASSETS_DIR (default ~/.cache/grader/assets).  [tool.grader.assets] in
    ./pyproject.toml, or GRADER_ASSET_<NAME>, maps an asset to a hub id (online providers).
    """


def _users(registries: Any) -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for exercise in registries.exercises.ordered():
        for name in getattr(exercise, "assets", ()):
            used.setdefault(name, []).append(exercise.id)
    return used


@assets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def list_cmd(as_json: bool) -> None:
    """List the assets: name, kind, provider, size, status, the exercises that use them."""
    import json

    from grader.assets import read_manifest

    registries = common.registries()
    reg, used = registries.assets, _users(registries)
    items: list[dict[str, Any]] = []
    for asset in reg:
        manifest = read_manifest(reg.path(asset))
        size = manifest.get("size_bytes") if manifest else None
        items.append({"name": asset.name, "kind": asset.kind, "provider": asset.provider, "source": asset.source,
                      "licence": asset.licence, "status": reg.status(asset), "size_bytes": size,
                      "approx_mb": asset.size_mb, "path": str(reg.path(asset)), "used_by": used.get(asset.name, [])})
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    rows = [(i["name"], i["kind"], i["provider"],
             _mb(i["size_bytes"]) if i["size_bytes"] is not None else f"~{i['approx_mb']:g} MB",
             i["status"], ", ".join(i["used_by"]) or "-") for i in items]
    common.table(("NAME", "KIND", "PROVIDER", "SIZE", "STATUS", "USED BY"), rows)
    click.echo(f"cache: {reg.root}")


class ProgressBar:
    """One redrawn line on a terminal; on a log (CI), a line per phase and per quarter."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.line = LiveLine(stream)
        self._last: tuple[str, int] = ("", -1)

    def __call__(self, message: str, fraction: float | None) -> None:
        if self.line.live:
            bar = "" if fraction is None else f"[{'#' * int(20 * fraction):<20}] {100 * fraction:3.0f}% "
            self.line.show(bar + message)
            return
        phase = message.split(":", 1)[-1].strip().split(" ")[0]
        key = (message.split(":", 1)[0] + phase, -1 if fraction is None else int(4 * min(fraction, 0.999)))
        if key != self._last:
            self._last = key
            pct = "" if fraction is None else f" ({100 * fraction:.0f}%)"
            self.line.say(f"  {message}{pct}")

    def clear(self) -> None:
        self.line.clear()


@assets.command("prepare")
@click.argument("names", nargs=-1)
@click.option("--needed", is_flag=True, help="Only the assets the installed exercises declare.")
@click.option("--force", is_flag=True, help="Rebuild the named assets even when they are ready.")
def prepare_cmd(names: tuple[str, ...], needed: bool, force: bool) -> None:
    """Build NAMES (default: every asset) and what they depend on into the cache.

    Idempotent (ready assets are skipped), resumable (an interrupted build keeps its finished
    steps) and safe to run in two processes at once (one builds, the other waits).  Exit code 1
    when some asset could not be prepared.
    """
    from grader.assets import AssetError, prepare_one

    registries = common.registries()
    reg = registries.assets
    wanted = list(names) or (sorted(_users(registries)) if needed else [a.name for a in reg])
    for name in wanted:
        reg.get(name)  # unknown names: one-line usage error before anything is built
    started = time.perf_counter()
    bar = ProgressBar()
    done: dict[str, Path] = {}
    failed: list[str] = []
    built = 0
    for asset in reg.closure(wanted):
        broken = [d for d in asset.depends if reg.status(reg.get(d, provider=asset.provider)) != "ready"]
        if broken:
            failed.append(asset.name)
            click.secho(f" ✘ {asset.name:<20} skipped: needs {', '.join(broken)}, which failed", fg="red")
            continue
        try:
            result = prepare_one(reg, asset, reg.inputs(asset), bar, force=force and asset.name in wanted)
        except AssetError as exc:
            bar.clear()
            failed.append(asset.name)
            click.secho(f" ✘ {asset.name:<20} {exc}", fg="red")
            continue
        bar.clear()
        done[asset.name] = result.path
        built += result.built
        what = f"prepared in {result.seconds:.1f} s" if result.built else "already prepared"
        click.echo(f" ✔ {asset.name:<20} {what}, {_mb(result.size_bytes)}  {result.path}")
    elapsed = time.perf_counter() - started
    total = sum(_folder_bytes(p) for p in done.values())
    cache = sum(_folder_bytes(p) for p in reg.root.glob("*/*") if p.is_dir() and not p.parent.name.startswith("."))
    free = shutil.disk_usage(reg.root).free
    click.echo(f"{len(done)} asset(s) ready ({built} built) in {elapsed:.1f} s; {_mb(total)} on disk for these, "
               f"{_mb(cache)} in all in {reg.root} ({free / 1e9:,.1f} GB free)")
    if failed:
        click.secho(f"not prepared: {', '.join(failed)}", fg="red", err=True)
        sys.exit(1)


def _folder_bytes(folder: Path) -> int:
    from grader.assets import read_manifest

    manifest = read_manifest(folder)
    return int(manifest.get("size_bytes", 0)) if manifest else 0


@assets.command("where")
@click.argument("name")
def where_cmd(name: str) -> None:
    """Print the folder of asset NAME (exit code 1 when it is not prepared yet)."""
    reg = common.registries().assets
    asset = reg.get(name)
    click.echo(str(reg.path(asset)))
    status = reg.status(asset)
    if status != "ready":
        click.secho(f"{name} is {status}: run `grader assets prepare {name}`", fg="yellow", err=True)
        sys.exit(1)


@assets.command("verify")
@click.argument("names", nargs=-1)
def verify_cmd(names: tuple[str, ...]) -> None:
    """Recheck the checksums of prepared assets (default: every prepared one); exit 1 on a mismatch."""
    from grader.assets import verify

    reg = common.registries().assets
    chosen = [reg.get(n) for n in names] if names else [a for a in reg if reg.status(a) == "ready"]
    bad = 0
    for asset in chosen:
        problems = verify(reg, asset)
        bad += bool(problems)
        shown = ", ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
        click.echo(f" {'✘' if problems else '✔'} {asset.name:<20} " + (f"changed: {shown}" if problems else "ok"))
    if bad:
        sys.exit(1)
