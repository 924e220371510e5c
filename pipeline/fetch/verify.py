"""Is a file on disk really media? Size, container, an audio or video stream, one decoded frame."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from . import classes

# packets read while looking for the first decodable frame (codecs with delay need a few)
MAX_PACKETS_TO_FIRST_FRAME = 64


@dataclass(frozen=True)
class MediaCheck:
    path: Path
    size: int
    has_audio: bool
    has_video: bool
    container: str


def check_size(path: Path, expected_size: int | None = None, label: str | None = None) -> int:
    name = label or str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise classes.fetch_error(classes.MISSING_FILE, f"{name}: file does not exist") from None
    if not path.is_file():
        raise classes.fetch_error(classes.MISSING_FILE, f"{name}: not a regular file")
    if size == 0:
        raise classes.fetch_error(classes.EMPTY_FILE, f"{name}: file is empty")
    if expected_size is not None and size != expected_size:
        raise classes.fetch_error(classes.TRUNCATED, f"{name}: {size} bytes on disk, expected {expected_size}")
    return size


def verify_media(path: Path, expected_size: int | None = None, label: str | None = None) -> MediaCheck:
    """Raise `not_media` / `undecodable` / `empty_file` / `truncated` unless `path` decodes.

    `label` names the file in messages (e.g. the URL it came from) instead of its path.
    """
    path = Path(path)
    name = label or str(path)
    size = check_size(path, expected_size, label)
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise classes.fetch_error(classes.NOT_MEDIA, f"{name}: not a media container ({_reason(exc)})") from None
    with container:
        has_audio = bool(container.streams.audio)
        has_video = bool(container.streams.video)
        if not (has_audio or has_video):
            raise classes.fetch_error(classes.NOT_MEDIA, f"{name}: container has no audio or video stream")
        stream = container.streams.audio[0] if has_audio else container.streams.video[0]
        if not _decodes_a_frame(container, stream):
            raise classes.fetch_error(classes.UNDECODABLE,
                                      f"{name}: no {stream.type} frame decodes from stream #{stream.index}")
        return MediaCheck(path, size, has_audio, has_video, container.format.name)


def _reason(exc: Exception) -> str:
    """FFmpeg's message without the file name it appends."""
    return getattr(exc, "strerror", None) or str(exc)


def _decodes_a_frame(container, stream) -> bool:
    try:
        for n, packet in enumerate(container.demux(stream)):
            if n >= MAX_PACKETS_TO_FIRST_FRAME:
                return False
            for _frame in packet.decode():
                return True
    except (av.FFmpegError, ValueError):
        return False
    return False
