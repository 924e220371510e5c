"""Feature stages: CLIP frame features, Synchformer sync tokens, audio latents (DESIGN §5, §6).

Model stages (a fixed-size Ray actor pool, one encoder load per actor). They read what
the media stage decoded (no second decode) and load their encoder only through
`model.encoders.registry.load_encoder`, on the actor's GPU in bf16 when it has one,
else on the CPU in fp32.

| stage    | reads                         | writes                                       |
|----------|-------------------------------|----------------------------------------------|
| `clip`   | `clip_frames` (JPEG list)     | `clip_features` [T, D], `clip_encoder`       |
| `sync`   | `sync_frames` (JPEG list)     | `sync_features` [N·8, D], `sync_times`, `sync_encoder` |
| `latent` | `audio_44k` (FLAC)            | `latent` [T, 2C] = mean ‖ std, `latent_encoder` |

Arrays are stored as a binary column of `.npy` bytes of the fp16 array (compact in
parquet, written into the shard unchanged). Rows without frames (speech wav files) pass
through `clip`/`sync` untouched; rows without audio pass through `latent`. A video too
short for one sync window is passed through without sync features and counted.
"""
from __future__ import annotations

import io
from typing import ClassVar

import numpy as np
from pydantic import Field

from model.encoders.registry import PAPER_ENCODERS, feature_spec, load_encoder

from ..errors import PermanentError
from ..media.audio import RATE_MODEL, decode_audio_blob
from ..media.frames import decode_frames
from ..stage import ModelStage, ModelStageOptions

FEATURE_DTYPE = np.float16  # what shards hold (DESIGN §6)
FEATURE_COLUMNS = {"clip": "clip_features", "sync": "sync_features", "latent": "latent"}
ENCODER_COLUMNS = {"clip": "clip_encoder", "sync": "sync_encoder", "latent": "latent_encoder"}


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def npy_array(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class FeatureOptions(ModelStageOptions):
    encoder: str = Field(..., description="encoder registry name (model/encoders/registry.py)")
    weights: str | None = Field(None, description="local file/folder or hub id; None: the release default")
    revision: str | None = Field(None, description="hub revision of `weights` (hub ids only)")


def _kind_options(kind: str) -> type[FeatureOptions]:
    """Options of one feature stage: `encoder` defaults to the paper's and must be a `kind` encoder."""
    from pydantic import field_validator

    class Opts(FeatureOptions):
        encoder: str = Field(PAPER_ENCODERS[kind], description=f"{kind} encoder registry name")

        @field_validator("encoder")
        @classmethod
        def _kind(cls, v: str) -> str:
            try:
                spec = feature_spec(v)
            except KeyError as exc:  # names the known encoders
                raise ValueError(exc.args[0]) from None
            if spec.kind != kind:
                raise ValueError(f"encoder {v!r} is a {spec.kind} encoder; stage {kind!r} needs a {kind} encoder")
            return v

    Opts.__name__ = f"{kind.capitalize()}FeatureOptions"
    return Opts


ClipFeatureOptions = _kind_options("clip")
SyncFeatureOptions = _kind_options("sync")


class LatentOptions(_kind_options("latent")):
    vocoder_weights: str | None = Field(None, description="VAE codecs: the vocoder folder/hub id (None: default)")


class FeatureStage(ModelStage):
    """Shared loading for the three feature stages."""

    kind: ClassVar[str] = ""
    frames_column: ClassVar[str] = ""

    def load_options(self) -> dict:
        o = self.options
        return {"revision": o.revision} if o.revision else {}

    def setup(self) -> None:
        import torch

        device = _device()
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.encoder = load_encoder(self.options.encoder, self.options.weights, device=device, dtype=dtype,
                                    **self.load_options())
        self.spec = feature_spec(self.options.encoder)
        self.identity = str(self.encoder.identity)

    def model_id(self) -> str:
        return getattr(self, "identity", self.options.encoder)

    def select(self, row: dict) -> bool:
        return bool(row.get(self.frames_column))

    def frames(self, row: dict) -> np.ndarray:
        try:
            return decode_frames(row[self.frames_column])
        except Exception as exc:
            raise PermanentError("bad_frames", f"{self.frames_column}: {exc}") from exc


class ClipFeatureStage(FeatureStage):
    """CLIP image features of the media stage's `clip_frames` (one vector per frame)."""

    name = "clip"
    kind = "clip"
    frames_column = "clip_frames"
    Options = ClipFeatureOptions
    reads = ("key", "clip_frames", "duration_s", "true_duration_s")
    writes = ("clip_features", "clip_encoder")
    counters = ("clips_encoded", "frames_encoded")

    def process_batch(self, rows: list[dict]) -> list[dict | BaseException]:
        decoded: list[np.ndarray | BaseException] = []
        for row in rows:
            try:
                decoded.append(self.frames(row))
            except PermanentError as exc:
                decoded.append(exc)
        good = [f for f in decoded if not isinstance(f, BaseException)]
        # every frame of the batch in one encode call (the encoder cuts its own GPU batches)
        feats = self.encoder.encode(np.concatenate(good)) if good else None  # [ΣT, D]
        arr = feats.float().cpu().numpy().astype(FEATURE_DTYPE) if feats is not None else None
        out: list[dict | BaseException] = []
        pos = 0
        for frames in decoded:
            if isinstance(frames, BaseException):
                out.append(frames)
                continue
            part, pos = arr[pos:pos + len(frames)], pos + len(frames)
            self.count("clips_encoded")
            self.count("frames_encoded", len(frames))
            out.append({"clip_features": npy_bytes(part), "clip_encoder": self.identity})
        return out


class SyncFeatureStage(FeatureStage):
    """Synchformer tokens of the media stage's `sync_frames`, with each token's time."""

    name = "sync"
    kind = "sync"
    frames_column = "sync_frames"
    Options = SyncFeatureOptions
    reads = ("key", "sync_frames", "duration_s", "true_duration_s")
    writes = ("sync_features", "sync_times", "sync_encoder")
    counters = ("clips_encoded", "tokens_encoded", "too_short_for_sync")

    def load_options(self) -> dict:
        return {}  # Synchformer weights are one file: no hub revision

    def process_batch(self, rows: list[dict]) -> list[dict | BaseException]:
        out: list[dict | BaseException] = []
        for row in rows:
            try:
                frames = self.frames(row)
            except PermanentError as exc:
                out.append(exc)
                continue
            if len(frames) < self.spec.window_frames:  # passed through, counted (not a failure)
                self.count("too_short_for_sync")
                out.append({})
                continue
            feats, times = self.encoder.encode(frames)  # [N·8, D], [N·8] s
            arr = feats.float().cpu().numpy().astype(FEATURE_DTYPE)
            self.count("clips_encoded")
            self.count("tokens_encoded", len(arr))
            out.append({"sync_features": npy_bytes(arr), "sync_encoder": self.identity,
                        "sync_times": [float(t) for t in np.asarray(times, dtype=np.float32)]})
        return out


class LatentStage(FeatureStage):
    """Audio latents (mean ‖ std) of the media stage's 44.1 kHz `audio_44k`."""

    name = "latent"
    kind = "latent"
    frames_column = "audio_44k"
    Options = LatentOptions
    reads = ("key", "audio_44k", "duration_s", "true_duration_s")
    writes = ("latent", "latent_encoder")
    counters = ("clips_encoded", "latent_frames")

    def load_options(self) -> dict:
        o = self.options
        opts = super().load_options()
        if o.vocoder_weights:
            opts["vocoder_weights"] = o.vocoder_weights
        return opts

    def process_batch(self, rows: list[dict]) -> list[dict | BaseException]:
        import torch

        waves: list[np.ndarray | BaseException] = []
        for row in rows:
            try:
                wave, rate = decode_audio_blob(row["audio_44k"])
            except Exception as exc:  # noqa: BLE001
                waves.append(PermanentError("bad_audio", f"audio_44k: {exc}"))
                continue
            if rate != RATE_MODEL:
                waves.append(PermanentError("bad_rate", f"audio_44k is at {rate} Hz, the encoder takes {RATE_MODEL}"))
                continue
            waves.append(np.asarray(wave, dtype=np.float32).reshape(-1))
        out: list[dict | BaseException] = []
        for w in waves:
            if isinstance(w, BaseException):
                out.append(w)
                continue
            # one clip at a time: clips differ in length and padding would change the tail frames
            mean, std = self.encoder.encode(torch.from_numpy(w)[None])  # [1, T, C] each
            lat = torch.cat([mean[0], std[0]], dim=-1).float().cpu().numpy().astype(FEATURE_DTYPE)  # [T, 2C]
            self.count("clips_encoded")
            self.count("latent_frames", len(lat))
            out.append({"latent": npy_bytes(lat), "latent_encoder": self.identity})
        return out
