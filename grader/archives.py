"""Unpacking untrusted zip archives (submissions, LMS class exports) without trusting them."""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath


class ArchiveError(Exception):
    """An archive that cannot or must not be unpacked; the message says which member and why."""


@dataclass(frozen=True)
class ArchiveLimits:
    entries: int
    file_bytes: int
    total_bytes: int
    ratio: float = 200.0


def _check_member(archive: str, info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    name = info.filename
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or ":" in name or "\\" in name:
        raise ArchiveError(f"{archive} contains the unsafe path {name!r}; archives must hold relative paths only")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArchiveError(f"{archive} contains a symbolic link ({name}); archives must hold regular files only")
    ratio = info.file_size / info.compress_size if info.compress_size else 0.0
    if info.file_size > limits.file_bytes or ratio > limits.ratio:
        raise ArchiveError(f"{name} in {archive} is too large once unpacked (a zip bomb?)")


def safe_extract(archive: Path, dest: Path, limits: ArchiveLimits, keep_times: bool = False) -> None:
    """Unpack ``archive`` into ``dest`` or raise :class:`ArchiveError`.

    Refused: absolute or ``..`` paths (zip-slip), links, too many entries, members or totals over the
    limits (counted while reading, never trusted from headers), suspicious compression ratios.
    ``keep_times`` keeps each member's recorded time (late penalties read submission times).
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{archive.name} is not a readable zip archive ({exc})") from None
    with zf:
        members = zf.infolist()
        if len(members) > limits.entries:
            raise ArchiveError(f"{archive.name} holds {len(members)} entries; at most {limits.entries} are accepted")
        total = 0
        for info in members:
            _check_member(archive.name, info, limits)
            if info.is_dir():
                continue
            target = dest.joinpath(*PurePosixPath(info.filename).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                while chunk := src.read(1 << 16):
                    total += len(chunk)
                    if total > limits.total_bytes:
                        raise ArchiveError(f"{archive.name} unpacks to more than {limits.total_bytes // 10**6} MB")
                    out.write(chunk)
            if keep_times:
                stamp = datetime(*info.date_time).timestamp()
                os.utime(target, (stamp, stamp))
