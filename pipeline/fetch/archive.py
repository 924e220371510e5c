"""Take one media member out of a downloaded archive, safely.

Nothing is ever extracted under a name taken from the archive: the chosen member's
bytes are streamed into a file name the caller chooses (inside the run directory),
so `../` members, absolute names and links cannot write anywhere else. Member names
are still checked, and an archive naming one is refused as `unsafe_archive` when that
member is the one asked for; links and devices are never extracted.
"""
from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from . import classes

MEDIA_SUFFIXES = frozenset({
    ".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff",
    ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".3gp",
})
COPY_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    is_regular: bool


def is_safe_member_name(name: str) -> bool:
    if not name or "\x00" in name or "\\" in name:
        return False
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts and not (p.parts and ":" in p.parts[0])


def _zip_members(zf: zipfile.ZipFile) -> Iterator[Member]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        is_link = (mode & 0o170000) == 0o120000
        yield Member(info.filename, info.file_size, not info.is_dir() and not is_link)


def _tar_members(tf: tarfile.TarFile) -> Iterator[Member]:
    for info in tf.getmembers():
        yield Member(info.name, info.size, info.isreg())


def choose_member(members: list[Member], wanted: str | None, archive_name: str) -> Member:
    """The member asked for (`wanted`), else the single media member of the archive."""
    if wanted is not None:
        if not is_safe_member_name(wanted):
            raise classes.fetch_error(classes.UNSAFE_ARCHIVE, f"{archive_name}: unsafe member name {wanted!r}")
        for m in members:
            if m.name == wanted:
                if not m.is_regular:
                    raise classes.fetch_error(classes.UNSAFE_ARCHIVE,
                                              f"{archive_name}: member {wanted!r} is not a regular file")
                return m
        raise classes.fetch_error(classes.ARCHIVE_MEMBER, f"{archive_name}: no member {wanted!r}")
    media = [m for m in members if m.is_regular and PurePosixPath(m.name).suffix.lower() in MEDIA_SUFFIXES
             and not PurePosixPath(m.name).name.startswith("._")]
    if not media:
        raise classes.fetch_error(classes.NOT_MEDIA, f"{archive_name}: no media member")
    if len(media) > 1:
        names = ", ".join(m.name for m in media[:5])
        raise classes.fetch_error(classes.ARCHIVE_MEMBER,
                                  f"{archive_name}: {len(media)} media members ({names}, ...); "
                                  "name one with '#<member>' in media_uri")
    if not is_safe_member_name(media[0].name):
        raise classes.fetch_error(classes.UNSAFE_ARCHIVE, f"{archive_name}: unsafe member name {media[0].name!r}")
    return media[0]


def _copy_limited(src: BinaryIO, dest: Path, limit: int | None, archive_name: str, member: str) -> int:
    n = 0
    with open(dest, "wb") as out:
        while True:
            chunk = src.read(COPY_CHUNK_BYTES)
            if not chunk:
                return n
            n += len(chunk)
            if limit is not None and n > limit:
                raise classes.fetch_error(classes.TOO_LARGE,
                                          f"{archive_name}: member {member!r} is over max_bytes={limit}")
            out.write(chunk)


def extract_member(archive: Path, suffix: str, wanted: str | None, dest: Path,
                   max_bytes: int | None) -> tuple[str, int]:
    """Write the chosen member's bytes to `dest`; returns (member name, bytes written)."""
    name = archive.name
    try:
        if suffix == ".zip":
            with zipfile.ZipFile(archive) as zf:
                member = choose_member(list(_zip_members(zf)), wanted, name)
                with zf.open(member.name) as src:
                    return member.name, _copy_limited(src, dest, max_bytes, name, member.name)
        with tarfile.open(archive, mode="r:*") as tf:
            member = choose_member(list(_tar_members(tf)), wanted, name)
            src = tf.extractfile(member.name)
            if src is None:
                raise classes.fetch_error(classes.UNSAFE_ARCHIVE, f"{name}: member {member.name!r} has no data")
            with src:
                return member.name, _copy_limited(src, dest, max_bytes, name, member.name)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zipfile.LargeZipFile) as exc:
        raise classes.fetch_error(classes.NOT_MEDIA, f"{name}: not a readable {suffix} archive ({exc})") from None
