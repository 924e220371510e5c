"""Helpers shared by the corpus adapters: clear format errors, CSV reading, safe paths
under the corpus root, and local mirrors of YouTube-sourced corpora."""
from __future__ import annotations

import ast
import csv
import logging
import re
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from .base import AdapterOptions

log = logging.getLogger(__name__)

YOUTUBE_PREFIX = "youtube:"
# Panda-70M cells hold every clip of a video in one Python-repr list: far beyond csv's 128 KiB.
CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)
# Fields a mirror file-name pattern may use.
MIRROR_FIELDS = ("id", "start", "start_ms", "end", "source_id")


class CorpusFormatError(ValueError):
    """Metadata that cannot be read; the message names the file (and line) and the problem."""


def resolve(root: Path, relative: str | Path) -> Path:
    """`root / relative` as an absolute path (an absolute option path is kept as is).

    Local media URIs must be absolute: a relative URI means "needs fetching" downstream.
    """
    p = Path(relative)
    return p if p.is_absolute() else Path(root).absolute() / p


def inside(base: Path, relative: str) -> Path | None:
    """`base / relative` when it stays inside `base` (no `..`, no absolute path), else None.

    Used for every file name that comes from metadata.
    """
    if not relative or "\x00" in relative:
        return None
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        return None
    path = Path(base).absolute() / rel
    try:
        path.resolve().relative_to(Path(base).resolve())
    except ValueError:  # a symlink pointing out of the corpus
        return None
    return path


def find_unicode_variant(path: Path) -> Path:
    """`path`, or its NFC/NFD spelling when only that one exists on disk (macOS archives)."""
    if path.exists():
        return path
    for form in ("NFC", "NFD"):
        alt = Path(unicodedata.normalize(form, str(path)))
        if alt.exists():
            return alt
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise CorpusFormatError(f"{path}: {what} not found")
    return path


def text_encoding(encoding: str) -> str:
    """UTF-8 metadata is read as `utf-8-sig`: a byte-order mark must not become part of a first id."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        return path.read_text(encoding=text_encoding(encoding))
    except FileNotFoundError:
        raise CorpusFormatError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise CorpusFormatError(f"{path}: not {encoding} text ({exc.reason} at byte {exc.start})") from None


def csv_rows(path: Path, *, encoding: str = "utf-8", delimiter: str = ",",
             quoting: int = csv.QUOTE_MINIMAL) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for every non-empty row; decoding errors name the file and line."""
    csv.field_size_limit(CSV_FIELD_LIMIT)
    if not Path(path).is_file():
        raise CorpusFormatError(f"{path}: file not found")
    with open(path, newline="", encoding=text_encoding(encoding)) as fh:
        reader = csv.reader(fh, delimiter=delimiter, quoting=quoting)
        try:
            for cells in reader:
                if cells and any(c.strip() for c in cells):
                    yield reader.line_num, cells
        except UnicodeDecodeError as exc:
            raise CorpusFormatError(
                f"{path}: not {encoding} text near line {reader.line_num + 1} ({exc.reason})") from None
        except csv.Error as exc:
            raise CorpusFormatError(f"{path}: line {reader.line_num}: {exc}") from None


def csv_dicts(path: Path, required: tuple[str, ...], *, encoding: str = "utf-8",
              strip_header: bool = True) -> Iterator[tuple[int, dict[str, str]]]:
    """Header CSV → (line, {column: cell}); a missing required column is a CorpusFormatError."""
    rows = csv_rows(path, encoding=encoding)
    try:
        _, header = next(rows)
    except StopIteration:
        raise CorpusFormatError(f"{path}: empty file, expected a header with {', '.join(required)}") from None
    header = [h.strip().lstrip("\ufeff") if strip_header else h for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise CorpusFormatError(f"{path}: header lacks column(s) {', '.join(missing)} (found: {', '.join(header)})")
    for line, cells in rows:
        if len(cells) != len(header):
            yield line, {"__bad__": f"{len(cells)} cells, header has {len(header)}"}
            continue
        yield line, dict(zip(header, cells))


def literal(text: str) -> Any:
    """A Python-repr cell (`"['a', 'b']"`) parsed safely: ast.literal_eval, never eval."""
    return ast.literal_eval(text.strip())


def warn_row(path: Path, line: int, problem: str) -> None:
    log.warning("%s: line %d: %s", path, line, problem)


YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")  # every YouTube video id: 11 characters of this set


def is_youtube_id(text: str) -> bool:
    return YOUTUBE_ID.fullmatch(text) is not None


class YouTubeOptions(AdapterOptions):
    """Options of a YouTube-sourced corpus: an optional local mirror of the media."""

    mirror: Path | None = Field(None, description="folder of already-downloaded media (relative to root)")
    mirror_pattern: str = Field(
        "{id}_{start:06d}.mp4",
        description="file name in the mirror; fields: id, start (int s), start_ms, end (int s), source_id")

    @field_validator("mirror_pattern")
    @classmethod
    def _check_pattern(cls, v: str) -> str:
        try:
            name = v.format(id="x", start=1, start_ms=1000, end=11, source_id="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad pattern {v!r}: {exc!r}; allowed fields: {', '.join(MIRROR_FIELDS)}") from None
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"pattern {v!r} must name a file inside the mirror folder")
        return v


class YouTubeSource:
    """media_uri for a YouTube clip: the mirror file when it exists, else `youtube:<id>`."""

    def __init__(self, options: YouTubeOptions):
        self.mirror = resolve(options.root, options.mirror) if options.mirror is not None else None
        self.pattern = options.mirror_pattern

    def uri(self, video_id: str, start_s: float = 0.0, end_s: float | None = None,
            source_id: str | None = None) -> str:
        if self.mirror is not None:
            name = self.pattern.format(
                id=video_id, start=int(start_s), start_ms=round(start_s * 1000),
                end=int(end_s) if end_s is not None else 0, source_id=source_id or video_id)
            path = inside(self.mirror, name)
            if path is not None and path.is_file():
                return str(path)
        return YOUTUBE_PREFIX + video_id
