"""Panda-70M: `panda70m_{training_*,validation,testing}.csv`, one row per source video.

Header `videoID,url,timestamp,caption,matching_score[,desirable_filtering,shot_boundary_detection]`;
every later cell is a Python-repr list with one element per clip (parsed with
`ast.literal_eval`, never `eval`); times are `H:MM:SS.mmm`; shot boundaries are relative
to the clip; cells can be very long. One clip record per timestamp pair.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from pipeline.record import new_record

from .base import CorpusAdapter
from .common import CorpusFormatError, YouTubeOptions, YouTubeSource, csv_dicts, literal, resolve, warn_row
from .timefmt import TimeFormatError, parse_time

REQUIRED = ("videoID", "url", "timestamp", "caption", "matching_score")
OPTIONAL_LISTS = ("desirable_filtering", "shot_boundary_detection")
DEFAULT_FILES = {"train": "panda70m_training_*.csv", "val": "panda70m_validation.csv", "test": "panda70m_testing.csv"}
DESIRABLE = "desirable"


class Panda70MOptions(YouTubeOptions):
    files: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FILES),
                                  description="split → CSV file name or glob (relative to root)")
    mirror_pattern: str = Field("{id}.mp4", description="mirror file of the whole source video")
    min_matching_score: float | None = Field(None, description="skip clips with a lower caption matching score")
    only_desirable: bool = Field(False, description="skip clips whose desirable_filtering is not 'desirable'")


class Panda70MAdapter(CorpusAdapter):
    name = "panda70m"
    Options = Panda70MOptions
    default_license = "Panda-70M research use; media: YouTube terms of each video"

    def _files(self) -> list[tuple[str, Path]]:
        root = Path(self.options.root).absolute()
        wanted = self.options.splits
        out = []
        for split, pattern in self.options.files.items():
            if wanted is not None and split not in wanted:
                continue
            matches = sorted(root.glob(pattern)) if any(c in pattern for c in "*?[") else [resolve(root, pattern)]
            if not matches:
                raise CorpusFormatError(f"{root}: no Panda-70M file matches {pattern!r} (split {split!r})")
            out.extend((split, p) for p in matches)
        return out

    def input_files(self) -> list[Path]:
        return [p for _, p in self._files()]

    def iter_records(self) -> Iterator[dict]:
        source = YouTubeSource(self.options)
        for split, path in self._files():
            for line, row in csv_dicts(path, REQUIRED):
                if "__bad__" in row:
                    warn_row(path, line, row["__bad__"])
                    self.skip("bad_row")
                    continue
                yield from self._video_clips(path, line, row, split, source)

    def _video_clips(self, path: Path, line: int, row: dict, split: str, source: YouTubeSource) -> Iterator[dict]:
        vid = row["videoID"].strip()
        try:
            spans = [(parse_time(a), parse_time(b)) for a, b in literal(row["timestamp"])]
            captions = [str(c) for c in literal(row["caption"])]
            scores = [float(s) for s in literal(row["matching_score"])]
            lists = {k: literal(row[k]) for k in OPTIONAL_LISTS if row.get(k, "").strip()}
        except (ValueError, SyntaxError, TypeError, TimeFormatError) as exc:
            warn_row(path, line, f"video {vid}: unparsable list cell: {exc}")
            self.skip("bad_row")
            return
        lengths = {len(spans), len(captions), len(scores), *(len(v) for v in lists.values())}
        if len(lengths) != 1:
            warn_row(path, line, f"video {vid}: list cells disagree on the clip count ({sorted(lengths)})")
            self.skip("list_length_mismatch", len(spans) or 1)
            return
        for i, (start, end) in enumerate(spans):
            desirable = lists["desirable_filtering"][i] if "desirable_filtering" in lists else None
            if end <= start:
                self.skip("empty_span")
                continue
            if self.options.min_matching_score is not None and scores[i] < self.options.min_matching_score:
                self.skip("low_matching_score")
                continue
            if self.options.only_desirable and desirable is not None and desirable != DESIRABLE:
                self.skip("not_desirable")
                continue
            extra: dict[str, Any] = {"youtube_id": vid, "clip_index": i, "matching_score": scores[i],
                                     "desirable_filtering": desirable}
            if "shot_boundary_detection" in lists:
                extra["shot_boundaries"] = self._shots(lists["shot_boundary_detection"][i])
            yield new_record(
                self.name, vid, source.uri(vid, start, end), start_s=start, duration_s=round(end - start, 3),
                split=split, kind="audio", has_video=True, has_audio=True,
                caption=captions[i], captions=[captions[i]], caption_model=f"metadata:{self.name}", extra=extra)

    @staticmethod
    def _shots(spans: Any) -> list[list[float]] | None:
        try:
            return [[parse_time(a), parse_time(b)] for a, b in spans]
        except (ValueError, TypeError, TimeFormatError):
            return None
