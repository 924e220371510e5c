"""What every adapter promises: registry names, splits filled (so limit/sample/splits work),
unique keys, schema-valid records, fingerprinted inputs, and no path outside the corpus."""
import json
from pathlib import Path

import pytest

from pipeline.corpora.base import CorpusAdapter
from pipeline.record import KINDS, RECORD_FIELDS, records_to_table
from pipeline.registry import ADAPTERS, adapter_class

from .helpers import FIXTURE_ROOTS, run_adapter

MINE = sorted(FIXTURE_ROOTS)


# not corpora: `local` (any CSV of files) and `requests` (generation requests, tests/generation)
NOT_CORPORA = {"local", "requests"}


def test_every_registered_adapter_except_local_has_a_fixture():
    assert set(ADAPTERS) - NOT_CORPORA == set(MINE)


@pytest.mark.parametrize("name", MINE)
def test_records_are_complete_unique_and_arrow_typed(name):
    cls = adapter_class(name)
    assert issubclass(cls, CorpusAdapter) and cls.name == name
    recs, adapter = run_adapter(name)
    assert recs, f"{name}: no records from the fixture"
    assert len({r["key"] for r in recs}) == len(recs)
    for r in recs:
        assert set(r) == set(RECORD_FIELDS) and r["corpus"] == name
        assert r["split"] and r["kind"] in KINDS and r["license"]
        assert r["media_uri"].startswith(("youtube:", "http://", "https://")) or Path(r["media_uri"]).is_absolute()
        for text, model in (("caption", "caption_model"), ("transcript", "transcript_model"), ("lyrics", "lyrics_model")):
            if r[text] is not None:
                assert r[model] == f"metadata:{name}"
        if r["extra"] is not None:
            assert isinstance(json.loads(r["extra"]), dict)
    records_to_table(recs, extra_columns=False)  # every field fits CLIP_SCHEMA
    files = adapter.input_files()
    assert files and all(Path(f).is_file() for f in files)


@pytest.mark.parametrize("name", MINE)
def test_limit_sample_and_split_options(name):
    everything, _ = run_adapter(name)
    limited, adapter = run_adapter(name, limit=1)
    assert limited == everything[:1]
    assert adapter.skipped["over_limit"] == len(everything) - 1
    split = everything[-1]["split"]
    chosen, adapter = run_adapter(name, splits=[split])
    assert chosen == [r for r in everything if r["split"] == split]
    # adapters with one file per split do not even read the others (nothing to count then)
    assert adapter.skipped["split_not_selected"] in (0, len(everything) - len(chosen))
    half, _ = run_adapter(name, sample=0.5, seed=3)
    again, _ = run_adapter(name, sample=0.5, seed=3)
    assert half == again and {r["key"] for r in half} <= {r["key"] for r in everything}


def test_sampling_keeps_about_the_asked_fraction():
    recs = []
    for seed in range(20):
        got, _ = run_adapter("vggsound", sample=0.5, seed=seed)
        recs.append(len(got))
    assert 0.3 < sum(recs) / (20 * 7) < 0.7


@pytest.mark.parametrize("name", MINE)
def test_unknown_option_is_rejected_with_its_name(name):
    with pytest.raises(ValueError, match="no_such_option"):
        adapter_class(name)({"root": FIXTURE_ROOTS[name], "no_such_option": 1})


def test_symlink_out_of_the_corpus_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(b"x")
    root = tmp_path / "ljspeech"
    (root / "wavs").mkdir(parents=True)
    (root / "wavs" / "LJ9.wav").symlink_to(outside / "secret.wav")
    (root / "metadata.csv").write_text("LJ9|a|b\nLJ8|c|d\n")
    recs, adapter = run_adapter("ljspeech", root=root)
    assert [r["source_id"] for r in recs] == ["LJ8"] and adapter.skipped == {"bad_id": 1}
