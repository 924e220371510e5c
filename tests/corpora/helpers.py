"""Shared by the corpus adapter tests: fixture roots and a one-call adapter run."""
from __future__ import annotations

from pathlib import Path

from pipeline.record import extra
from pipeline.registry import adapter_class

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "corpora"

# adapter name → fixture root (each in the corpus's real layout)
FIXTURE_ROOTS = {
    "vggsound": FIXTURES / "vggsound",
    "audiocaps": FIXTURES / "audiocaps",
    "clotho": FIXTURES / "clotho",
    "wavcaps": FIXTURES / "wavcaps",
    "panda70m": FIXTURES / "panda70m",
    "internvid": FIXTURES / "internvid",
    "libritts": FIXTURES / "libritts" / "LibriTTS_R",
    "ljspeech": FIXTURES / "ljspeech",
    "lrs": FIXTURES / "lrs",
    "lrc_songs": FIXTURES / "songs",
    "jamendo": FIXTURES / "jamendo",
    "dali": FIXTURES / "dali",
}


def run_adapter(name: str, **options):
    """(records, adapter) of adapter `name` over its fixture (or options['root'])."""
    options.setdefault("root", FIXTURE_ROOTS[name])
    adapter = adapter_class(name)(options)
    return list(adapter.records()), adapter


def by_key(records: list[dict]) -> dict[str, dict]:
    return {r["key"]: r for r in records}


__all__ = ["FIXTURES", "FIXTURE_ROOTS", "by_key", "extra", "run_adapter"]
