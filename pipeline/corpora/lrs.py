"""LRS2 / LRS3: `<folder>/<videoId>/<nnnnn>.{mp4,txt}` — video-to-speech pairs.

The txt holds `Text:` and `Conf:` (LRS3 v0.4 adds `Ref:`, the YouTube id); pretrain
files add a blank line and a `WORD START END ASDSCORE` table (times relative to the
clip; the table may be empty); LRS3 v0.4 adds a `FRAME X Y W H` face-box table (25 fps).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from pipeline.record import new_record

from .base import AdapterOptions, CorpusAdapter
from .common import CorpusFormatError, inside, read_text, resolve

DEFAULT_FOLDERS = {"pretrain": "train", "trainval": "train", "main": "train", "test": "test"}
WORD_HEADER = "WORD"
FRAME_HEADER = "FRAME"
WORD_COLUMNS = 4  # WORD START END ASDSCORE
VIDEO_EXT = ".mp4"

log = logging.getLogger(__name__)


class LRSTranscript:
    """One parsed LRS `.txt` file."""

    def __init__(self, text: str, conf: float | None, ref: str | None, words: list[dict], face_frames: int):
        self.text, self.conf, self.ref, self.words, self.face_frames = text, conf, ref, words, face_frames

    @classmethod
    def parse(cls, content: str, source: str = "<lrs txt>") -> LRSTranscript:
        header: dict[str, str] = {}
        words: list[dict] = []
        face_frames = 0
        table = None
        for raw in content.splitlines():
            line = raw.strip()
            if not line:
                continue
            first = line.split()[0]
            if table is None and ":" in first:
                key, _, value = line.partition(":")
                header[key.strip().lower()] = value.strip()
                continue
            if first.upper() == WORD_HEADER:
                table = "words"
                continue
            if first.upper() == FRAME_HEADER:
                table = "frames"
                continue
            if table == "words":
                cells = line.split()
                if len(cells) < WORD_COLUMNS - 1:
                    raise CorpusFormatError(f"{source}: bad word row {line!r} (expected WORD START END [ASDSCORE])")
                try:
                    words.append({"text": cells[0], "start": float(cells[1]), "end": float(cells[2])})
                except ValueError:
                    raise CorpusFormatError(f"{source}: bad word times in {line!r}") from None
            elif table == "frames":
                face_frames += 1
            elif ":" in line:
                key, _, value = line.partition(":")
                header[key.strip().lower()] = value.strip()
            else:
                raise CorpusFormatError(f"{source}: unexpected line {line!r}")
        if "text" not in header:
            raise CorpusFormatError(f"{source}: no 'Text:' line")
        conf = None
        if header.get("conf"):
            try:
                conf = float(header["conf"])
            except ValueError:
                raise CorpusFormatError(f"{source}: Conf {header['conf']!r} is not a number") from None
        return cls(header["text"], conf, header.get("ref") or None, words, face_frames)


class LRSOptions(AdapterOptions):
    folders: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FOLDERS),
                                    description="corpus folder → split; folders not on disk are ignored")
    filelists: dict[str, str] | None = Field(
        None, description="LRS2: split → list file of `<videoId>/<nnnnn>` entries inside `filelist_folder`")
    filelist_folder: str = "main"
    min_conf: float | None = Field(None, description="skip clips with a lower transcript confidence")


class LRSAdapter(CorpusAdapter):
    name = "lrs"
    Options = LRSOptions
    default_license = "LRS2/LRS3 research licence (non-commercial)"

    def _entries(self) -> Iterator[tuple[str, str, Path]]:
        """(split, source id, txt path) of every clip."""
        root = Path(self.options.root).absolute()
        if self.options.filelists:
            folder = resolve(root, self.options.filelist_folder)
            for split, rel in self.options.filelists.items():
                list_path = resolve(root, rel)
                for line in read_text(list_path).splitlines():
                    entry = line.split()[0] if line.strip() else ""
                    txt = inside(folder, entry + ".txt") if entry else None
                    if entry and txt is None:
                        self.skip("unsafe_entry")
                    elif txt is not None:
                        yield split, f"{self.options.filelist_folder}/{entry}", txt
            return
        found = False
        for name, split in self.options.folders.items():
            folder = resolve(root, name)
            if not folder.is_dir():
                continue
            found = True
            for txt in sorted(folder.glob("*/*.txt")):
                yield split, f"{name}/{txt.parent.name}/{txt.stem}", txt
        if not found:
            raise CorpusFormatError(f"{root}: none of the LRS folders {sorted(self.options.folders)} exists")

    def input_files(self) -> list[Path]:
        return [txt for _, _, txt in self._entries()]

    def iter_records(self) -> Iterator[dict]:
        for split, source_id, txt in self._entries():
            if not txt.is_file():
                self.skip("missing_transcript")
                continue
            try:
                parsed = LRSTranscript.parse(read_text(txt), str(txt))
            except CorpusFormatError as exc:
                log.warning("%s", exc)
                self.skip("bad_transcript_file")
                continue
            if self.options.min_conf is not None and (parsed.conf is None or parsed.conf < self.options.min_conf):
                self.skip("low_confidence")
                continue
            yield new_record(
                self.name, source_id, str(txt.with_suffix(VIDEO_EXT)), split=split, kind="speech", has_video=True,
                has_audio=True, transcript=parsed.text, transcript_model=f"metadata:{self.name}", language="en",
                words=parsed.words or None,
                extra={"conf": parsed.conf, "youtube_id": parsed.ref, "face_track_frames": parsed.face_frames})
