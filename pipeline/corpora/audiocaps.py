"""AudioCaps: `dataset/{train,val,test}.csv`, header `audiocap_id,youtube_id,start_time,caption`.

Clips are CLIP_S seconds from start_time. val/test hold five rows (captions) per clip:
rows with the same (youtube_id, start_time) become one clip with all its captions.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from pipeline.record import new_record

from .base import CorpusAdapter
from .common import YouTubeOptions, YouTubeSource, csv_dicts, resolve, warn_row

CLIP_S = 10.0
COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
DEFAULT_FILES = {"train": "dataset/train.csv", "val": "dataset/val.csv", "test": "dataset/test.csv"}


class AudioCapsOptions(YouTubeOptions):
    files: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FILES),
                                  description="split → metadata CSV (relative to root)")
    clip_s: float = Field(CLIP_S, gt=0)
    with_video: bool = Field(True, description="clips come from YouTube videos: fetch and use the video")


class AudioCapsAdapter(CorpusAdapter):
    name = "audiocaps"
    Options = AudioCapsOptions
    default_license = "MIT (captions); media: YouTube terms of each video"

    def _files(self) -> dict[str, Path]:
        wanted = self.options.splits
        return {split: resolve(self.options.root, rel) for split, rel in self.options.files.items()
                if wanted is None or split in wanted}

    def input_files(self) -> list[Path]:
        return list(self._files().values())

    def iter_records(self) -> Iterator[dict]:
        source = YouTubeSource(self.options)
        for split, path in self._files().items():
            clips: dict[tuple[str, float], dict] = {}
            for line, row in csv_dicts(path, COLUMNS):
                if "__bad__" in row:
                    warn_row(path, line, row["__bad__"])
                    self.skip("bad_row")
                    continue
                vid, caption = row["youtube_id"].strip(), row["caption"].strip()
                try:
                    start = float(row["start_time"])
                except ValueError:
                    warn_row(path, line, f"start_time {row['start_time']!r} is not a number")
                    self.skip("bad_start")
                    continue
                if not vid or not caption:
                    self.skip("empty_id_or_caption")
                    continue
                clip = clips.setdefault((vid, start), {"captions": [], "ids": []})
                clip["captions"].append(caption)
                clip["ids"].append(row["audiocap_id"].strip())
            for (vid, start), clip in clips.items():
                yield new_record(
                    self.name, vid, source.uri(vid, start, start + self.options.clip_s), start_s=start,
                    duration_s=self.options.clip_s, split=split, kind="audio",
                    has_video=self.options.with_video, has_audio=True,
                    caption=clip["captions"][0], captions=clip["captions"], caption_model=f"metadata:{self.name}",
                    extra={"audiocap_ids": clip["ids"], "youtube_id": vid})
