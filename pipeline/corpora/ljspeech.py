"""LJSpeech: `metadata.csv` without header, `id|raw text|normalized text`, read with
csv.QUOTE_NONE (bare quotes occur inside the text). Audio in `wavs/<id>.wav`."""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from pipeline.record import new_record

from .base import AdapterOptions, CorpusAdapter
from .common import csv_rows, inside, resolve, warn_row

DELIMITER = "|"
SPEAKER = "ljspeech_LJ"


class LJSpeechOptions(AdapterOptions):
    metadata: str = Field("metadata.csv", description="metadata file (relative to root)")
    wav_dir: str = Field("wavs", description="audio folder (relative to root)")
    split: str = Field("train", description="LJSpeech has no split: every clip gets this one")


class LJSpeechAdapter(CorpusAdapter):
    name = "ljspeech"
    Options = LJSpeechOptions
    default_license = "public domain"

    @property
    def metadata_path(self) -> Path:
        return resolve(self.options.root, self.options.metadata)

    def input_files(self) -> list[Path]:
        return [self.metadata_path]

    def iter_records(self) -> Iterator[dict]:
        wav_dir = resolve(self.options.root, self.options.wav_dir)
        path = self.metadata_path
        for line, cells in csv_rows(path, delimiter=DELIMITER, quoting=csv.QUOTE_NONE):
            if len(cells) not in (2, 3):
                warn_row(path, line, f"expected id|raw|normalized, got {len(cells)} fields")
                self.skip("bad_row")
                continue
            utt, raw = cells[0].strip(), cells[1].strip()
            normalized = cells[2].strip() if len(cells) == 3 else ""
            wav = inside(wav_dir, f"{utt}.wav")
            if not utt or wav is None:
                warn_row(path, line, f"bad utterance id {utt!r}")
                self.skip("bad_id")
                continue
            if not (normalized or raw):
                self.skip("empty_text")
                continue
            yield new_record(
                self.name, utt, str(wav), split=self.options.split, kind="speech", has_video=False,
                has_audio=True, transcript=normalized or raw, transcript_model=f"metadata:{self.name}",
                language="en", speaker=SPEAKER, gender="female", extra={"raw_text": raw})
