"""Unpacking untrusted zip archives (submissions, LMS class exports) without trusting them."""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

#: compression methods zipfile can read (anything else is refused by name, not met mid-read)
READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                    zipfile.ZIP_LZMA: "lzma"}
#: what a damaged member raises while it is read: the archive's fault, never the grader's
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)


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
    if not name.strip("/") or not parts or "\0" in name:
        raise ArchiveError(f"{archive} holds a member with an empty name; zip the files again")
    if name.startswith(("/", "\\")) or ".." in parts or ":" in name or "\\" in name:
        raise ArchiveError(f"{archive} contains the unsafe path {name!r}; archives must hold relative paths only")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArchiveError(f"{archive} contains a symbolic link ({name}); archives must hold regular files only")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{name} in {archive} is encrypted; zip the files again without a password")
    if info.compress_type not in READABLE_METHODS:
        raise ArchiveError(f"{name} in {archive} uses compression method {info.compress_type}, which cannot be "
                           f"read; zip the files again with an ordinary zip tool (deflate)")
    ratio = info.file_size / info.compress_size if info.compress_size else 0.0
    if info.file_size > limits.file_bytes or ratio > limits.ratio:
        raise ArchiveError(f"{name} in {archive} is too large once unpacked (a zip bomb?)")


def _check_layout(archive: str, members: list[zipfile.ZipInfo]) -> None:
    """Refuse a name that is both a file and a folder (``x`` and ``x/y.py``): one would clobber the other."""
    files: dict[tuple[str, ...], str] = {}
    folders: set[tuple[str, ...]] = set()
    for info in members:
        parts = PurePosixPath(info.filename).parts
        folders.update(parts[:i] for i in range(1, len(parts)))
        if info.is_dir():
            folders.add(parts)
        else:
            files[parts] = info.filename
    clash = sorted(set(files) & folders)
    if clash:
        name = files[clash[0]]
        raise ArchiveError(f"{archive} holds both a file and a folder named {name!r}; rename one and zip again")


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, archive: str, total: int,
                 limits: ArchiveLimits) -> int:
    """Write one member to ``target``, counting bytes as they are read; returns the new total."""
    with target.open("wb") as out:
        try:
            with zf.open(info) as src:
                while chunk := src.read(1 << 16):
                    total += len(chunk)
                    if total > limits.total_bytes:
                        raise ArchiveError(f"{archive} unpacks to more than {limits.total_bytes // 10**6} MB")
                    out.write(chunk)
        except _CORRUPT as exc:
            raise ArchiveError(f"{info.filename} in {archive} is corrupt and cannot be unpacked ({exc}); "
                               "zip the files again") from None
    return total


def safe_extract(archive: Path, dest: Path, limits: ArchiveLimits, keep_times: bool = False) -> None:
    """Unpack ``archive`` into ``dest`` or raise :class:`ArchiveError`.

    Refused: absolute or ``..`` paths (zip-slip), links, empty names, a name that is both a file and a
    folder, encrypted members, unknown compression methods, damaged members (bad CRC, corrupt streams,
    headers that disagree), too many entries, members or totals over the limits (counted while reading,
    never trusted from headers), suspicious compression ratios.
    ``keep_times`` keeps each member's recorded time (late penalties read submission times).
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, *_CORRUPT) as exc:
        raise ArchiveError(f"{archive.name} is not a readable zip archive ({exc})") from None
    with zf:
        members = zf.infolist()
        if len(members) > limits.entries:
            raise ArchiveError(f"{archive.name} holds {len(members)} entries; at most {limits.entries} are accepted")
        for info in members:
            _check_member(archive.name, info, limits)
        _check_layout(archive.name, members)
        total = 0
        for info in members:
            if info.is_dir():
                continue
            target = dest.joinpath(*PurePosixPath(info.filename).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            total = _copy_member(zf, info, target, archive.name, total, limits)
            if keep_times:
                try:
                    stamp = datetime(*info.date_time).timestamp()
                except ValueError:  # a month or day of 0 in the header: keep the time of unpacking
                    continue
                os.utime(target, (stamp, stamp))
