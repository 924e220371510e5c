"""Songs: a folder of audio files, each with an `.lrc` lyrics file of the same stem.

LRC timing becomes clip lines and words; songs longer than `max_clip_s` are cut on line
boundaries (see lyrics.py). A song without timed lyrics stays one long clip that the
media stage windows.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from .base import CorpusAdapter
from .common import read_text
from .lyrics import LrcError, SongOptions, parse_lrc, probe_audio_duration, song_clip_records, song_clips
from .timefmt import TimeFormatError

AUDIO_EXTENSIONS = (".flac", ".mp3", ".wav", ".ogg", ".opus", ".m4a")
LRC_EXTENSION = ".lrc"

log = logging.getLogger(__name__)


class LRCSongsOptions(SongOptions):
    audio_extensions: list[str] = Field(default_factory=lambda: list(AUDIO_EXTENSIONS))
    recursive: bool = Field(True, description="look into sub-folders")
    keep_without_lyrics: bool = Field(False, description="keep songs that have no .lrc (as one unlabelled clip)")
    split: str = "train"
    language: str | None = Field(None, description="language of the lyrics (ISO 639-1), when known")
    lrc_encoding: str = "utf-8"


class LRCSongsAdapter(CorpusAdapter):
    name = "lrc_songs"
    Options = LRCSongsOptions
    default_license = "unknown (user-provided songs)"

    def _audio_files(self) -> list[Path]:
        root = Path(self.options.root).absolute()
        exts = {e.lower() for e in self.options.audio_extensions}
        walker = root.rglob("*") if self.options.recursive else root.glob("*")
        return sorted(p for p in walker if p.is_file() and p.suffix.lower() in exts and not p.name.startswith("._"))

    def input_files(self) -> list[Path]:
        return [a.with_suffix(LRC_EXTENSION) for a in self._audio_files() if a.with_suffix(LRC_EXTENSION).is_file()]

    def iter_records(self) -> Iterator[dict]:
        root = Path(self.options.root).absolute()
        seen: set[str] = set()
        for audio in self._audio_files():
            source_id = audio.relative_to(root).with_suffix("").as_posix()
            if source_id in seen:  # song.mp3 and song.flac share one .lrc
                self.skip("duplicate_song_stem")
                continue
            seen.add(source_id)
            lrc = audio.with_suffix(LRC_EXTENSION)
            if not lrc.is_file() and not self.options.keep_without_lyrics:
                self.skip("no_lyrics")
                continue
            doc = None
            if lrc.is_file():
                try:
                    doc = parse_lrc(read_text(lrc, self.options.lrc_encoding))
                except (LrcError, TimeFormatError) as exc:
                    log.warning("%s: %s", lrc, exc)
                    self.skip("bad_lrc")
                    continue
            song_end = probe_audio_duration(audio) if self.options.probe_duration else None
            if song_end is None and doc is not None:
                song_end = doc.length_s
            lines = doc.lines if doc else []
            clips = song_clips(lines, self.options, song_end)
            extra = {"file": audio.relative_to(root).as_posix()}
            if doc is not None:
                extra.update({k: doc.tags[k] for k in ("ar", "ti", "al") if k in doc.tags})
            yield from song_clip_records(
                self.name, source_id, str(audio), clips, extra=extra,
                unsynced_lyrics=doc.unsynced_text if doc else None, split=self.options.split,
                has_video=False, has_audio=True, language=self.options.language)
