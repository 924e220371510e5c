"""LocalMediaAdapter: a CSV listing media files already on disk.

Required column `path` (relative to the CSV's folder, absolute, or a remote URI for the
fetch stage: http(s)://..., youtube:<id>, ytdlp:<url>); optional
`caption`, `transcript`, `lyrics`, `kind`, `split`, `start_s`, `duration_s`,
`license`, `language`. A row whose text is not UTF-8 or whose numbers do not parse
still becomes a record, ended as `failed:ingest:<class>` with the line number.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..errors import ConfigError
from ..record import KINDS, new_record
from .base import AdapterOptions, CorpusAdapter

TEXT_COLUMNS = ("caption", "transcript", "lyrics")
REQUIRED = ("path",)
REMOTE_PREFIXES = ("http://", "https://", "youtube:", "ytdlp:")


class LocalMediaOptions(AdapterOptions):
    csv: str = Field("clips.csv", description="CSV file, relative to root")
    corpus_name: str = Field("local", pattern=r"^[A-Za-z0-9_]+$", description="corpus part of every key")
    default_kind: str = Field("audio", pattern="^(audio|speech|song)$")
    default_split: str = "train"


class LocalMediaAdapter(CorpusAdapter):
    name = "local"
    Options = LocalMediaOptions
    default_license = "local"

    @property
    def csv_path(self) -> Path:
        p = Path(self.options.csv)
        return p if p.is_absolute() else Path(self.options.root) / p

    def input_files(self) -> list[Path]:
        return [self.csv_path]

    def iter_records(self) -> Iterator[dict]:
        path = self.csv_path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"{path}: corpus CSV not found") from None
        text = raw.decode("utf-8", errors="surrogateescape")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{path}: missing required column(s) {missing}; found {reader.fieldnames}")
        o = self.options
        for row in reader:
            line = reader.line_num
            media = (row.get("path") or "").strip()
            if not media:
                self.skip("empty_path")
                continue
            if media.startswith(REMOTE_PREFIXES):  # fetched by the fetch stage
                media_uri = media
            else:
                local = Path(media) if Path(media).is_absolute() else (path.parent / media)
                media_uri = str(local.resolve())
            source_id = media.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
            status, problem = None, ""
            fields: dict = {}
            try:
                start = float(row["start_s"]) if (row.get("start_s") or "").strip() else 0.0
                dur = float(row["duration_s"]) if (row.get("duration_s") or "").strip() else None
            except ValueError as exc:
                start, dur = 0.0, None
                status, problem = "failed:ingest:bad_number", f"{path}:{line}: {exc}"
            kind = (row.get("kind") or "").strip() or o.default_kind
            if kind not in KINDS:
                status, problem = "failed:ingest:bad_kind", f"{path}:{line}: kind {kind!r} not in {KINDS}"
                kind = o.default_kind
            for col in TEXT_COLUMNS + ("language", "license"):
                val = row.get(col)
                if val is None or val == "":
                    continue
                try:
                    val.encode("utf-8")
                except UnicodeEncodeError:
                    status, problem = "failed:ingest:non_utf8_text", f"{path}:{line}: column {col!r} is not UTF-8"
                    continue
                fields[col] = val
            for col in TEXT_COLUMNS:
                if col in fields:
                    fields[f"{col}_model"] = f"metadata:{o.corpus_name}"
            if start < 0:
                status, problem = "failed:ingest:bad_number", f"{path}:{line}: negative start_s"
                start = 0.0
            rec = new_record(o.corpus_name, source_id, media_uri, start_s=start, duration_s=dur,
                             split=(row.get("split") or "").strip() or o.default_split, kind=kind,
                             extra={"csv_line": line, **({"problem": problem} if problem else {})}, **fields)
            if status:
                rec["status"] = status
            yield rec
