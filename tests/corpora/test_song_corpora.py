"""LRC songs, JamendoLyrics and DALI: lyrics as timed lines/words, songs cut on lines."""
import gzip
import json
import shutil
import unicodedata

from .helpers import FIXTURE_ROOTS, extra, run_adapter


def _check_clip_timings(rec, max_clip_s=10.0):
    d = rec["duration_s"]
    for item in (rec["lines"] or []) + (rec["words"] or []):
        assert 0.0 <= item["start"] <= item["end"] <= d + 1e-6, (rec["key"], item)
    if rec["lines"] and len(rec["lines"]) > 1:
        assert d <= max_clip_s + 1e-6


def test_lrc_songs_cut_on_lines_with_retimed_words():
    recs, adapter = run_adapter("lrc_songs")
    assert adapter.skipped == {"no_lyrics": 1}
    long_song = [r for r in recs if r["source_id"] == "Long Song"]
    # [offset:+200] moves everything 0.2 s sooner; the song is 35 s
    assert [(r["start_s"], r["duration_s"]) for r in long_song] == [(1.0, 9.0), (10.0, 6.8), (19.8, 9.5), (29.3, 5.7)]
    first = long_song[0]
    assert first["lines"][0] == {"text": "Hello dear world", "start": 0.0, "end": 1.9}
    assert first["words"] == [{"text": "Hello", "start": 0.0, "end": 0.6}, {"text": "dear", "start": 0.6, "end": 1.2},
                              {"text": "world", "start": 1.2, "end": 1.9}]
    assert first["lyrics"].splitlines() == ["Hello dear world", "Walking down the road tonight",
                                            "Stars are shining ever bright"]
    # the stacked chorus tag appears twice; the empty [00:17.00] line ends "Through the rain"
    assert long_song[1]["lines"][1] == {"text": "Through the rain and through the snow", "start": 3.6, "end": 6.8}
    assert "Après la pluie, 雨の後で" in long_song[2]["lyrics"]
    assert long_song[3]["lines"] == [{"text": "Last line fading out", "start": 0.0, "end": 5.7}]  # song end
    assert all(r["kind"] == "song" and r["lyrics_model"] == "metadata:lrc_songs" for r in long_song)
    assert extra(first)["ar"] == "The Examples" and extra(first)["clips_in_song"] == 4
    for r in recs:
        _check_clip_timings(r)
    assert len({r["key"] for r in recs}) == len(recs)


def test_short_song_is_one_clip_and_unsynced_lyrics_stay_whole():
    recs, _ = run_adapter("lrc_songs")
    short = [r for r in recs if r["source_id"] == "album/Short Song"]
    assert [(r["start_s"], r["duration_s"]) for r in short] == [(0.0, 6.0)]
    assert short[0]["lines"] == [{"text": "La la la", "start": 0.5, "end": 2.0},
                                 {"text": "Na na na", "start": 2.0, "end": 4.0}]
    plain = [r for r in recs if r["source_id"] == "Plain Lyrics"]
    assert len(plain) == 1 and plain[0]["duration_s"] == 20.0 and plain[0]["lines"] is None
    assert plain[0]["lyrics"] == "These lyrics have no timing\nSo the song stays one clip"


def test_lrc_songs_without_probe_uses_length_tag_and_keeps_unlyriced(tmp_path):
    recs, adapter = run_adapter("lrc_songs", probe_duration=False, keep_without_lyrics=True)
    assert not adapter.skipped
    none = [r for r in recs if r["source_id"] == "No Lyrics"]
    assert len(none) == 1 and none[0]["lyrics"] is None and none[0]["duration_s"] is None
    assert [r["start_s"] for r in recs if r["source_id"] == "Long Song"][-1] == 29.3  # [length: 00:35]


def test_lrc_songs_max_clip_option():
    recs, _ = run_adapter("lrc_songs", max_clip_s=4.0)
    long_song = [r for r in recs if r["source_id"] == "Long Song"]
    assert len(long_song) > 4
    for r in long_song:
        _check_clip_timings(r, 4.0)


def test_jamendo_lines_words_nfc_names_and_license():
    recs, adapter = run_adapter("jamendo")
    assert adapter.skipped == {"no_line_annotation": 1}
    embers = [r for r in recs if r["source_id"] == "Avercage_-_Embers"]
    assert [(r["start_s"], r["duration_s"]) for r in embers] == [(18.62, 3.28)]
    assert embers[0]["lines"][0] == {"text": "lay awake at night", "start": 0.0, "end": 1.253}
    assert [w["text"] for w in embers[0]["words"]] == ["lay", "awake", "at", "night", "dreaming", "of", "embers"]
    assert embers[0]["license"] == "CC BY-NC-SA" and embers[0]["language"] == "en"
    nfc = unicodedata.normalize("NFC", "Bücher_-_Café_Noir")
    cafe = [r for r in recs if r["source_id"] == nfc]  # NFC in the CSV, NFD on disk
    assert [(r["start_s"], r["duration_s"]) for r in cafe] == [(2.0, 7.0), (11.0, 7.0), (21.0, 3.0)]
    assert cafe[0]["language"] == "fr" and extra(cafe[0])["title"] == "Café Noir, Part 1"
    assert cafe[1]["lines"][0]["text"] == "où es-tu, mon cœur"
    assert [w["text"] for w in cafe[1]["words"]] == ["où", "es-tu,", "mon", "cœur", "la", "nuit", "tombe"]
    for r in recs:
        _check_clip_timings(r)


def test_jamendo_word_count_mismatch_keeps_lines_only(tmp_path):
    root = tmp_path / "jamendo"
    shutil.copytree(FIXTURE_ROOTS["jamendo"], root)
    (root / "lyrics" / "Avercage_-_Embers.words.txt").write_text("lay\nawake\n")
    recs, _ = run_adapter("jamendo", root=root)
    embers = next(r for r in recs if r["source_id"] == "Avercage_-_Embers")
    assert embers["words"] is None and len(embers["lines"]) == 2


def test_dali_lines_words_youtube_and_pickles_refused(tmp_path):
    recs, adapter = run_adapter("dali")
    assert adapter.skipped == {"pickle_not_read": 1, "audio_not_working": 1}
    assert [(r["start_s"], r["duration_s"]) for r in recs] == [(12.31, 8.69), (21.3, 2.8), (30.0, 12.5)]
    assert {r["media_uri"] for r in recs} == {"youtube:-XyZ_12abcd"}
    assert recs[0]["language"] == "en" and recs[0]["lines"][0]["text"] == "I can see the morning light"
    assert [w["text"] for w in recs[1]["words"]] == ["you", "are", "here", "beside", "me"]
    assert extra(recs[0])["title"] == "Morning Light"
    for r in recs:
        _check_clip_timings(r)
    # a local mirror named by DALI id; a song marked not working can be kept
    mirror = tmp_path / "audio"
    mirror.mkdir()
    (mirror / "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5.mp3").write_bytes(b"ID3")
    recs, adapter = run_adapter("dali", mirror=str(mirror), skip_not_working=False)
    assert recs[0]["media_uri"] == str(mirror / "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5.mp3")
    assert any(r["media_uri"] == "youtube:QqQqQqQqQqQ" for r in recs)


def test_dali_broken_file_is_counted(tmp_path):
    (tmp_path / "a.json").write_text("{broken")
    with gzip.open(tmp_path / "b.json.gz", "wt") as fh:
        json.dump({"info": {"audio": {"url": "x", "working": True}}, "annotations": {"annot": {}}}, fh)
    recs, adapter = run_adapter("dali", root=tmp_path)
    assert recs == [] and adapter.skipped == {"bad_annotation": 2}
