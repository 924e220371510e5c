"""InternVid-10M-FLT: `*.jsonl`, one clip per line with `YoutubeID`, `Start_timestamp`,
`End_timestamp` (`HH:MM:SS.mmm`, zero padded), `Caption`, `Aesthetic_Score`, `UMT_Score`."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from pipeline.record import new_record

from .base import CorpusAdapter
from .common import CorpusFormatError, YouTubeOptions, YouTubeSource, text_encoding, warn_row
from .timefmt import TimeFormatError, parse_time

REQUIRED = ("YoutubeID", "Start_timestamp", "End_timestamp", "Caption")
SCORES = ("Aesthetic_Score", "UMT_Score")


class InternVidOptions(YouTubeOptions):
    files: list[str] = Field(default_factory=lambda: ["*.jsonl"], description="JSONL files or globs (relative to root)")
    mirror_pattern: str = Field("{id}.mp4", description="mirror file of the whole source video")
    split: str = Field("train", description="InternVid has no split: every clip gets this one")
    min_umt_score: float | None = Field(None, description="skip clips with a lower video-text UMT score")


class InternVidAdapter(CorpusAdapter):
    name = "internvid"
    Options = InternVidOptions
    default_license = "InternVid CC-BY-NC-SA-4.0 (annotations); media: YouTube terms of each video"

    def input_files(self) -> list[Path]:
        root = Path(self.options.root).absolute()
        files: list[Path] = []
        for pattern in self.options.files:
            files.extend(sorted(root.glob(pattern)))
        if not files:
            raise CorpusFormatError(f"{root}: no InternVid JSONL file matches {self.options.files}")
        return files

    def iter_records(self) -> Iterator[dict]:
        source = YouTubeSource(self.options)
        for path in self.input_files():
            with open(path, encoding=text_encoding("utf-8")) as fh:
                for line_no, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    rec = self._record(path, line_no, line, source)
                    if rec is not None:
                        yield rec

    def _record(self, path: Path, line_no: int, line: str, source: YouTubeSource) -> dict | None:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            warn_row(path, line_no, f"not JSON: {exc.msg}")
            self.skip("bad_json")
            return None
        if not isinstance(row, dict) or any(k not in row for k in REQUIRED):
            warn_row(path, line_no, f"needs keys {', '.join(REQUIRED)}")
            self.skip("missing_field")
            return None
        try:
            start, end = parse_time(row["Start_timestamp"]), parse_time(row["End_timestamp"])
        except TimeFormatError as exc:
            warn_row(path, line_no, str(exc))
            self.skip("bad_time")
            return None
        if end <= start:
            self.skip("empty_span")
            return None
        scores = {k: float(row[k]) for k in SCORES if isinstance(row.get(k), (int, float))}
        if self.options.min_umt_score is not None and scores.get("UMT_Score", float("inf")) < self.options.min_umt_score:
            self.skip("low_umt_score")
            return None
        vid = str(row["YoutubeID"]).strip()
        caption = str(row["Caption"]).strip()
        return new_record(
            self.name, vid, source.uri(vid, start, end), start_s=start, duration_s=round(end - start, 3),
            split=self.options.split, kind="audio", has_video=True, has_audio=True,
            caption=caption or None, captions=[caption] if caption else None,
            caption_model=f"metadata:{self.name}" if caption else None,
            extra={"youtube_id": vid, **{k.lower(): v for k, v in scores.items()}})
