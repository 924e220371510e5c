"""Text front end (romanisation) and the VoiceBPE tokenizer: round trips in en/zh/ja/ko, times, unknowns."""
from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.text import build_voicebpe
from pipeline.text.romanize import ALPHABET, hangul_syllable_to_roman, romanize
from pipeline.text.voicebpe import UNK_TOKEN, VOCAB_PATH, VoiceBPETokenizer


@pytest.fixture(scope="module")
def tok() -> VoiceBPETokenizer:
    return VoiceBPETokenizer.load()


CASES = [
    ("en", "The quick brown fox, it's 2024!", "the quick brown fox it's 2024"),
    ("en", "Café Naïve Straße", "cafe naive strasse"),
    ("zh", "你好世界，我们的朋友吗？", "ni3 hao3 shi4 jie4 wo3 men5 de5 peng2 you3 ma5"),
    ("zh", "女孩", "nv3 hai2"),
    ("ja", "私は学生です。", "watashi ha gakusei desu"),
    ("ja", "東京タワー", "toukyou tawaa"),
    ("ko", "안녕하세요 세계!", "annyeonghaseyo segye"),
    ("ko", "사랑해", "saranghae"),
]


@pytest.mark.parametrize("language,text,expected", CASES)
def test_romanize(language, text, expected):
    assert romanize(text, language).text == expected
    assert romanize(text).text == expected  # the script alone decides when no language is given


def test_han_reading_follows_the_language():
    assert romanize("東京", "zh").text == "dong1 jing1"
    assert romanize("東京", "ja").text == "toukyou"
    assert romanize("東京は大きい").language == "ja"  # kana in the text: Japanese


def test_hangul_jamo_decomposition():
    assert hangul_syllable_to_roman("가") == "ga"
    assert hangul_syllable_to_roman("힣") == "hit"  # last syllable: h + i + final ㅎ
    assert hangul_syllable_to_roman("닭") == "dak"  # final cluster ㄺ


@pytest.mark.parametrize("language,text,expected", CASES)
def test_ids_round_trip_to_the_normalized_text(tok, language, text, expected):
    enc = tok.encode(text, language)
    assert enc.normalized == expected
    assert tok.decode(enc.ids) == expected
    assert enc.n_unknown == 0 and tok.unk_id not in enc.ids
    assert all(0 <= i < tok.vocab_size for i in enc.ids)
    assert len(enc.ids) < len(expected)  # BPE merged something


@given(st.text(alphabet=st.sampled_from(ALPHABET + " "), max_size=60))
@settings(max_examples=150, deadline=None)
def test_any_text_in_the_alphabet_round_trips(text):
    tok = VoiceBPETokenizer.load()
    enc = tok.encode(text)
    words = [re.sub("'+", "'", w).strip("'") for w in text.split()]  # apostrophe runs collapse
    assert tok.decode(enc.ids) == enc.normalized == " ".join(w for w in words if w)
    assert enc.n_unknown == 0


def test_unknown_characters_are_counted_not_dropped(tok):
    enc = tok.encode("Привет 🎵 ok")
    assert enc.unknown_chars["П"] == 1 and enc.unknown_chars["🎵"] == 1
    assert enc.n_unknown == 7  # six Cyrillic letters and the note
    assert enc.ids.count(tok.unk_id) == 7
    assert tok.decode(enc.ids).endswith("ok")
    assert UNK_TOKEN in tok.decode(enc.ids)


@pytest.mark.parametrize("language,words", [
    ("en", [("hello", 0.0, 0.5), ("wonderful", 0.6, 1.4), ("world", 1.5, 2.0)]),
    ("zh", [("你好", 0.0, 0.6), ("世界", 0.7, 1.5)]),
    ("ja", [("東京", 0.2, 0.9), ("タワー", 1.0, 1.6)]),
    ("ko", [("안녕하세요", 0.0, 1.1), ("세계", 1.3, 1.9)]),
])
def test_timed_words_give_one_interval_per_token(tok, language, words):
    timed = [{"text": t, "start": s, "end": e} for t, s, e in words]
    enc = tok.encode_words(timed, language)
    assert len(enc.ids) == len(enc.starts) == len(enc.ends)
    assert tok.decode(enc.ids) == enc.normalized == romanize(" ".join(t for t, _, _ in words), language).text
    assert all(s <= e for s, e in zip(enc.starts, enc.ends))
    assert enc.starts == sorted(enc.starts)
    # every token lies inside its word, and each word's tokens tile the word exactly
    pos = 0
    for text, start, end in words:
        n = len(tok.encode(text, language).ids)
        chunk_s, chunk_e = enc.starts[pos:pos + n], enc.ends[pos:pos + n]
        assert chunk_s[0] == pytest.approx(start) and chunk_e[-1] == pytest.approx(end)
        assert all(start - 1e-9 <= a and b <= end + 1e-9 for a, b in zip(chunk_s, chunk_e))
        assert all(b == pytest.approx(a) for a, b in zip(chunk_e[:-1], chunk_s[1:]))
        pos += n
    assert pos == len(enc.ids)


def test_bad_word_times_are_rejected(tok):
    with pytest.raises(ValueError, match="word 1"):
        tok.encode_words([{"text": "a", "start": 0, "end": 1}, {"text": "b", "start": 2}])
    with pytest.raises(ValueError, match="end 1.0 before start 2.0"):
        tok.encode_words([{"text": "b", "start": 2.0, "end": 1.0}])


def test_bad_vocab_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        VoiceBPETokenizer.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not a tokenizers JSON"):
        VoiceBPETokenizer.load(bad)


def test_versioned_vocab_is_committed_and_identified(tok):
    digest = hashlib.sha256(tok.tok.to_str().encode()).hexdigest()[:12]
    assert tok.version == f"voicebpe-v1@sha256:{digest}"
    assert VOCAB_PATH.is_file() and tok.vocab_size == build_voicebpe.DEFAULT_VOCAB_SIZE
    vocab = tok.tok.get_vocab()
    assert all(c in vocab or "▁" + c in vocab for c in ALPHABET)


def test_build_script_trains_a_working_vocabulary(tmp_path):
    lyrics = tmp_path / "lyrics.txt"
    lyrics.write_text("我爱你\nきらきら星\n사랑해요\nTwinkle twinkle little star\n" * 3, encoding="utf-8")
    words = tmp_path / "words.json"
    words.write_text('{"model": {"vocab": {"Ġthe": 0, "Ġstar": 1, "Ġlittle": 2}}}', encoding="utf-8")
    out = tmp_path / "v.json"
    assert build_voicebpe.main(["--out", str(out), "--vocab-size", "600", "--english-words", str(words),
                                "--text", str(lyrics)]) == 0
    small = VoiceBPETokenizer.load(out)
    assert small.vocab_size == 600
    for text in ("我爱你", "きらきら星", "사랑해요", "twinkle little star"):
        enc = small.encode(text)
        assert small.decode(enc.ids) == enc.normalized and enc.n_unknown == 0


def test_build_script_names_a_missing_input(tmp_path, capsys):
    with pytest.raises(SystemExit):
        build_voicebpe.main(["--out", str(tmp_path / "v.json"), "--text", str(tmp_path / "nope.txt")])
    assert "nope.txt: file not found" in capsys.readouterr().err
