"""DALI v1: per-song annotations at levels notes / words / lines / paragraphs, each a list
of `{'text', 'time': [t0, t1], 'freq': [f0, f1], 'index'}` (index = parent at the next
level), and info with `audio.url` (YouTube id), `audio.working`, `metadata.language`.

Read from the JSON export of each song (`<id>.json` or `<id>.json.gz`, as written by
the DALI tools' `write_json`): `{"info": {...}, "annotations": {"type": "horizontal",
"annot": {...}}}`. The distributed `<id>.gz` files are Python pickles; they are never
unpickled (untrusted code execution) and are counted as `pickle_not_read`.
"""
from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from .base import CorpusAdapter
from .common import YOUTUBE_PREFIX, CorpusFormatError, YouTubeOptions, YouTubeSource, text_encoding
from .lyrics import LyricLine, SongOptions, Timed, probe_audio_duration, song_clip_records, song_clips

log = logging.getLogger(__name__)

LANGUAGES = {"english": "en", "french": "fr", "german": "de", "spanish": "es", "italian": "it",
             "portuguese": "pt", "dutch": "nl", "polish": "pl", "finnish": "fi", "swedish": "sv"}
JSON_SUFFIXES = (".json", ".json.gz")
PICKLE_SUFFIX = ".gz"


class DALIOptions(SongOptions, YouTubeOptions):
    annotations_dir: str = Field(".", description="folder of per-song JSON annotations (relative to root)")
    mirror_pattern: str = Field("{source_id}.mp3", description="DALI tools save audio as <dali id>.mp3")
    split: str = "train"
    skip_not_working: bool = Field(True, description="skip songs whose info says audio.working is false")


def _load_json(path: Path) -> Any:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding=text_encoding("utf-8")) as fh:
                return json.load(fh)
        with open(path, encoding=text_encoding("utf-8")) as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise CorpusFormatError(f"{path}: not a DALI JSON annotation file: {exc}") from None


def _segments(path: Path, level: list[Any], name: str) -> list[tuple[str, float, float, int | None]]:
    out = []
    for i, item in enumerate(level):
        try:
            t0, t1 = (float(t) for t in item["time"])
            text = str(item["text"]).strip()
        except (KeyError, TypeError, ValueError):
            raise CorpusFormatError(f"{path}: annotations.annot.{name}[{i}] needs text and time [t0, t1]") from None
        index = item.get("index")
        out.append((text, t0, t1, int(index) if isinstance(index, int) else None))
    return out


class DALIAdapter(CorpusAdapter):
    name = "dali"
    Options = DALIOptions
    default_license = "DALI annotations CC-BY-4.0; media: YouTube terms of each video"

    def _files(self) -> list[Path]:
        folder = Path(self.options.root).absolute() / self.options.annotations_dir
        if not folder.is_dir():
            raise CorpusFormatError(f"{folder}: DALI annotation folder not found")
        return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith((*JSON_SUFFIXES, PICKLE_SUFFIX)))

    def input_files(self) -> list[Path]:
        return [p for p in self._files() if p.name.endswith(JSON_SUFFIXES)]

    def iter_records(self) -> Iterator[dict]:
        source = YouTubeSource(self.options)
        for path in self._files():
            if not path.name.endswith(JSON_SUFFIXES):
                log.warning("%s: DALI pickle files are not read (export them to JSON with the DALI tools)", path)
                self.skip("pickle_not_read")
                continue
            try:
                yield from self._song(path, source)
            except CorpusFormatError as exc:
                log.warning("%s", exc)
                self.skip("bad_annotation")

    def _song(self, path: Path, source: YouTubeSource) -> Iterator[dict]:
        doc = _load_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("info"), dict):
            raise CorpusFormatError(f"{path}: expected an object with 'info' and 'annotations'")
        info = doc["info"]
        annot = (doc.get("annotations") or {}).get("annot")
        if not isinstance(annot, dict) or not isinstance(annot.get("lines"), list):
            raise CorpusFormatError(f"{path}: annotations.annot.lines missing (only the horizontal layout is read)")
        audio = info.get("audio") or {}
        yt = str(audio.get("url") or "").strip()
        if not yt:
            self.skip("no_audio_url")
            return
        if self.options.skip_not_working and audio.get("working") is False:
            self.skip("audio_not_working")
            return
        dali_id = str(info.get("id") or path.name.split(".")[0])
        lines = self._lines(path, annot)
        uri = source.uri(yt, source_id=dali_id)
        local = not uri.startswith(YOUTUBE_PREFIX)
        song_end = probe_audio_duration(Path(uri)) if local and self.options.probe_duration else None
        clips = song_clips(lines, self.options, song_end)
        meta = info.get("metadata") or {}
        language = str(meta.get("language") or "").lower()
        yield from song_clip_records(
            self.name, dali_id, uri, clips, split=self.options.split,
            has_video=False, has_audio=True, language=LANGUAGES.get(language, language or None),
            extra={"youtube_id": yt, "artist": info.get("artist"), "title": info.get("title"),
                   "ground_truth": info.get("ground-truth"), "genres": meta.get("genres"),
                   "notes": len(annot.get("notes") or []), "paragraphs": len(annot.get("paragraphs") or [])})

    @staticmethod
    def _lines(path: Path, annot: dict) -> list[LyricLine]:
        lines = [LyricLine(text, t0, t1, end_exact=True) for text, t0, t1, _ in _segments(path, annot["lines"], "lines")]
        words = _segments(path, annot.get("words") or [], "words")
        by_index = all(idx is not None and 0 <= idx < len(lines) for *_, idx in words)
        for text, t0, t1, idx in words:
            if by_index:
                lines[idx].words.append(Timed(text, t0, t1))
            else:  # no usable parent index: the line the word's middle falls in
                mid = (t0 + t1) / 2
                owner = next((ln for ln in lines if ln.start <= mid <= ln.end), None)
                if owner is not None:
                    owner.words.append(Timed(text, t0, t1))
        return lines
