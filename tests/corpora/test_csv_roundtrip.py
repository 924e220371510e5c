"""Property tests: metadata written the way each corpus writes it reads back exactly
(quoting, embedded delimiters and quotes, unicode)."""
import csv
import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.record import extra
from pipeline.registry import adapter_class

# any printable unicode, including commas, quotes, pipes and semicolons; no line breaks
cell_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85"),
    min_size=1, max_size=40).map(str.strip).filter(bool)
youtube_id = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=11, max_size=11)
SETTINGS = settings(max_examples=25, deadline=None)


def _records(name: str, root: Path, **options) -> list[dict]:
    return list(adapter_class(name)({"root": root, **options}).records())


@SETTINGS
@given(st.lists(st.tuples(youtube_id, st.integers(0, 2480), cell_text, st.sampled_from(["train", "test"])),
                min_size=1, max_size=8, unique_by=lambda r: (r[0], r[1])))
def test_vggsound_csv_round_trip(rows):
    with tempfile.TemporaryDirectory() as d:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        Path(d, "vggsound.csv").write_text(buf.getvalue(), encoding="utf-8")
        recs = _records("vggsound", Path(d))
    assert [(r["source_id"], int(r["start_s"]), r["label"], r["split"]) for r in recs] == list(rows)


@SETTINGS
@given(st.lists(st.tuples(youtube_id, st.integers(0, 600), st.lists(cell_text, min_size=1, max_size=5)),
                min_size=1, max_size=5, unique_by=lambda r: (r[0], r[1])))
def test_audiocaps_csv_round_trip(clips):
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "dataset").mkdir()
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        n = 0
        for vid, start, caps in clips:
            for c in caps:
                n += 1
                w.writerow([n, vid, start, c])
        Path(d, "dataset", "val.csv").write_text(buf.getvalue(), encoding="utf-8")
        recs = _records("audiocaps", Path(d), files={"val": "dataset/val.csv"})
    assert [(r["source_id"], int(r["start_s"]), r["captions"]) for r in recs] == [tuple(c) for c in clips]


ljspeech_text = cell_text.filter(lambda t: "|" not in t)


@SETTINGS
@given(st.lists(st.tuples(ljspeech_text, ljspeech_text), min_size=1, max_size=8))
def test_ljspeech_quote_none_round_trip(rows):
    lines = [f"LJ{i:03d}-{i:04d}|{raw}|{norm}" for i, (raw, norm) in enumerate(rows)]
    with tempfile.TemporaryDirectory() as d:
        Path(d, "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        recs = _records("ljspeech", Path(d))
    assert [(extra(r)["raw_text"], r["transcript"]) for r in recs] == list(rows)


@SETTINGS
@given(st.lists(cell_text, min_size=1, max_size=4), st.lists(st.floats(0, 1, allow_nan=False), min_size=4, max_size=4))
def test_panda70m_repr_lists_round_trip(captions, scores):
    n = len(captions)
    stamps = [[f"0:00:{2 * i:02d}.000", f"0:00:{2 * i + 1:02d}.500"] for i in range(n)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["videoID", "url", "timestamp", "caption", "matching_score"])
    w.writerow(["-2yHu5qgTzM", "https://www.youtube.com/watch?v=-2yHu5qgTzM", repr(stamps), repr(captions),
                repr(scores[:n])])
    with tempfile.TemporaryDirectory() as d:
        Path(d, "p.csv").write_text(buf.getvalue(), encoding="utf-8")
        recs = _records("panda70m", Path(d), files={"train": "p.csv"})
    assert [r["caption"] for r in recs] == captions
    assert [extra(r)["matching_score"] for r in recs] == scores[:n]
    assert [r["start_s"] for r in recs] == [2.0 * i for i in range(n)]


@SETTINGS
@given(st.lists(cell_text, min_size=5, max_size=5), cell_text, st.lists(cell_text.filter(lambda t: ";" not in t),
                                                                       min_size=1, max_size=4))
def test_clotho_captions_and_latin1_metadata_round_trip(captions, name, keywords):
    file_name = name.replace("/", "_") + ".wav"
    latin1_ok = all(ord(ch) < 256 for ch in file_name + "".join(keywords))
    with tempfile.TemporaryDirectory() as d:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file_name", "caption_1", "caption_2", "caption_3", "caption_4", "caption_5"])
        w.writerow([file_name, *captions])
        Path(d, "clotho_captions_development.csv").write_text(buf.getvalue(), encoding="utf-8")
        meta = io.StringIO()
        m = csv.writer(meta, lineterminator="\n")
        m.writerow(["file_name", "keywords", "sound_id", "sound_link", "start_end_samples", "manufacturer", "license"])
        m.writerow([file_name, ";".join(keywords), "1", "https://freesound.org/s/1", "[0, 44100]", "x", "CC0"])
        options = {"split_names": {"development": "train"}}
        if latin1_ok:
            Path(d, "clotho_metadata_development.csv").write_bytes(meta.getvalue().encode("iso-8859-1"))
        else:
            options["metadata_pattern"] = None
        recs = _records("clotho", Path(d), **options)
    assert len(recs) == 1
    assert recs[0]["captions"] == captions and extra(recs[0])["file_name"] == file_name
    if latin1_ok:
        assert extra(recs[0])["keywords"] == keywords and recs[0]["license"] == "CC0"
