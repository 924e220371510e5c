import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.corpora.lyrics import LrcError, LyricLine, Timed, cut_on_lines, finish_lines, parse_lrc
from pipeline.corpora.timefmt import format_mmss

ENHANCED = """[ar:Artist]
[ti:Title]
[offset:-250]
[00:01.00] <00:01.00> Hello <00:01.50> big <00:02.00> world <00:02.60>
[00:03.000]Millisecond tags work
[00:05.50][00:20.10]Stacked chorus
[00:08.00]Open ended <00:08.00> words <00:09.00> here
[00:12.00]
"""


def test_enhanced_stacked_offset_and_id_tags():
    doc = parse_lrc(ENHANCED)
    assert doc.tags["ar"] == "Artist" and doc.tags["ti"] == "Title"
    assert doc.offset_s == -0.25
    texts = [(ln.text, ln.start) for ln in doc.lines]
    assert texts == [("Hello big world", 1.25), ("Millisecond tags work", 3.25), ("Stacked chorus", 5.75),
                     ("Open ended words here", 8.25), ("Stacked chorus", 20.35)]
    hello = doc.lines[0]
    assert [(w.text, w.start, w.end) for w in hello.words] == [
        ("Hello", 1.25, 1.75), ("big", 1.75, 2.25), ("world", 2.25, 2.85)]
    assert hello.end == pytest.approx(2.85) and hello.end_exact      # closing word tag
    assert doc.lines[1].end == pytest.approx(5.75) and not doc.lines[1].end_exact  # next line: a guess
    open_line = doc.lines[3]
    assert open_line.end == pytest.approx(12.25) and open_line.end_exact  # empty line = end marker
    assert open_line.words[-1] == Timed("here", 9.25, 12.25)
    assert doc.lines[4].end is None  # last line: unknown until the song end is known


def test_positive_offset_moves_lyrics_sooner_and_clamps_at_zero():
    doc = parse_lrc("[offset:+500]\n[00:00.20]early\n[00:02.00]later\n")
    assert [ln.start for ln in doc.lines] == [0.0, 1.5]


def test_unsynced_lyrics_and_bracket_words_in_text():
    doc = parse_lrc("Just words\n[Chorus]\nmore words\n")
    assert doc.lines == [] and doc.unsynced_text == "Just words\n[Chorus]\nmore words"
    doc = parse_lrc("[00:01.00][Chorus] la la\n")
    assert doc.lines[0].text == "[Chorus] la la"


def test_bad_offset_is_a_clear_error():
    with pytest.raises(LrcError, match="offset"):
        parse_lrc("[offset:soon]\n[00:01.00]x\n")


def test_finish_lines_caps_guessed_ends_and_song_end():
    lines = [LyricLine("a", 0.0, 30.0), LyricLine("b", 30.0, None), LyricLine("c", 40.0, 41.0, end_exact=True)]
    closed = finish_lines(lines, song_end_s=40.5, max_line_s=5.0)
    assert [(ln.text, ln.start, ln.end) for ln in closed] == [("a", 0.0, 5.0), ("b", 30.0, 35.0), ("c", 40.0, 40.5)]


def test_cut_keeps_short_song_whole_and_long_line_alone():
    lines = finish_lines([LyricLine("a", 1.0, 3.0, end_exact=True)], 8.0, 5.0)
    assert [(c.start, c.end) for c in cut_on_lines(lines, 10.0, 8.0)] == [(0.0, 8.0)]
    long_line = [LyricLine("x", 0.0, 4.0, end_exact=True), LyricLine("y", 5.0, 25.0, end_exact=True),
                 LyricLine("z", 26.0, 28.0, end_exact=True)]
    clips = cut_on_lines(long_line, 10.0)
    assert [[ln.text for ln in c.lines] for c in clips] == [["x"], ["y"], ["z"]]
    assert clips[1].duration == 20.0


def test_cut_requires_closed_lines():
    with pytest.raises(LrcError):
        cut_on_lines([LyricLine("a", 0.0, None)], 10.0)


# --- properties -------------------------------------------------------------------------

lyric_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="[]<>\r\n\x85"),
    min_size=1, max_size=30).map(str.strip).filter(bool)


@st.composite
def lrc_songs(draw):
    n = draw(st.integers(1, 12))
    gaps = draw(st.lists(st.integers(1, 2000), min_size=n, max_size=n))  # centiseconds
    starts, t = [], draw(st.integers(0, 500))
    for g in gaps:
        starts.append(t)
        t += g
    texts = draw(st.lists(lyric_text, min_size=n, max_size=n))
    ms_tags = draw(st.booleans())
    return list(zip(starts, texts)), ms_tags


@settings(max_examples=60, deadline=None)
@given(lrc_songs())
def test_lrc_round_trip_of_times_and_unicode_text(song):
    lines, ms_tags = song
    body = "\n".join(f"[{format_mmss(cs / 100, decimals=3 if ms_tags else 2)}]{text}" for cs, text in lines)
    doc = parse_lrc("[ar:Someone]\n" + body + "\n")
    assert [ln.text for ln in doc.lines] == [t for _, t in lines]
    assert [ln.start for ln in doc.lines] == pytest.approx([cs / 100 for cs, _ in lines])
    for a, b in itertools.pairwise(doc.lines):
        assert a.end == pytest.approx(b.start)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 1500)), min_size=1, max_size=25),
       st.floats(2.0, 15.0), st.booleans())
def test_cut_properties(spans, max_clip_s, with_words):
    lines, t = [], 0.0
    for gap, length in spans:
        start = t + gap / 100
        end = start + length / 100
        words = [Timed("w1", start, (start + end) / 2), Timed("w2", (start + end) / 2, end)] if with_words else []
        lines.append(LyricLine(f"line {len(lines)}", start, end, words, end_exact=True))
        t = end
    clips = cut_on_lines(finish_lines(lines, None, 8.0), max_clip_s)
    assert [ln.text for c in clips for ln in c.lines] == [ln.text for ln in lines]  # each line once, in order
    for c in clips:
        assert c.duration <= max_clip_s + 1e-9 or len(c.lines) == 1  # only a lone long line may exceed
        for item in c.timed_lines() + c.timed_words():
            assert -1e-9 <= item["start"] <= item["end"] <= c.duration + 1e-6
    for a, b in itertools.pairwise(clips):
        assert a.end <= b.start + 1e-9
