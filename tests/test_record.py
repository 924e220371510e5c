from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.record import CLIP_SCHEMA, make_key, new_record, records_to_table

KEY_RE = re.compile(r"^[A-Za-z0-9_]+-[A-Za-z0-9_-]*-\d{9,}$")


@given(st.sampled_from(["vggsound", "panda70m", "local"]), st.text(min_size=1, max_size=40),
       st.floats(min_value=0, max_value=99_999, allow_nan=False))
def test_keys_are_webdataset_safe(corpus, source_id, start):
    key = make_key(corpus, source_id, start)
    assert "." not in key and KEY_RE.match(key), key
    assert key.endswith(f"{int(round(start * 1000)):09d}")


def test_vggsound_ids_with_other_starts_get_distinct_keys():
    assert make_key("vggsound", "--0PQM4-hqg", 30) != make_key("vggsound", "--0PQM4-hqg", 40)
    assert make_key("vggsound", "--0PQM4-hqg", 30) == "vggsound---0PQM4-hqg-000030000"


def test_negative_start_is_an_error():
    with pytest.raises(ValueError):
        make_key("x", "y", -1)


def test_new_record_rejects_unknown_fields_and_kinds():
    with pytest.raises(KeyError):
        new_record("c", "s", "/x", captionz="hi")
    with pytest.raises(ValueError):
        new_record("c", "s", "/x", kind="music")


def test_records_to_table_uses_schema_types():
    rec = new_record("c", "s", "/x", words=[{"text": "a", "start": 0.0, "end": 0.5}], extra={"b": 1})
    t = records_to_table([rec, {**rec, "key": "k2", "blob": b"x"}])
    assert t.schema.field("words").type == CLIP_SCHEMA.field("words").type
    assert t.schema.field("blob").type.equals(__import__("pyarrow").binary())
