"""LibriTTS-R, LJSpeech and LRS on their real-format fixtures."""
import pytest

from pipeline.corpora.common import CorpusFormatError
from pipeline.corpora.libritts import parse_speakers_txt
from pipeline.corpora.lrs import LRSTranscript

from .helpers import FIXTURE_ROOTS, extra, run_adapter


def test_libritts_r_texts_speakers_and_macos_files():
    recs, adapter = run_adapter("libritts")
    assert adapter.skipped == {"macos_resource_file": 1, "missing_audio": 1}
    by_id = {r["source_id"]: r for r in recs}
    assert set(by_id) == {"R_84_121123_000007_000001", "R_84_121123_000008_000000", "R_1089_134686_000001_000001"}
    quoted = by_id["R_84_121123_000008_000000"]
    assert quoted["transcript"] == '"Doctor Smith", he said, "it\'s eighteen eighty seven."'
    assert extra(quoted)["original_text"] == '"Dr. Smith", he said, "it\'s 1887."'
    assert (quoted["speaker"], quoted["gender"], quoted["split"], quoted["kind"]) == ("libritts_84", "female", "train", "speech")
    assert extra(quoted)["variant"] == "libritts_r"
    from_txt = by_id["R_1089_134686_000001_000001"]  # no trans.tsv: the .normalized.txt beside the wav
    assert from_txt["transcript"] == "He hoped there would be stew for dinner."
    assert (from_txt["split"], from_txt["gender"], extra(from_txt)["speaker_name"]) == ("test", "male", "Tom | Mark")
    assert all(r["transcript_model"] == "metadata:libritts" and r["media_uri"].endswith(".wav") for r in recs)


def test_speakers_txt_splits_on_at_most_four_pipes():
    speakers = parse_speakers_txt(FIXTURE_ROOTS["libritts"] / "SPEAKERS.txt")
    assert speakers["60"] == {"gender": "male", "subset": "train-clean-100", "name": "|CBW|Simon"}
    assert speakers["14"]["name"] == "Kristin LeMoine"


def test_speakers_txt_bad_line_names_file(tmp_path):
    (tmp_path / "SPEAKERS.txt").write_text("; header\n14 | F | train\n")
    with pytest.raises(CorpusFormatError, match=r"SPEAKERS.txt: line 2"):
        parse_speakers_txt(tmp_path / "SPEAKERS.txt")


def test_libritts_subset_option_and_variant(tmp_path):
    recs, _ = run_adapter("libritts", subsets=["test-clean"], variant="libritts")
    assert [r["source_id"] for r in recs] == ["1089_134686_000001_000001"]
    with pytest.raises(CorpusFormatError, match="subset folder"):
        run_adapter("libritts", subsets=["train-other-500"])


def test_ljspeech_quote_none_keeps_bare_quotes():
    recs, _ = run_adapter("ljspeech")
    texts = {r["source_id"]: r for r in recs}
    assert texts["LJ001-0045"]["transcript"] == "fourteen sixty-nine, fourteen seventy;"
    assert extra(texts["LJ001-0045"]) == {"raw_text": "1469, 1470;"}
    assert texts["LJ002-0096"]["transcript"] == '"The Rookery," as it was called, "was full of'
    assert texts["LJ003-0043"]["transcript"] == 'and was "a place of the lowest description'
    assert texts["LJ001-0001"]["media_uri"] == str(FIXTURE_ROOTS["ljspeech"] / "wavs" / "LJ001-0001.wav")
    assert {r["speaker"] for r in recs} == {"ljspeech_LJ"} and {r["split"] for r in recs} == {"train"}


def test_ljspeech_bad_rows_counted(tmp_path):
    (tmp_path / "metadata.csv").write_text("LJ1|a|b\nLJ2|only|too|many\n../x|a|b\nLJ3||\n")
    recs, adapter = run_adapter("ljspeech", root=tmp_path)
    assert [r["source_id"] for r in recs] == ["LJ1"]
    assert adapter.skipped == {"bad_row": 1, "bad_id": 1, "empty_text": 1}


def test_lrs_text_conf_words_face_boxes():
    recs, adapter = run_adapter("lrs")
    by_id = {r["source_id"]: r for r in recs}
    pre = by_id["pretrain/5535415699068794046/00001"]
    assert pre["transcript"] == "IT WAS A VERY GOOD YEAR" and extra(pre)["conf"] == 3.0
    assert pre["words"][0] == {"text": "IT", "start": 0.08, "end": 0.21} and len(pre["words"]) == 6
    assert pre["has_video"] and pre["media_uri"].endswith("pretrain/5535415699068794046/00001.mp4")
    assert by_id["pretrain/5535415699068794046/00002"]["words"] is None  # empty word table
    main = by_id["trainval/0Fi83BHQsMA/00002"]
    assert main["words"] is None and main["split"] == "train"
    v04 = by_id["test/0af00UcTOSc/50001"]
    assert extra(v04) == {"conf": 5.0, "youtube_id": "0af00UcTOSc", "face_track_frames": 3}
    assert [w["text"] for w in v04["words"]] == ["AND", "SO", "WE", "BEGAN"] and v04["split"] == "test"
    recs, adapter = run_adapter("lrs", min_conf=4)
    assert adapter.skipped == {"low_confidence": 2}


def test_lrs_transcript_errors_name_the_file():
    with pytest.raises(CorpusFormatError, match="x.txt: no 'Text:' line"):
        LRSTranscript.parse("Conf: 3\n", "x.txt")
    with pytest.raises(CorpusFormatError, match="bad word times"):
        LRSTranscript.parse("Text: A\n\nWORD START END ASDSCORE\nA zero 1.0 2\n", "y.txt")


def test_lrs2_filelists(tmp_path):
    clip = tmp_path / "main" / "6330311066473698535"
    clip.mkdir(parents=True)
    (clip / "00011.txt").write_text("Text:  HELLO THERE\nConf:  4\n")
    (tmp_path / "test.txt").write_text("6330311066473698535/00011 NF\n6330311066473698535/00012 MV\n../../evil/1\n")
    recs, adapter = run_adapter("lrs", root=tmp_path, filelists={"test": "test.txt"})
    assert [(r["source_id"], r["split"]) for r in recs] == [("main/6330311066473698535/00011", "test")]
    assert adapter.skipped == {"missing_transcript": 1, "unsafe_entry": 1}
