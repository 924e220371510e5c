"""VGGSound, AudioCaps, Clotho, WavCaps, Panda-70M, InternVid on their real-format fixtures."""
import json
import shutil

import pytest

from pipeline.corpora.common import CorpusFormatError

from .helpers import FIXTURE_ROOTS, by_key, extra, run_adapter


def test_vggsound_ids_repeat_with_other_starts_and_quoted_labels():
    recs, adapter = run_adapter("vggsound")
    keys = by_key(recs)
    assert len(recs) == 7 and len(keys) == 7 and not adapter.skipped
    bee = [r for r in recs if r["source_id"] == "--Lj4Y_96f0"]
    assert [r["start_s"] for r in bee] == [120.0, 250.0]
    assert bee[0]["label"] == "bee, wasp, etc. buzzing"
    r = keys["vggsound----g-f_I2yQ-000001000"]
    assert (r["split"], r["duration_s"], r["media_uri"], r["has_video"], r["kind"]) == (
        "test", 10.0, "youtube:---g-f_I2yQ", True, "audio")
    assert keys["vggsound-zwIMZYV4on4-002480000"]["start_s"] == 2480.0
    assert any(r["label"] == "eletric blender running" for r in recs)  # corpus spelling kept


def test_vggsound_mirror_file_replaces_youtube(tmp_path):
    mirror = tmp_path / "video"
    mirror.mkdir()
    (mirror / "--Lj4Y_96f0_000250.mp4").write_bytes(b"x")
    recs, _ = run_adapter("vggsound", mirror=str(mirror))
    uris = {(r["source_id"], r["start_s"]): r["media_uri"] for r in recs}
    assert uris[("--Lj4Y_96f0", 250.0)] == str(mirror / "--Lj4Y_96f0_000250.mp4")
    assert uris[("--Lj4Y_96f0", 120.0)] == "youtube:--Lj4Y_96f0"


def test_mirror_pattern_is_validated():
    with pytest.raises(ValueError, match="mirror_pattern"):
        run_adapter("vggsound", mirror_pattern="{video}.mp4")
    with pytest.raises(ValueError, match="inside the mirror"):
        run_adapter("vggsound", mirror_pattern="../{id}.mp4")


def test_vggsound_bad_rows_are_counted(tmp_path):
    (tmp_path / "vggsound.csv").write_text("abcdefghijk,1,ok,train\nabcdefghijk,x,bad start,train\nonly,two\n\n"
                                           "xyz_-012345,5,fine,test\n")
    recs, adapter = run_adapter("vggsound", root=tmp_path)
    assert [r["source_id"] for r in recs] == ["abcdefghijk", "xyz_-012345"]
    assert adapter.skipped == {"bad_start": 1, "bad_row": 1}


def test_vggsound_rejects_empty_split_bad_ids_and_negative_starts_at_ingest(tmp_path, caplog):
    (tmp_path / "vggsound.csv").write_text(
        "abcdefghijk,1,ok,train\nabcdefghijk,2,no split,\nabc,3,short id,train\nabcdefghij!,4,bad char,train\n"
        "abcdefghijk,-5,negative,train\n")
    recs, adapter = run_adapter("vggsound", root=tmp_path)
    assert [r["start_s"] for r in recs] == [1.0]
    assert adapter.skipped == {"empty_split": 1, "bad_youtube_id": 2, "negative_start": 1}
    assert "negative start_seconds" in caplog.text and "line 5" in caplog.text


def test_utf8_byte_order_mark_does_not_reach_the_first_row(tmp_path):
    """Issue 13.6: a BOM made the first VGGSound id `\\ufeff---g-f_I2yQ` and the first InternVid line bad JSON."""
    (tmp_path / "vggsound.csv").write_bytes(b"\xef\xbb\xbf---g-f_I2yQ,1,people marching,test\n")
    recs, adapter = run_adapter("vggsound", root=tmp_path)
    assert [r["source_id"] for r in recs] == ["---g-f_I2yQ"] and not adapter.skipped
    src = FIXTURE_ROOTS["internvid"] / "InternVid-10M-flt.jsonl"
    (tmp_path / "iv").mkdir()
    (tmp_path / "iv" / "InternVid-10M-flt.jsonl").write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    plain, plain_adapter = run_adapter("internvid")
    bom, bom_adapter = run_adapter("internvid", root=tmp_path / "iv")
    assert [r["key"] for r in bom] == [r["key"] for r in plain]
    assert bom_adapter.skipped == plain_adapter.skipped


def test_audiocaps_groups_five_captions_per_clip():
    recs, _ = run_adapter("audiocaps")
    assert [r["split"] for r in recs] == ["train", "train", "train", "val", "test"]
    val = next(r for r in recs if r["split"] == "val")
    assert len(val["captions"]) == 5 and val["caption"] == val["captions"][0]
    assert val["caption_model"] == "metadata:audiocaps"
    assert extra(val)["audiocap_ids"] == ["97151", "97152", "97153", "97154", "97155"]
    test = next(r for r in recs if r["split"] == "test")
    assert 'People talk and laugh while a car drives by, with "road noise"' in test["captions"]
    assert (test["start_s"], test["duration_s"], test["media_uri"]) == (30.0, 10.0, "youtube:--0w1YA1Hm4")


def test_audiocaps_reads_only_selected_split_files(tmp_path):
    (tmp_path / "dataset").mkdir()
    shutil.copy(FIXTURE_ROOTS["audiocaps"] / "dataset" / "train.csv", tmp_path / "dataset" / "train.csv")
    recs, adapter = run_adapter("audiocaps", root=tmp_path, splits=["train"])
    assert len(recs) == 3 and adapter.input_files() == [tmp_path / "dataset" / "train.csv"]
    with pytest.raises(CorpusFormatError, match="val.csv: file not found"):
        run_adapter("audiocaps", root=tmp_path)


def test_audiocaps_wrong_header_names_file_and_columns(tmp_path):
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "train.csv").write_text("id,youtube,start,text\n1,a,0,b\n")
    with pytest.raises(CorpusFormatError, match=r"train.csv: header lacks column\(s\) audiocap_id"):
        run_adapter("audiocaps", root=tmp_path, splits=["train"])


def test_clotho_latin1_metadata_spaces_and_licenses():
    recs, _ = run_adapter("clotho")
    keys = {r["source_id"]: r for r in recs}
    assert set(keys) == {"Santa Motor", "Rain Café 01", "Birds, Dawn", "Radio Garble"}
    santa = keys["Santa Motor"]
    assert santa["media_uri"] == str(FIXTURE_ROOTS["clotho"] / "development" / "Santa Motor.wav")
    assert santa["license"] == "http://creativecommons.org/licenses/by/3.0/"
    assert len(santa["captions"]) == 5
    assert santa["captions"][4] == "While rhythmically punching or stamping, a machine whines and squeals."
    meta = extra(santa)
    assert meta["manufacturer"] == "JoséMaría" and meta["start_end_samples"] == [1024, 845524]
    assert meta["keywords"] == ["machine", "motor", "stamping", "industrial"]
    assert extra(keys["Rain Café 01"])["keywords"] == ["rain", "café", "crowd"]  # Latin-1 decoded
    assert {r["split"] for r in recs} == {"train", "val", "test"}
    assert keys["Radio Garble"]["split"] == "test"


def test_clotho_metadata_read_as_utf8_fails_with_file_name():
    with pytest.raises(CorpusFormatError, match="clotho_metadata_development.csv: not utf-8"):
        run_adapter("clotho", metadata_encoding="utf-8")


def test_clotho_file_name_escaping_audio_folder_is_skipped(tmp_path):
    header = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
    (tmp_path / "clotho_captions_development.csv").write_text(header + "../../etc/passwd,a,b,c,d,e\nok.wav,a,b,c,d,e\n")
    recs, adapter = run_adapter("clotho", root=tmp_path, split_names={"development": "train"}, metadata_pattern=None)
    assert [r["source_id"] for r in recs] == ["ok"] and adapter.skipped == {"unsafe_file_name": 1}


def test_wavcaps_subsets_flac_links_categories_and_blacklist():
    recs, adapter = run_adapter("wavcaps")
    assert adapter.skipped == {"blacklisted": 2}
    ids = {extra(r)["wavcaps_id"]: r for r in recs}
    assert set(ids) == {"Yb0RFKhbpFJA.wav", "NHU05051026", "07070123", "180913", "2219"}
    as_sl = ids["Yb0RFKhbpFJA.wav"]
    assert as_sl["media_uri"].endswith("audio/AudioSet_SL/Yb0RFKhbpFJA.flac")  # .wav listed, .flac shipped
    bbc = ids["NHU05051026"]
    assert bbc["media_uri"] == "https://sound-effects-media.bbcrewind.co.uk/zip/NHU05051026.wav.zip"
    assert extra(bbc)["category"] == ["Nature"] and extra(ids["07070123"])["category"] == ["Cities", "Night"]
    assert ids["07070123"]["duration_s"] == 67012.5
    assert ids["2219"]["media_uri"] == "http://soundbible.com/grab.php?id=2219&type=wav"
    assert extra(ids["180913"])["tags"] == ["Standard", "ringtone", "basic", "traditional"]
    assert all(r["caption_model"] == "metadata:wavcaps" and r["split"] == "train" for r in recs)
    assert len({r["key"] for r in recs}) == len(recs)


def test_wavcaps_local_flac_wins_and_long_recordings_can_be_skipped(tmp_path):
    root = tmp_path / "wavcaps"
    shutil.copytree(FIXTURE_ROOTS["wavcaps"], root)
    (root / "audio" / "FreeSound").mkdir(parents=True)
    (root / "audio" / "FreeSound" / "180913.flac").write_bytes(b"fLaC")
    recs, adapter = run_adapter("wavcaps", root=root, max_duration_s=3600, blacklist_glob=None)
    ids = {extra(r)["wavcaps_id"]: r for r in recs}
    assert ids["180913"]["media_uri"] == str(root / "audio" / "FreeSound" / "180913.flac")
    assert adapter.skipped == {"too_long": 1}


def test_panda70m_one_clip_per_timestamp_with_scores_and_filtering():
    recs, adapter = run_adapter("panda70m")
    assert not adapter.skipped
    first = [r for r in recs if r["source_id"] == "-2yHu5qgTzM"]
    assert [(r["start_s"], r["duration_s"]) for r in first] == [(80.88, 3.103), (151.151, 3.169), (208.841, 4.839)]
    meta = [extra(r) for r in first]
    assert [m["desirable_filtering"] for m in meta] == ["1_still_foreground_image", "desirable", "desirable"]
    assert meta[0]["matching_score"] == 0.451416015625
    assert meta[2]["shot_boundaries"] == [[0.0, 2.702], [2.736, 4.838]]
    apostrophes = [r["caption"] for r in recs if r["source_id"] == "--Xk7J6yP0E"]
    assert apostrophes == ["It's a sunny day and a dog is running on the beach.",
                           "A person surfing a wave, 'wipeout' style."]
    splits = {r["source_id"]: r["split"] for r in recs}
    assert splits["0_Ndb-JcoXs"] == "val" and splits["9xKlq2Ai1Mw"] == "test"
    assert next(r for r in recs if r["source_id"] == "9xKlq2Ai1Mw")["start_s"] == 3723.4
    assert extra(next(r for r in recs if r["split"] == "val"))["desirable_filtering"] is None


def test_panda70m_options_and_never_eval(tmp_path):
    recs, adapter = run_adapter("panda70m", only_desirable=True, min_matching_score=0.4)
    assert adapter.skipped == {"not_desirable": 1, "low_matching_score": 1}  # 0.38 fails the score first
    assert len(recs) == 5
    evil = "__import__('os').system('touch pwned')"
    (tmp_path / "panda70m_validation.csv").write_text(
        "videoID,url,timestamp,caption,matching_score\n"
        f"abc,u,\"{evil}\",['x'],[0.5]\n"
        "def,u,\"[['0:00:01.000', '0:00:02.000'], ['0:00:03.000', '0:00:04.000']]\",['only one'],[0.5]\n")
    recs, adapter = run_adapter("panda70m", root=tmp_path, files={"val": "panda70m_validation.csv"})
    assert recs == [] and adapter.skipped == {"bad_row": 1, "list_length_mismatch": 2}
    assert not (tmp_path / "pwned").exists()


def test_panda70m_missing_split_file_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusFormatError, match="no Panda-70M file matches 'panda70m_training_\\*.csv'"):
        run_adapter("panda70m", root=tmp_path)


def test_internvid_zero_padded_times_scores_and_bad_lines(tmp_path):
    recs, _ = run_adapter("internvid")
    r = recs[0]
    assert (r["source_id"], r["start_s"], r["duration_s"]) == ("HdYoyzCSWyw", 190.567, 0.633)
    assert extra(r) == {"youtube_id": "HdYoyzCSWyw", "aesthetic_score": 4.589844, "umt_score": 0.397949}
    assert recs[2]["start_s"] == 3600.1 and recs[2]["caption"] == "garçon jouant du piano à queue"
    lines = [json.dumps({"YoutubeID": "a", "Start_timestamp": "00:00:01.000", "End_timestamp": "00:00:03.500",
                         "Caption": "c", "UMT_Score": 0.2}), "{not json", json.dumps({"YoutubeID": "b"}),
             json.dumps({"YoutubeID": "c", "Start_timestamp": "00:00:61.000", "End_timestamp": "00:01:05.000",
                         "Caption": "c"})]
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n")
    recs, adapter = run_adapter("internvid", root=tmp_path, min_umt_score=0.1)
    assert [r["duration_s"] for r in recs] == [2.5]
    assert adapter.skipped == {"bad_json": 1, "missing_field": 1, "bad_time": 1}
