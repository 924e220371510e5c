"""Name → class for stages and corpus adapters (imported lazily, so an optional
dependency of one stage never breaks another)."""
from __future__ import annotations

import importlib

STAGES: dict[str, str] = {
    "fetch": "pipeline.stages.fetch:FetchStage",
    "media": "pipeline.stages.media:MediaStage",
    "vad": "pipeline.stages.vad:SpeechRatioStage",
    "caption": "pipeline.stages.caption:CaptionStage",
    "transcribe": "pipeline.stages.transcribe:TranscribeStage",
    "lyrics": "pipeline.stages.lyrics:LyricsStage",
    "tokenize": "pipeline.stages.tokenize:TokenizeStage",
    "clip": "pipeline.stages.features:ClipFeatureStage",
    "sync": "pipeline.stages.features:SyncFeatureStage",
    "latent": "pipeline.stages.features:LatentStage",
    "generate": "pipeline.stages.generate:GenerateStage",
}

ADAPTERS: dict[str, str] = {
    "local": "pipeline.corpora.local:LocalMediaAdapter",
    "vggsound": "pipeline.corpora.vggsound:VGGSoundAdapter",
    "audiocaps": "pipeline.corpora.audiocaps:AudioCapsAdapter",
    "clotho": "pipeline.corpora.clotho:ClothoAdapter",
    "wavcaps": "pipeline.corpora.wavcaps:WavCapsAdapter",
    "panda70m": "pipeline.corpora.panda70m:Panda70MAdapter",
    "internvid": "pipeline.corpora.internvid:InternVidAdapter",
    "libritts": "pipeline.corpora.libritts:LibriTTSAdapter",
    "ljspeech": "pipeline.corpora.ljspeech:LJSpeechAdapter",
    "lrs": "pipeline.corpora.lrs:LRSAdapter",
    "lrc_songs": "pipeline.corpora.lrc_songs:LRCSongsAdapter",
    "jamendo": "pipeline.corpora.jamendo:JamendoLyricsAdapter",
    "dali": "pipeline.corpora.dali:DALIAdapter",
    "requests": "pipeline.corpora.requests:RequestsAdapter",
}


def _load(table: dict[str, str], kind: str, name: str):
    if ":" in name:  # "package.module:Class": a stage or adapter outside this table (plugins, tests)
        table = {name: name}
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
    module, _, attr = table[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def stage_class(name: str):
    return _load(STAGES, "stage", name)


def adapter_class(name: str):
    return _load(ADAPTERS, "corpus adapter", name)
