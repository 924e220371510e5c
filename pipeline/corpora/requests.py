"""RequestsAdapter: a CSV of generation requests for `agomni generate CHECKPOINT --csv requests.csv`.

Columns (only `id` is required): `id, video, caption, transcript, lyrics, language, duration, seed`.
`video` is a path relative to the CSV's folder (or absolute); `lyrics` is a path to an `.lrc` /
`.txt` file (relative likewise) or the lyrics text itself. A request without a video needs a
`duration`. Rows whose numbers do not parse still become records, ended as
`failed:ingest:bad_number` with the line number; a repeated id ends as `filtered:duplicate_key`
(the ingest rule for repeated keys).
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from ..errors import ConfigError
from ..record import new_record
from .base import AdapterOptions, CorpusAdapter

REQUIRED = ("id",)
COLUMNS = ("id", "video", "caption", "transcript", "lyrics", "language", "duration", "seed")
LYRICS_FILE_SUFFIXES = (".lrc", ".txt")
REQUEST_SPLIT = "generate"


class RequestsOptions(AdapterOptions):
    csv: str = Field("requests.csv", description="requests CSV, relative to root")
    corpus_name: str = Field("request", pattern=r"^[A-Za-z0-9_]+$", description="corpus part of every key")


def _video_seconds(path: Path) -> float | None:
    """The video stream's length from the container (metadata only), for batching by duration."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            if not c.streams.video:
                return None
            vs = c.streams.video[0]
            if vs.duration is not None and vs.time_base is not None:
                return float(vs.duration * vs.time_base)
            return c.duration / av.time_base if c.duration is not None else None
    except Exception:  # noqa: BLE001 - the generate stage reports the real problem with the file
        return None


class RequestsAdapter(CorpusAdapter):
    name = "requests"
    Options = RequestsOptions
    default_license = "generated"

    @property
    def csv_path(self) -> Path:
        p = Path(self.options.csv)
        return p if p.is_absolute() else Path(self.options.root) / p

    def input_files(self) -> list[Path]:
        return [self.csv_path]

    def _resolve(self, value: str) -> str:
        p = Path(value)
        return str((p if p.is_absolute() else self.csv_path.parent / p).resolve())

    def iter_records(self) -> Iterator[dict]:
        path = self.csv_path
        try:
            text = path.read_bytes().decode("utf-8", errors="surrogateescape")
        except FileNotFoundError:
            raise ConfigError(f"{path}: requests CSV not found") from None
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ConfigError(f"{path}: missing required column(s) {missing}; found {header}")
        unknown = [c for c in header if c not in COLUMNS]
        if unknown:
            raise ConfigError(f"{path}: unknown column(s) {unknown}; known: {list(COLUMNS)}")
        for row in reader:
            line = reader.line_num
            rid = (row.get("id") or "").strip()
            if not rid:
                self.skip("empty_id")
                continue
            val = {c: (row.get(c) or "").strip() for c in COLUMNS}
            status, problem = None, ""
            try:
                duration = float(val["duration"]) if val["duration"] else None
                seed = int(val["seed"]) if val["seed"] else 0
            except ValueError as exc:
                duration, seed = None, 0
                status, problem = "failed:ingest:bad_number", f"{path}:{line}: {exc}"
            for col in ("caption", "transcript", "lyrics", "language"):
                try:
                    val[col].encode("utf-8")
                except UnicodeEncodeError:
                    status, problem = "failed:ingest:non_utf8_text", f"{path}:{line}: column {col!r} is not UTF-8"
                    val[col] = ""
            video = self._resolve(val["video"]) if val["video"] else None
            lyrics_file = val["lyrics"].lower().endswith(LYRICS_FILE_SUFFIXES)
            lyrics = self._resolve(val["lyrics"]) if val["lyrics"] and lyrics_file else (val["lyrics"] or None)
            seconds = duration if duration is not None else (_video_seconds(Path(video)) if video else None)
            rec = new_record(
                self.options.corpus_name, rid, video, start_s=0.0, duration_s=seconds, split=REQUEST_SPLIT,
                has_video=video is not None, caption=val["caption"] or None,
                transcript=val["transcript"] or None, lyrics=lyrics, language=val["language"] or None,
                extra={"request_id": rid, "csv_line": line, "seed": seed, "duration": duration,
                       "lyrics_is_file": bool(val["lyrics"]) and lyrics_file,
                       **({"problem": problem} if problem else {})})
            if status:
                rec["status"] = status
            yield rec
