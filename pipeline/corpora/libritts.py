"""LibriTTS / LibriTTS-R: `<subset>/<spk>/<chapter>/<spk>_<chapter>_<para>_<sent>.wav` with
`.normalized.txt` / `.original.txt` beside it and a per-chapter `<spk>_<chapter>.trans.tsv`
(tab: id, original, normalized). Speakers from `speakers.tsv` and/or `SPEAKERS.txt`
(`;` comments, names may hold `|`: split on at most 4 pipes). LibriTTS-R extracts to
`LibriTTS_R/` and carries macOS `._*` files, which are skipped and counted.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from pipeline.record import new_record

from .base import AdapterOptions, CorpusAdapter
from .common import CorpusFormatError, csv_rows, read_text, resolve, warn_row

MACOS_RESOURCE_PREFIX = "._"
SPEAKERS_TXT_FIELDS = 5  # ID | SEX | SUBSET | MINUTES | NAME
SUBSET_SPLITS = {"train": "train", "dev": "val", "test": "test"}
GENDERS = {"F": "female", "M": "male"}


class LibriTTSOptions(AdapterOptions):
    variant: Literal["auto", "libritts", "libritts_r"] = Field(
        "auto", description="auto: LibriTTS-R when the root folder is named LibriTTS_R")
    subsets: list[str] | None = Field(None, description="e.g. [train-clean-100]; None: every subset folder found")


class LibriTTSAdapter(CorpusAdapter):
    name = "libritts"
    Options = LibriTTSOptions
    default_license = "CC-BY-4.0"

    @property
    def variant(self) -> str:
        if self.options.variant != "auto":
            return self.options.variant
        return "libritts_r" if Path(self.options.root).absolute().name.lower() == "libritts_r" else "libritts"

    def _subset_dirs(self) -> list[Path]:
        root = Path(self.options.root).absolute()
        if self.options.subsets is not None:
            dirs = [resolve(root, s) for s in self.options.subsets]
            missing = [str(d) for d in dirs if not d.is_dir()]
            if missing:
                raise CorpusFormatError(f"LibriTTS subset folder(s) not found: {', '.join(missing)}")
            return dirs
        dirs = sorted(d for d in root.iterdir() if d.is_dir() and d.name.split("-")[0] in SUBSET_SPLITS)
        if not dirs:
            raise CorpusFormatError(f"{root}: no LibriTTS subset folder (train-*, dev-*, test-*)")
        return dirs

    def _speaker_files(self) -> list[Path]:
        root = Path(self.options.root).absolute()
        return [p for p in (root / "speakers.tsv", root / "SPEAKERS.txt") if p.is_file()]

    def input_files(self) -> list[Path]:
        files = self._speaker_files()
        for d in self._subset_dirs():
            files.extend(sorted(d.glob("*/*/*.trans.tsv")))
        return files

    def speakers(self) -> dict[str, dict]:
        """speaker id → {gender, subset, name}; speakers.tsv wins over SPEAKERS.txt."""
        out: dict[str, dict] = {}
        root = Path(self.options.root).absolute()
        if (root / "SPEAKERS.txt").is_file():
            out.update(parse_speakers_txt(root / "SPEAKERS.txt"))
        if (root / "speakers.tsv").is_file():
            out.update(parse_speakers_tsv(root / "speakers.tsv"))
        return out

    def iter_records(self) -> Iterator[dict]:
        speakers = self.speakers()
        prefix = "R_" if self.variant == "libritts_r" else ""
        for subset_dir in self._subset_dirs():
            split = SUBSET_SPLITS.get(subset_dir.name.split("-")[0], subset_dir.name)
            for chapter in sorted(p for p in subset_dir.glob("*/*") if p.is_dir()):
                yield from self._chapter(chapter, subset_dir.name, split, speakers, prefix)

    def _chapter(self, chapter: Path, subset: str, split: str, speakers: dict, prefix: str) -> Iterator[dict]:
        texts = self._trans_tsv(chapter)
        wavs = {}
        for wav in sorted(chapter.glob("*.wav")):
            if wav.name.startswith(MACOS_RESOURCE_PREFIX):
                self.skip("macos_resource_file")
                continue
            wavs[wav.name[: -len(".wav")]] = wav
        without_audio = set(texts) - set(wavs)
        if without_audio:
            self.skip("missing_audio", len(without_audio))
        for utt, wav in wavs.items():
            original, normalized = texts.get(utt) or self._txt_files(wav)
            if not normalized and not original:
                self.skip("missing_transcript")
                continue
            spk = utt.split("_")[0]
            info = speakers.get(spk, {})
            yield new_record(
                self.name, prefix + utt, str(wav), split=split, kind="speech", has_video=False, has_audio=True,
                transcript=normalized or original, transcript_model=f"metadata:{self.name}", language="en",
                speaker=f"libritts_{spk}", gender=info.get("gender"),
                extra={"variant": self.variant, "subset": subset, "original_text": original,
                       "speaker_name": info.get("name")})

    def _trans_tsv(self, chapter: Path) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        for tsv in sorted(chapter.glob("*.trans.tsv")):
            if tsv.name.startswith(MACOS_RESOURCE_PREFIX):
                continue
            for line, cells in csv_rows(tsv, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(cells) not in (2, 3):
                    warn_row(tsv, line, f"expected id, original, normalized; got {len(cells)} cells")
                    self.skip("bad_transcript_row")
                    continue
                original = cells[1].strip()
                normalized = cells[2].strip() if len(cells) == 3 else ""
                out[cells[0].strip()] = (original, normalized)
        return out

    @staticmethod
    def _txt_files(wav: Path) -> tuple[str, str]:
        stem = wav.with_suffix("")
        texts = []
        for kind in ("original", "normalized"):
            p = stem.with_name(f"{stem.name}.{kind}.txt")
            texts.append(read_text(p).strip() if p.is_file() else "")
        return texts[0], texts[1]


def parse_speakers_txt(path: Path) -> dict[str, dict]:
    """`;`-commented `ID | SEX | SUBSET | MINUTES | NAME`; names may contain `|`."""
    out = {}
    for line_no, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        parts = [p.strip() for p in line.split("|", SPEAKERS_TXT_FIELDS - 1)]
        if len(parts) != SPEAKERS_TXT_FIELDS:
            raise CorpusFormatError(f"{path}: line {line_no}: expected ID|SEX|SUBSET|MINUTES|NAME, got {line!r}")
        spk, sex, subset, _minutes, name = parts
        out[spk] = {"gender": GENDERS.get(sex.upper()), "subset": subset, "name": name}
    return out


def parse_speakers_tsv(path: Path) -> dict[str, dict]:
    """`READER  GENDER  SUBSET  NAME` (tab separated, with header)."""
    out = {}
    rows = csv_rows(path, delimiter="\t", quoting=csv.QUOTE_NONE)
    for line, cells in rows:
        if line == 1 and cells[0].strip().upper() == "READER":
            continue
        if len(cells) < 3:
            raise CorpusFormatError(f"{path}: line {line}: expected READER, GENDER, SUBSET, NAME")
        name = "\t".join(cells[3:]).strip() if len(cells) > 3 else ""
        out[cells[0].strip()] = {"gender": GENDERS.get(cells[1].strip().upper()), "subset": cells[2].strip(),
                                 "name": name}
    return out
