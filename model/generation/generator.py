"""The generator: a trained checkpoint + the encoders it was trained with, loaded once.

    gen = Generator.load("ckpt.pt", encoder_weights={"clip": "clip.bin", "sync": "sync.pth"})
    results = gen.generate([GenerationRequest(video="a.mp4", caption="rain")], steps=25, cfg=4.5)
    results[0].wave        # float32 [samples] at 44.1 kHz

Per request batch: inputs are prepared on CPU (`request.prepare_inputs`), the encoders run once
per window, the conditions are built and prepared once (not per Euler step), the sampler
integrates all windows of all requests as one batch (CFG as one batch of 2), the latents are
de-normalised (`x · std + mean`, the trainer's normalisation undone) and decoded by the latent
codec. Windows of one request are joined in order.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from model.generation.errors import GenerationError
from model.generation.request import GenerationRequest, InputSettings, PreparedInputs, prepare_inputs
from model.generation.sampler import GuidedEuler, SamplerOptions

SAMPLE_RATE = 44100
ENCODER_KINDS = ("clip", "sync", "latent")
# Features are stored as float16 in the shards the model was trained on: round-trip them the same way.
FEATURE_STORAGE_DTYPE = torch.float16
# The shortest window the decoder emits: one latent frame (a shorter tail is padded with silence).
MIN_WINDOW_FRAMES = 1
MAX_ERROR_LINES = 3  # of a loader's error (a state-dict mismatch lists every tensor)


@dataclass
class GenerationResult:
    request: GenerationRequest
    wave: np.ndarray  # float32 [round(duration · 44100)]
    sample_rate: int
    duration_s: float
    metadata: dict = field(default_factory=dict)


def _seed_for(seed: int, window: int) -> int:
    """Noise seed of one window of a request: the request seed alone for window 0."""
    if window == 0:
        return int(seed)
    digest = hashlib.sha256(f"{int(seed)}:{window}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Generator:
    """A loaded model + encoders. `bundle` is what `load_for_inference` returns."""

    def __init__(self, bundle, encoders: dict | None = None, *, device="cpu", dtype: torch.dtype | None = None,
                 encoder_weights: dict | None = None, checkpoint: str | None = None, compile: bool = False,
                 cuda_graphs: bool = False, encoder_loader=None):
        self.bundle = bundle
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.model = bundle.model.to(self.device).eval()
        self.cfg = bundle.network_cfg
        self.recorded = {k: dict(v) for k, v in (bundle.encoders or {}).items()}
        self.encoder_weights = dict(encoder_weights or {})
        self._encoders = dict(encoders or {})
        self._encoder_loader = encoder_loader
        self.compile, self.cuda_graphs = compile, cuda_graphs
        missing = [k for k in ("latent",) if k not in self.recorded and k not in self._encoders]
        if missing:
            raise GenerationError("bad_checkpoint", f"checkpoint {checkpoint}: records no {missing[0]} encoder")
        self._check_fit()
        for kind, enc in self._encoders.items():  # encoders handed in must be the recorded ones too
            want = self.recorded.get(kind, {}).get("id")
            if want is not None and getattr(enc, "identity", None) != want:
                raise GenerationError("encoder_mismatch", f"{kind} encoder mismatch: the checkpoint was trained "
                                                          f"with {want}, the encoder given is {enc.identity}")
        stats = bundle.latent_stats
        self.latent_mean = torch.as_tensor(np.asarray(stats.mean), dtype=torch.float32).to(self.device)
        self.latent_std = torch.as_tensor(np.asarray(stats.std), dtype=torch.float32).to(self.device)
        if self.latent_mean.shape != (self.cfg.latent_dim,) or self.latent_std.shape != (self.cfg.latent_dim,):
            raise GenerationError("bad_checkpoint", f"checkpoint {checkpoint}: latent stats of shape "
                                                    f"{tuple(self.latent_mean.shape)}, the network has "
                                                    f"latent_dim={self.cfg.latent_dim}")

    # ---- loading --------------------------------------------------------------------------

    @classmethod
    def load(cls, checkpoint: str | Path, *, encoder_weights: dict | None = None, device="cpu",
             dtype: torch.dtype | None = None, use_ema: bool = True, expect_network: str | None = None,
             compile: bool = False, cuda_graphs: bool = False) -> Generator:
        """Load a trainer checkpoint (EMA weights by default) for generation."""
        from model.training.checkpoint import load_for_inference

        path = Path(checkpoint)
        if not path.exists():
            raise GenerationError("missing_file", f"{path}: checkpoint not found")
        try:
            bundle = load_for_inference(str(path), use_ema=use_ema, device="cpu")
        except GenerationError:
            raise
        except (RuntimeError, ValueError, KeyError, OSError) as exc:
            lines = str(exc).strip().splitlines()
            detail = " ".join(x.strip() for x in lines[:MAX_ERROR_LINES])
            more = f" (+{len(lines) - MAX_ERROR_LINES} more lines)" if len(lines) > MAX_ERROR_LINES else ""
            raise GenerationError("bad_checkpoint", f"{path}: cannot load for inference: {detail}{more}") from None
        if expect_network is not None and bundle.network_name != expect_network:
            raise GenerationError("network_mismatch", f"{path}: holds network config {bundle.network_name!r}, "
                                                      f"expected {expect_network!r}")
        return cls(bundle, device=device, dtype=dtype, encoder_weights=encoder_weights, checkpoint=str(path),
                   compile=compile, cuda_graphs=cuda_graphs)

    def _check_fit(self) -> None:
        from model.encoders.registry import check_network_fits

        names = {k: v["name"] for k, v in self.recorded.items() if k in ENCODER_KINDS}
        try:
            check_network_fits(self.cfg, names, what=f"checkpoint {self.checkpoint} network")
        except (ValueError, KeyError) as exc:
            raise GenerationError("network_mismatch", str(exc)) from None

    def encoder(self, kind: str):
        """The encoder of `kind` the checkpoint records, loaded once (its identity checked)."""
        if kind in self._encoders:
            return self._encoders[kind]
        from model.encoders.registry import load_encoder

        if kind not in self.recorded:
            raise GenerationError("bad_checkpoint", f"checkpoint {self.checkpoint} records no {kind} encoder "
                                                    "(was it trained without video?)")
        name, want = self.recorded[kind]["name"], self.recorded[kind].get("id")
        weights = self.encoder_weights.get(kind)
        flag = f"--{kind}-weights"
        loader = self._encoder_loader or load_encoder
        try:  # weights None: the encoder's default (its public release, or built-in random weights)
            enc = loader(name, weights, device=self.device, dtype=None)
        except Exception as exc:  # noqa: BLE001 - every loader failure is reported the same way
            if weights is None:
                raise GenerationError("missing_weights", f"checkpoint {self.checkpoint} was trained with the {kind} "
                                                         f"encoder {name!r} ({want}); its default weights did not "
                                                         f"load ({type(exc).__name__}: {exc}); pass its weights "
                                                         f"({flag} PATH)") from None
            raise GenerationError("bad_weights", f"{kind} encoder {name!r} from {weights}: {exc}") from None
        if want is not None and enc.identity != want:
            given = weights if weights is not None else f"no {flag} given: the encoder's default"
            raise GenerationError("encoder_mismatch", f"{kind} encoder mismatch: the checkpoint was trained with "
                                                      f"{want}, the weights given are {enc.identity} ({given})")
        self._encoders[kind] = enc
        return enc

    def input_settings(self, with_video: bool) -> InputSettings:
        kw = {}
        if with_video:
            clip, sync = self.encoder("clip").spec, self.encoder("sync").spec
            kw = {"clip_size": clip.frame_size, "clip_fps": clip.frame_fps, "sync_size": sync.frame_size,
                  "sync_fps": sync.frame_fps}
        return InputSettings(max_duration_s=self.cfg.max_duration_s, latent_rate=self.cfg.latent_rate,
                             min_window_s=MIN_WINDOW_FRAMES / self.cfg.latent_rate, **kw)

    def check_vocabulary(self) -> None:
        """The network's lyrics encoder must cover the VoiceBPE vocabulary and share its padding id."""
        from model.generation.request import _tokenizer
        from pipeline.text.voicebpe import VOCAB_PATH

        tok = _tokenizer(str(VOCAB_PATH))
        lyr = self.cfg.lyrics
        if tok.vocab_size > lyr.vocab_size or tok.pad_id != lyr.pad_id:
            raise GenerationError("network_mismatch", f"checkpoint {self.checkpoint}: the lyrics encoder has "
                                                      f"vocab_size={lyr.vocab_size}, pad_id={lyr.pad_id}; the VoiceBPE "
                                                      f"front end {tok.version} has {tok.vocab_size} ids, pad id "
                                                      f"{tok.pad_id}")

    def prepare(self, request: GenerationRequest) -> PreparedInputs:
        """Validate and decode one request (CPU work; raises GenerationError on bad input)."""
        if request.transcript or request.lyrics:
            self.check_vocabulary()
        return prepare_inputs(request, self.input_settings(bool(request.video)))

    # ---- conditions -----------------------------------------------------------------------

    def _encode_video(self, windows) -> tuple[list, list, list]:
        clips, syncs, sync_times = [], [], []
        clip_enc = sync_enc = None
        for w in windows:
            if w.clip_frames is None:
                clips.append(None), syncs.append(None), sync_times.append(None)
                continue
            clip_enc = clip_enc or self.encoder("clip")
            sync_enc = sync_enc or self.encoder("sync")
            with torch.no_grad():
                c = torch.as_tensor(clip_enc.encode(w.clip_frames)).float()
                try:
                    s, st = sync_enc.encode(w.sync_frames)
                    s, st = torch.as_tensor(s).float(), torch.as_tensor(np.asarray(st), dtype=torch.float32)
                except ValueError:  # fewer frames than one Synchformer window: no sync features
                    s = st = None
            clips.append(c.to(FEATURE_STORAGE_DTYPE).float())
            syncs.append(None if s is None else s.to(FEATURE_STORAGE_DTYPE).float())
            sync_times.append(st)
        return clips, syncs, sync_times

    @staticmethod
    def _pad(seqs: list, dim: int) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
        if all(s is None for s in seqs):
            return None, None
        width = max(1, max(len(s) for s in seqs if s is not None))
        feats = torch.zeros(len(seqs), width, dim)
        mask = torch.zeros(len(seqs), width, dtype=torch.bool)
        for i, s in enumerate(seqs):
            if s is not None and len(s):
                feats[i, : len(s)] = s
                mask[i, : len(s)] = True
        return feats, mask

    @staticmethod
    def _pad_times(seqs: list, width: int) -> torch.Tensor:
        out = torch.zeros(len(seqs), width)
        for i, s in enumerate(seqs):
            if s is not None and len(s):
                out[i, : len(s)] = torch.as_tensor(np.asarray(s), dtype=torch.float32)
        return out

    def conditions(self, windows) -> tuple:
        """Conditions for a batch of windows (one sample each), plus timings."""
        from model.config import frames_for_duration
        from model.inputs import Conditions, latent_mask_for_durations
        from model.lyrics_encoder import pad_voice_ids

        cfg = self.cfg
        timings = {}
        t0 = time.perf_counter()
        clips, syncs, sync_times = self._encode_video(windows)
        timings["encoders_s"] = time.perf_counter() - t0

        durations = [w.duration_s for w in windows]
        latent_mask = latent_mask_for_durations(durations, cfg.latent_rate, cfg.max_duration_s)
        frames = [frames_for_duration(d, cfg.latent_rate) for d in durations]
        clip, clip_mask = self._pad(clips, cfg.clip_dim)
        sync, sync_mask = self._pad(syncs, cfg.sync_dim)
        has_video = torch.tensor([c is not None for c in clips])
        kw = {}
        if clip is not None:
            kw.update(clip=clip, clip_mask=clip_mask, has_video=has_video)
            if sync is not None:
                kw.update(sync=sync, sync_mask=sync_mask)
        voice_seqs = [None if w.voice_ids is None else torch.as_tensor(w.voice_ids.astype(np.int64))
                      for w in windows]
        if any(v is not None for v in voice_seqs):
            ids, vmask = pad_voice_ids(voice_seqs, frames, cfg.lyrics.pad_id)
            kw.update(voice_ids=ids, voice_mask=vmask)
        names = {f.name for f in dataclasses.fields(Conditions)}
        if "sync_times" in names and kw.get("sync") is not None:
            kw["sync_times"] = self._pad_times(sync_times, kw["sync"].shape[1])
        if "voice_times" in names and kw.get("voice_ids") is not None and any(
                w.voice_starts is not None for w in windows):
            # token start times where the text is timed (LRC); NaN at the tokens of an untimed row:
            # the network keeps the paper's layout (token i at latent frame i) for that row
            starts = [w.voice_starts if w.voice_starts is not None or w.voice_ids is None
                      else np.full(len(w.voice_ids), np.nan, np.float32) for w in windows]
            kw["voice_times"] = self._pad_times(starts, kw["voice_ids"].shape[1])
        cond = Conditions(
            latent_mask=latent_mask,
            start_s=torch.tensor([w.start_s for w in windows], dtype=torch.float32),
            duration_s=torch.tensor(durations, dtype=torch.float32),
            **kw,
        ).to(self.device)
        t0 = time.perf_counter()
        captions = [w.caption for w in windows]
        if any(c is not None for c in captions):
            with torch.no_grad():
                cond = self.model.with_captions(cond, captions)
        timings["text_encoder_s"] = time.perf_counter() - t0
        return cond, frames, timings

    # ---- decoding -------------------------------------------------------------------------

    def decode(self, latents: torch.Tensor, frames: list[int]) -> list[np.ndarray]:
        """Normalised latents [B, T, C] → waveforms (one per sample, its real frames only)."""
        codec = self.encoder("latent")
        x = latents.float() * self.latent_std + self.latent_mean
        waves = []
        with torch.no_grad():
            for i, n in enumerate(frames):
                w = codec.decode(x[i: i + 1, :n])
                waves.append(torch.as_tensor(w).float().reshape(-1).cpu().numpy())
        return waves

    # ---- generation -----------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest | PreparedInputs], *, steps: int = 25,
                 cfg: float | None = 4.5) -> list[GenerationResult]:
        """Generate every request; all their windows run as one batch."""
        prepared = [r if isinstance(r, PreparedInputs) else self.prepare(r) for r in requests]
        windows = [(k, w) for k, p in enumerate(prepared) for w in p.windows]
        flat = [w for _, w in windows]
        timings: dict = {}
        t_all = time.perf_counter()
        cond, frames, t_cond = self.conditions(flat)
        timings.update(t_cond)

        sampler = self._sampler(steps, cfg)
        gens = [torch.Generator().manual_seed(_seed_for(prepared[k].request.seed, w.index)) for k, w in windows]
        x0 = sampler.initial_noise(cond.latent_mask.cpu(), self.cfg.latent_dim, gens).to(self.device)
        _sync(self.device)
        t0 = time.perf_counter()
        latents = sampler.sample(cond, x0)
        _sync(self.device)
        timings["sampling_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        waves = self.decode(latents, frames)
        _sync(self.device)
        timings["decoder_s"] = time.perf_counter() - t0
        timings["total_s"] = time.perf_counter() - t_all

        results = []
        for k, p in enumerate(prepared):
            parts = [waves[i] for i, (kk, _) in enumerate(windows) if kk == k]
            pieces = []
            for w, wave in zip(p.windows, parts):
                n = round(w.duration_s * SAMPLE_RATE)
                pieces.append(np.pad(wave[:n], (0, max(0, n - len(wave[:n])))))
            total = round(p.duration_s * SAMPLE_RATE)
            wave = np.concatenate(pieces).astype(np.float32)[:total]
            wave = np.pad(wave, (0, total - len(wave)))  # a tail shorter than one latent frame: silence
            results.append(GenerationResult(p.request, wave, SAMPLE_RATE, p.duration_s,
                                            self._metadata(p, steps, cfg, timings, len(flat))))
        return results

    def _sampler(self, steps: int, cfg: float | None) -> GuidedEuler:
        key = (steps, cfg)
        if getattr(self, "_sampler_key", None) != key:
            opts = SamplerOptions(steps=steps, cfg_scale=cfg, dtype=self.dtype, compile=self.compile,
                                  cuda_graphs=self.cuda_graphs)
            self._sampler_cache, self._sampler_key = GuidedEuler(self.model, opts), key
        return self._sampler_cache

    def _metadata(self, p: PreparedInputs, steps: int, cfg: float | None, timings: dict, batch: int) -> dict:
        req = p.request
        voice = p.voice
        return {
            "inputs": {
                "video": None if not req.video else str(req.video),
                "caption": req.caption, "transcript": req.transcript,
                "lyrics": None if req.lyrics is None else str(req.lyrics),
                "language": req.language, "duration_requested_s": req.duration,
                "modalities": req.modalities(),
            },
            "voice": None if voice is None else {
                "source": voice.source, "tokens": len(voice.ids), "timed_by": voice.timed_by,
                "tokenizer": voice.tokenizer, "unknown_chars": voice.unknown_chars, "normalized": voice.normalized},
            "video": p.video_info,
            "duration_s": p.duration_s,
            "sample_rate": SAMPLE_RATE,
            "windows": [{"start_s": w.start_s, "duration_s": w.duration_s, "seed": _seed_for(req.seed, w.index)}
                        for w in p.windows],
            "checkpoint": {"path": self.checkpoint, "network": getattr(self.bundle, "network_name", None),
                           "step": getattr(self.bundle, "step", None), "encoders": self.recorded},
            "seed": req.seed, "steps": steps, "cfg": cfg,
            "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
            "notes": list(p.notes),
            "timings": {"inputs_s": round(p.seconds, 4), **{k: round(v, 4) for k, v in timings.items()},
                        "batch_windows": batch},
        }
