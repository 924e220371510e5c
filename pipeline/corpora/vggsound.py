"""VGGSound: `vggsound.csv` without header, `youtube_id,start_seconds,label,split`.

Clips are CLIP_S seconds from the start; the same video id appears with other starts
(the key holds the start); labels with commas are quoted.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from pipeline.record import new_record

from .base import CorpusAdapter
from .common import YouTubeOptions, YouTubeSource, csv_rows, is_youtube_id, resolve, warn_row

CLIP_S = 10.0
COLUMNS = ("youtube_id", "start_seconds", "label", "split")


class VGGSoundOptions(YouTubeOptions):
    metadata: str = Field("vggsound.csv", description="the metadata CSV (relative to root)")
    clip_s: float = Field(CLIP_S, gt=0, description="clip length from each start")


class VGGSoundAdapter(CorpusAdapter):
    name = "vggsound"
    Options = VGGSoundOptions
    default_license = "CC-BY-4.0 (annotations); media: YouTube terms of each video"

    @property
    def csv_path(self) -> Path:
        return resolve(self.options.root, self.options.metadata)

    def input_files(self) -> list[Path]:
        return [self.csv_path]

    def iter_records(self) -> Iterator[dict]:
        source = YouTubeSource(self.options)
        clip_s = self.options.clip_s
        for line, cells in csv_rows(self.csv_path):
            if len(cells) != len(COLUMNS):
                warn_row(self.csv_path, line, f"expected {len(COLUMNS)} cells ({','.join(COLUMNS)}), got {len(cells)}")
                self.skip("bad_row")
                continue
            vid, start_text, label, split = (c.strip() for c in cells)
            try:
                start = float(start_text)
            except ValueError:
                warn_row(self.csv_path, line, f"start_seconds {start_text!r} is not a number")
                self.skip("bad_start")
                continue
            if start < 0:
                warn_row(self.csv_path, line, f"negative start_seconds {start_text!r}")
                self.skip("negative_start")
                continue
            if not is_youtube_id(vid):
                warn_row(self.csv_path, line, f"{vid!r} is not a YouTube video id (11 characters of A-Z a-z 0-9 _ -)")
                self.skip("bad_youtube_id")
                continue
            if not split:
                warn_row(self.csv_path, line, "empty split")
                self.skip("empty_split")
                continue
            yield new_record(
                self.name, vid, source.uri(vid, start, start + clip_s), start_s=start, duration_s=clip_s,
                split=split, kind="audio", has_video=True, has_audio=True, label=label,
                extra={"youtube_id": vid})
