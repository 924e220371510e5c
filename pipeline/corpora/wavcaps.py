"""WavCaps: `json_files/<subset>/*_final.json` = `{"num_captions_per_audio": 1, "data": [...]}`.

Subsets AudioSet_SL, BBC_Sound_Effects, FreeSound, SoundBible have different record
fields. AudioSet_SL ids are listed as `.wav` but distributed as `.flac`; BBC `category`
is a Python-repr list; durations reach ~67 000 s. Clips listed in `json_files/blacklist/*.json`
(overlap with AudioCaps/Clotho test sets) are skipped and counted as `blacklisted`.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from pipeline.record import new_record

from .base import AdapterOptions, CorpusAdapter
from .common import CorpusFormatError, inside, literal, read_text, resolve

SUBSETS = ("AudioSet_SL", "BBC_Sound_Effects", "FreeSound", "SoundBible")
SUBSET_LICENSES = {
    "AudioSet_SL": "WavCaps academic use; media: YouTube terms of each video",
    "BBC_Sound_Effects": "WavCaps academic use; BBC RemArc licence (non-commercial)",
    "FreeSound": "WavCaps academic use; Creative Commons licence of each Freesound sound",
    "SoundBible": "WavCaps academic use; SoundBible licence of each sound",
}
DISTRIBUTED_EXTENSION = ".flac"
_NON_ALNUM = re.compile(r"[^a-z0-9]")


def _norm(name: str) -> str:
    return _NON_ALNUM.sub("", name.lower())


def _stem(clip_id: str) -> str:
    """`Yb0RFKhbpFJA.wav` → `Yb0RFKhbpFJA`; ids without an audio suffix are kept."""
    for ext in (".wav", ".flac", ".mp3"):
        if clip_id.lower().endswith(ext):
            return clip_id[: -len(ext)]
    return clip_id


class WavCapsOptions(AdapterOptions):
    subsets: list[str] = Field(default_factory=lambda: list(SUBSETS))
    json_dir: str = Field("json_files", description="folder with one sub-folder of *_final.json per subset")
    blacklist_glob: str | None = Field("json_files/blacklist/*.json",
                                       description="blacklist files (relative to root); None disables")
    audio_dir: str = Field("audio", description="local audio: <audio_dir>/<subset>/<id>.flac, used when present")
    split: str = Field("train", description="WavCaps has no split: every clip gets this one")
    max_duration_s: float | None = Field(None, gt=0, description="skip longer recordings (counted)")


class WavCapsAdapter(CorpusAdapter):
    name = "wavcaps"
    Options = WavCapsOptions
    default_license = "WavCaps academic use only"

    def _subset_files(self) -> dict[str, list[Path]]:
        base = resolve(self.options.root, self.options.json_dir)
        out = {}
        for subset in self.options.subsets:
            files = sorted((base / subset).glob("*_final.json"))
            if not files:
                raise CorpusFormatError(f"{base / subset}: no *_final.json for WavCaps subset {subset!r}")
            out[subset] = files
        return out

    def _blacklist_files(self) -> list[Path]:
        if not self.options.blacklist_glob:
            return []
        root = Path(self.options.root).absolute()
        return sorted(root.glob(self.options.blacklist_glob))

    def input_files(self) -> list[Path]:
        return [p for files in self._subset_files().values() for p in files] + self._blacklist_files()

    def _blacklist(self) -> dict[str, set[str]]:
        """subset (or "*" for all) → blacklisted id stems."""
        out: dict[str, set[str]] = {}
        for path in self._blacklist_files():
            data = self._load_json(path)
            groups = data.items() if isinstance(data, dict) else [("*", data)]
            for key, ids in groups:
                if not isinstance(ids, list):
                    raise CorpusFormatError(f"{path}: blacklist entry {key!r} is not a list of ids")
                subset = next((s for s in SUBSETS if _norm(s).startswith(_norm(key)) or _norm(key).startswith(_norm(s))),
                              "*")
                out.setdefault(subset, set()).update(_stem(str(i)) for i in ids)
        return out

    @staticmethod
    def _load_json(path: Path) -> Any:
        try:
            return json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise CorpusFormatError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None

    def _media_uri(self, subset: str, stem: str, item: dict) -> str:
        local_dir = resolve(self.options.root, self.options.audio_dir) / subset
        local = inside(local_dir, stem + DISTRIBUTED_EXTENSION)
        if local is not None and local.is_file():
            return str(local)
        link = str(item.get("download_link") or "")
        if link.startswith(("http://", "https://")):
            return link
        return str(local) if local is not None else ""

    def iter_records(self) -> Iterator[dict]:
        blacklist = self._blacklist()
        everywhere = blacklist.get("*", set())
        for subset, files in self._subset_files().items():
            listed = blacklist.get(subset, set()) | everywhere
            for path in files:
                doc = self._load_json(path)
                if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
                    raise CorpusFormatError(f"{path}: expected an object with a 'data' list")
                for item in doc["data"]:
                    rec = self._record(subset, item, listed)
                    if rec is not None:
                        yield rec

    def _record(self, subset: str, item: Any, blacklisted: set[str]) -> dict | None:
        if not isinstance(item, dict) or not item.get("id") or not str(item.get("caption") or "").strip():
            self.skip("bad_record")
            return None
        stem = _stem(str(item["id"]))
        if stem in blacklisted:
            self.skip("blacklisted")
            return None
        try:
            duration = float(item["duration"]) if item.get("duration") is not None else None
        except (TypeError, ValueError):
            duration = None
        if self.options.max_duration_s is not None and duration is not None and duration > self.options.max_duration_s:
            self.skip("too_long")
            return None
        uri = self._media_uri(subset, stem, item)
        if not uri:
            self.skip("unsafe_id")
            return None
        extra: dict[str, Any] = {"subset": subset, "wavcaps_id": str(item["id"])}
        for field in ("description", "title", "author", "href", "tags", "file_name", "download_link"):
            if item.get(field) not in (None, ""):
                extra[field] = item[field]
        if item.get("category") is not None:
            extra["category"] = self._category(item["category"])
        return new_record(
            self.name, f"{subset}_{stem}", uri, duration_s=duration, split=self.options.split,
            license=self.options.license or SUBSET_LICENSES.get(subset), kind="audio", has_video=False,
            has_audio=True, caption=str(item["caption"]).strip(), captions=[str(item["caption"]).strip()],
            caption_model=f"metadata:{self.name}", extra=extra)

    @staticmethod
    def _category(value: Any) -> list[str]:
        """BBC categories are a repr list in a string (`"['Nature']"`)."""
        if isinstance(value, list):
            return [str(v) for v in value]
        try:
            parsed = literal(str(value))
        except (ValueError, SyntaxError):
            return [str(value)]
        return [str(v) for v in parsed] if isinstance(parsed, (list, tuple)) else [str(parsed)]
