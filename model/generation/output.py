"""Writing a generation: 44.1 kHz WAV, an MP4 with the input's video stream copied (not
re-encoded) and the generated audio muxed in, and a JSON sidecar — atomically.

Every file is written under a temporary name in the output folder and fsynced; only when
all are complete are they renamed into place (the JSON last: it marks a finished output).
On any error the temporary files are removed and nothing is left.
"""
from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from model.generation.errors import GenerationError

WAV_SUBTYPE = "PCM_16"
AUDIO_CODEC = "aac"  # MP4's usual audio codec; encoded at the generation rate, mono
AUDIO_FRAME_SAMPLES = 1024  # samples per AAC frame
TMP_PREFIX = ".tmp-"


def write_wav(path: Path, wave: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    sf.write(str(path), np.clip(wave, -1.0, 1.0), sample_rate, subtype=WAV_SUBTYPE, format="WAV")


def mux_video(video: Path, wave: np.ndarray, sample_rate: int, duration_s: float, out: Path) -> dict:
    """Copy the video packets of [0, duration_s) from `video` into `out` with `wave` as its only
    audio stream (the source's own audio, if any, is replaced). Returns stream facts."""
    import av

    n = round(duration_s * sample_rate)
    audio = np.zeros(n, np.float32)
    audio[: min(n, len(wave))] = wave[:n]
    try:
        src = av.open(str(video), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise GenerationError("undecodable", f"{video}: cannot open for muxing: {exc}") from None
    try:
        vin = next(s for s in src.streams.video if av.stream.Disposition.attached_pic not in s.disposition)
        dst = av.open(str(out), "w", format="mp4")
        try:
            vout = dst.add_stream_from_template(vin)
            aout = dst.add_stream(AUDIO_CODEC, rate=sample_rate, layout="mono")
            origin = vin.start_time or 0
            video_packets = 0
            for pkt in src.demux(vin):
                if pkt.dts is None and pkt.pts is None:
                    continue  # the demuxer's end-of-stream marker
                pts = pkt.pts if pkt.pts is not None else pkt.dts
                if float((pts - origin) * vin.time_base) >= duration_s - 1e-6:
                    continue  # after the generated span (packets come in decode order)
                pkt.stream = vout
                dst.mux(pkt)
                video_packets += 1
            pts = 0
            for i in range(0, n, AUDIO_FRAME_SAMPLES):
                chunk = np.ascontiguousarray(audio[None, i: i + AUDIO_FRAME_SAMPLES])
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = sample_rate, pts, Fraction(1, sample_rate)
                pts += chunk.shape[1]
                for p in aout.encode(frame):
                    dst.mux(p)
            for p in aout.encode(None):
                dst.mux(p)
        finally:
            dst.close()
    finally:
        src.close()
    return {"video_packets_copied": video_packets, "audio_codec": AUDIO_CODEC, "audio_samples": n}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_outputs(out_dir: Path, name: str, wave: np.ndarray, sample_rate: int, metadata: dict,
                  video: Path | None, duration_s: float) -> dict[str, Path]:
    """wav (+ mp4 when a video was given) + json in out_dir, all or nothing."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = {"wav": out_dir / f"{name}.wav", "json": out_dir / f"{name}.json"}
    if video is not None:
        final["mp4"] = out_dir / f"{name}.mp4"
    tmp = {k: out_dir / f"{TMP_PREFIX}{p.name}" for k, p in final.items()}
    renamed: list[Path] = []
    try:
        write_wav(tmp["wav"], wave, sample_rate)
        meta = dict(metadata)
        meta["outputs"] = {k: str(p) for k, p in final.items() if k != "json"}
        if video is not None:
            meta["mux"] = mux_video(video, wave, sample_rate, duration_s, tmp["mp4"])
        tmp["json"].write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
        for p in tmp.values():
            _fsync(p)
        for k in [k for k in final if k != "json"] + ["json"]:
            os.replace(tmp[k], final[k])
            renamed.append(final[k])
    except BaseException:
        for p in [*tmp.values(), *renamed]:
            p.unlink(missing_ok=True)
        raise
    return final
