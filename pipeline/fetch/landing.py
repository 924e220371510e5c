"""Where downloads land: `<work_dir>/<corpus>/<key>.<ext>`, written atomically.

A download is written under a temporary name in the same folder (`<key>.fetching*`),
fsynced and renamed to its final name. Keys contain no dots, so `<key>.<ext>` with a
dot-free extension is the final file and anything `<key>.fetching*` is a leftover of
a killed run, removed before the key is fetched again.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from . import classes

TEMP_MARK = ".fetching"
_SAFE_PART = re.compile(r"^[A-Za-z0-9_-]+$")
_SAFE_EXT = re.compile(r"^[A-Za-z0-9]{1,10}$")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Landing:
    """The folder of one corpus inside the stage's work dir, and the file names of one key."""

    def __init__(self, work_dir: Path, corpus: str, key: str):
        for what, value in (("corpus", corpus), ("key", key)):
            if not value or not _SAFE_PART.match(value):
                raise classes.fetch_error(classes.BAD_URI,
                                          f"{what} {value!r} is not a safe file name ([A-Za-z0-9_-]+)")
        self.folder = Path(work_dir).resolve() / corpus
        self.key = key

    def ensure_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def temp_stem(self) -> Path:
        """Prefix of the temporary names of this key (yt-dlp appends `.<ext>`, `.part`, ...)."""
        return self.folder / f"{self.key}{TEMP_MARK}"

    def temp_path(self, ext: str) -> Path:
        return self.folder / f"{self.key}{TEMP_MARK}.{safe_ext(ext)}"

    def final_path(self, ext: str) -> Path:
        return self.folder / f"{self.key}.{safe_ext(ext)}"

    def existing_final(self) -> list[Path]:
        """Final files of this key left by an earlier run (normally zero or one)."""
        if not self.folder.is_dir():
            return []
        out = []
        for p in self.folder.glob(f"{self.key}.*"):
            rest = p.name[len(self.key) + 1:]
            if p.is_file() and _SAFE_EXT.match(rest) and rest != TEMP_MARK.lstrip("."):
                out.append(p)
        return sorted(out)

    def remove_leftovers(self) -> int:
        """Delete the temporary files of this key; returns how many were removed."""
        if not self.folder.is_dir():
            return 0
        n = 0
        for p in self.folder.glob(f"{self.key}{TEMP_MARK}*"):
            if p.is_file() or p.is_symlink():
                p.unlink(missing_ok=True)
                n += 1
        return n

    def commit(self, temp: Path, ext: str) -> Path:
        """fsync the finished temp file and rename it to the final name."""
        final = self.final_path(ext)
        fsync_file(temp)
        os.replace(temp, final)
        fsync_dir(self.folder)
        return final


def safe_ext(ext: str) -> str:
    ext = (ext or "").lower().lstrip(".")
    if not _SAFE_EXT.match(ext):
        raise classes.fetch_error(classes.NOT_MEDIA, f"unusable file extension {ext!r}")
    return ext
