"""Clotho v2.1: `clotho_captions_<split>.csv` (file_name, caption_1..caption_5) joined with
`clotho_metadata_<split>.csv` (ISO-8859-1: keywords `;`-joined, `start_end_samples` as a
Python-repr list, per-file license). Audio lives in `<split>/<file name>`; names have spaces.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from pipeline.record import new_record

from .base import AdapterOptions, CorpusAdapter
from .common import csv_dicts, inside, literal, resolve, warn_row

CAPTION_COLUMNS = ("file_name", "caption_1", "caption_2", "caption_3", "caption_4", "caption_5")
METADATA_COLUMNS = ("file_name", "keywords", "sound_id", "sound_link", "start_end_samples", "manufacturer", "license")
CLOTHO_SPLITS = {"development": "train", "validation": "val", "evaluation": "test"}


class ClothoOptions(AdapterOptions):
    split_names: dict[str, str] = Field(default_factory=lambda: dict(CLOTHO_SPLITS),
                                        description="Clotho split → run split name")
    captions_pattern: str = Field("clotho_captions_{split}.csv")
    metadata_pattern: str | None = Field("clotho_metadata_{split}.csv", description="None: captions only")
    audio_dir_pattern: str = Field("{split}", description="folder of the split's audio (relative to root)")
    captions_encoding: str = "utf-8"
    metadata_encoding: str = Field("iso-8859-1", description="the metadata files are Latin-1")


class ClothoAdapter(CorpusAdapter):
    name = "clotho"
    Options = ClothoOptions
    default_license = "see per-file Freesound license"

    def _splits(self) -> list[tuple[str, str]]:
        wanted = self.options.splits
        return [(src, dst) for src, dst in self.options.split_names.items() if wanted is None or dst in wanted]

    def _path(self, pattern: str, split: str) -> Path:
        return resolve(self.options.root, pattern.format(split=split))

    def input_files(self) -> list[Path]:
        files = []
        for src, _ in self._splits():
            files.append(self._path(self.options.captions_pattern, src))
            if self.options.metadata_pattern:
                files.append(self._path(self.options.metadata_pattern, src))
        return files

    def _metadata(self, split: str) -> dict[str, dict]:
        if not self.options.metadata_pattern:
            return {}
        path = self._path(self.options.metadata_pattern, split)
        out = {}
        for line, row in csv_dicts(path, METADATA_COLUMNS, encoding=self.options.metadata_encoding):
            if "__bad__" in row:
                warn_row(path, line, row["__bad__"])
                self.skip("bad_metadata_row")
                continue
            try:
                span = [int(x) for x in literal(row["start_end_samples"])] if row["start_end_samples"].strip() else None
            except (ValueError, SyntaxError, TypeError):
                warn_row(path, line, f"start_end_samples {row['start_end_samples']!r} is not a list of ints")
                span = None
            out[row["file_name"]] = {
                "keywords": [k for k in row["keywords"].split(";") if k],
                "sound_id": row["sound_id"].strip(), "sound_link": row["sound_link"].strip(),
                "start_end_samples": span, "manufacturer": row["manufacturer"].strip(),
                "license": row["license"].strip() or None,
            }
        return out

    def iter_records(self) -> Iterator[dict]:
        for src, split in self._splits():
            meta = self._metadata(src)
            audio_dir = self._path(self.options.audio_dir_pattern, src)
            path = self._path(self.options.captions_pattern, src)
            for line, row in csv_dicts(path, CAPTION_COLUMNS, encoding=self.options.captions_encoding):
                if "__bad__" in row:
                    warn_row(path, line, row["__bad__"])
                    self.skip("bad_row")
                    continue
                name = row["file_name"]
                audio = inside(audio_dir, name)
                if audio is None:
                    warn_row(path, line, f"file name {name!r} escapes the audio folder")
                    self.skip("unsafe_file_name")
                    continue
                captions = [row[c].strip() for c in CAPTION_COLUMNS[1:] if row[c].strip()]
                if not captions:
                    self.skip("no_caption")
                    continue
                m = meta.get(name)
                extra = {"clotho_split": src, "file_name": name, "has_metadata": m is not None}
                if m:
                    extra.update({k: v for k, v in m.items() if k != "license"})
                yield new_record(
                    self.name, Path(name).stem, str(audio), split=split, kind="audio",
                    has_video=False, has_audio=True, license=(m or {}).get("license"),
                    caption=captions[0], captions=captions, caption_model=f"metadata:{self.name}",
                    extra=extra)
