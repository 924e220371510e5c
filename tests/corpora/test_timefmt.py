import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.corpora.timefmt import TimeFormatError, format_hms, format_mmss, parse_time


@pytest.mark.parametrize("text,seconds", [
    ("0:01:20.880", 80.88),          # Panda-70M, hour not padded
    ("00:03:10.567", 190.567),       # InternVid, zero padded
    ("1:02:03.400", 3723.4),
    ("01:02.30", 62.3),              # LRC mm:ss.xx
    ("00:06.900", 6.9),              # LRC mm:ss.xxx
    ("123:04.5", 7384.5),            # LRC minutes past 99
    ("12.5", 12.5),
    (" 00:00:00.000 ", 0.0),
    ("10:00", 600.0),
])
def test_known_forms(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "0:61:00.0", "00:00:60.5", "-1:00", "1,5", "00:10.2.3", "ar:Me"])
def test_rejects_bad_times_with_the_text_in_the_message(text):
    with pytest.raises(TimeFormatError) as exc:
        parse_time(text)
    assert repr(text) in str(exc.value) or "60 or more" in str(exc.value)


def test_rejects_non_strings():
    with pytest.raises(TimeFormatError):
        parse_time(12.5)  # type: ignore[arg-type]


milliseconds = st.integers(min_value=0, max_value=100 * 3600 * 1000)


@given(milliseconds, st.booleans())
def test_hms_round_trip(ms, pad):
    text = format_hms(ms / 1000, pad_hours=pad)
    assert parse_time(text) == pytest.approx(ms / 1000, abs=1e-9)
    if pad:
        assert len(text.split(":")[0]) >= 2


@given(st.integers(min_value=0, max_value=500 * 60 * 100))
def test_lrc_round_trip(cs):
    assert parse_time(format_mmss(cs / 100)) == pytest.approx(cs / 100, abs=1e-9)


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999), st.integers(1, 6))
def test_any_fraction_width_parses(h, m, s, frac, width):
    digits = str(frac).zfill(3)[:width]
    value = parse_time(f"{h}:{m:02d}:{s:02d}.{digits}")
    assert value == pytest.approx(h * 3600 + m * 60 + s + float("0." + digits))
