"""JamendoLyrics: `JamendoLyrics.csv` (URL,Filepath,Artist,Title,Genre,LicenseType,Language,
LyricOverlap,Polyphonic,NonLexical), audio in `mp3/<Filepath>`, per song
`annotations/lines/<stem>.csv` (start_time,end_time,lyrics_line) and
`annotations/words/<stem>.csv` (word_start,word_end,line_end — line_end is nan except at
the last word of a line). Word texts come from `lyrics/<stem>.words.txt` when present, else
from the line texts. File names are NFC unicode (looked up in NFD too).
"""
from __future__ import annotations

import logging
import math
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from .base import CorpusAdapter
from .common import CorpusFormatError, csv_dicts, find_unicode_variant, inside, read_text, resolve, warn_row
from .lyrics import LyricLine, SongOptions, Timed, probe_audio_duration, song_clip_records, song_clips

log = logging.getLogger(__name__)

SONG_COLUMNS = ("URL", "Filepath", "Artist", "Title", "Genre", "LicenseType", "Language")
LINE_COLUMNS = ("start_time", "end_time", "lyrics_line")
WORD_COLUMNS = ("word_start", "word_end")
LANGUAGES = {"english": "en", "french": "fr", "german": "de", "spanish": "es"}


class JamendoOptions(SongOptions):
    metadata: str = "JamendoLyrics.csv"
    audio_dir: str = "mp3"
    lines_dir: str = "annotations/lines"
    words_dir: str = "annotations/words"
    lyrics_dir: str = "lyrics"
    split: str = Field("test", description="JamendoLyrics is an evaluation set")


class JamendoLyricsAdapter(CorpusAdapter):
    name = "jamendo"
    Options = JamendoOptions
    default_license = "see LicenseType of each song (Creative Commons)"

    def _dir(self, rel: str) -> Path:
        return resolve(self.options.root, rel)

    def input_files(self) -> list[Path]:
        meta = resolve(self.options.root, self.options.metadata)
        files = [meta]
        for _, row in csv_dicts(meta, SONG_COLUMNS):
            stem = Path(row.get("Filepath", "")).stem
            for d in (self.options.lines_dir, self.options.words_dir):
                p = inside(self._dir(d), stem + ".csv") if stem else None
                if p is not None and find_unicode_variant(p).is_file():
                    files.append(find_unicode_variant(p))
        return files

    def iter_records(self) -> Iterator[dict]:
        meta = resolve(self.options.root, self.options.metadata)
        for line, row in csv_dicts(meta, SONG_COLUMNS):
            if "__bad__" in row:
                warn_row(meta, line, row["__bad__"])
                self.skip("bad_row")
                continue
            audio = inside(self._dir(self.options.audio_dir), row["Filepath"].strip())
            if audio is None:
                warn_row(meta, line, f"Filepath {row['Filepath']!r} escapes the audio folder")
                self.skip("unsafe_file_name")
                continue
            source_id = unicodedata.normalize("NFC", Path(row["Filepath"].strip()).stem)
            audio = find_unicode_variant(audio)
            stem = audio.stem
            try:
                lines = self._lines(stem)
            except CorpusFormatError as exc:
                log.warning("%s", exc)
                self.skip("bad_annotation")
                continue
            if lines is None:
                self.skip("no_line_annotation")
                continue
            song_end = probe_audio_duration(audio) if self.options.probe_duration and audio.is_file() else None
            clips = song_clips(lines, self.options, song_end)
            language = row["Language"].strip()
            yield from song_clip_records(
                self.name, source_id, str(audio), clips, split=self.options.split,
                license=row["LicenseType"].strip() or None, has_video=False, has_audio=True,
                language=LANGUAGES.get(language.lower(), language.lower() or None),
                extra={"artist": row["Artist"], "title": row["Title"], "genre": row["Genre"], "url": row["URL"],
                       **{k.lower(): row[k] for k in ("LyricOverlap", "Polyphonic", "NonLexical") if k in row}})

    def _lines(self, stem: str) -> list[LyricLine] | None:
        path = inside(self._dir(self.options.lines_dir), stem + ".csv")
        if path is None or not find_unicode_variant(path).is_file():
            return None
        path = find_unicode_variant(path)
        lines = []
        for line, row in csv_dicts(path, LINE_COLUMNS):
            if "__bad__" in row:
                raise CorpusFormatError(f"{path}: line {line}: {row['__bad__']}")
            try:
                start, end = float(row["start_time"]), float(row["end_time"])
            except ValueError:
                raise CorpusFormatError(f"{path}: line {line}: times {row['start_time']!r}, {row['end_time']!r}") from None
            lines.append(LyricLine(row["lyrics_line"].strip(), start, end, end_exact=True))
        self._attach_words(stem, lines)
        return lines

    def _attach_words(self, stem: str, lines: list[LyricLine]) -> None:
        path = inside(self._dir(self.options.words_dir), stem + ".csv")
        if path is None or not find_unicode_variant(path).is_file():
            return
        path = find_unicode_variant(path)
        spans = []
        for line, row in csv_dicts(path, WORD_COLUMNS):
            try:
                spans.append((float(row["word_start"]), float(row["word_end"])))
            except (KeyError, ValueError):
                raise CorpusFormatError(f"{path}: line {line}: word times are not numbers") from None
        texts = self._word_texts(stem, lines)
        if len(texts) != len(spans) or any(math.isnan(a) or math.isnan(b) for a, b in spans):
            log.warning("%s: %d word timings for %d words; words left out", path, len(spans), len(texts))
            return
        words = [Timed(t, a, b) for t, (a, b) in zip(texts, spans)]
        for ln in lines:  # a word belongs to the line its middle falls in
            ln.words = [w for w in words if ln.start <= (w.start + w.end) / 2 <= ln.end]

    def _word_texts(self, stem: str, lines: list[LyricLine]) -> list[str]:
        words_txt = inside(self._dir(self.options.lyrics_dir), stem + ".words.txt")
        if words_txt is not None and find_unicode_variant(words_txt).is_file():
            return read_text(find_unicode_variant(words_txt)).split()
        return [w for ln in lines for w in ln.text.split()]
