"""Synthetic feature shards in the DESIGN §6 layout (written with webdataset.TarWriter)."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import webdataset as wds

LATENT_C = 40  # logmel-codec
CLIP_D = 64  # clip-tiny-random
SYNC_D = 64  # synchformer-tiny-random
LATENT_RATE = 44100 / 1024
ENCODERS = {"clip": ("clip-tiny-random", CLIP_D), "sync": ("synchformer-tiny-random", SYNC_D),
            "latent": ("logmel-codec", LATENT_C)}


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def make_sample(key: str, corpus: str = "toy", duration_s: float = 2.0, *, seed: int = 0, latent: bool = True,
                video: bool = True, voice: bool = True, caption: str | None = "a sound", flac: bytes | None = None,
                encoders: dict | None = None, latent_c: int = LATENT_C, clip_d: int = CLIP_D) -> dict:
    rng = np.random.default_rng(seed)
    enc = dict(ENCODERS, **(encoders or {}))
    T = int(np.ceil(duration_s * LATENT_RATE - 1e-6))
    meta = {"key": key, "corpus": corpus, "split": "train", "start_s": 1.5, "duration_s": duration_s,
            "true_duration_s": duration_s, "caption": caption, "kind": "audio", "features": {}}
    s = {"__key__": key}
    if latent:
        mean = rng.normal(2.0, 3.0, (T, latent_c))
        std = np.full((T, latent_c), 0.1)
        s["latent.npy"] = npy(np.concatenate([mean, std], 1).astype(np.float16))
        meta["features"]["latent"] = {"encoder": enc["latent"][0], "id": enc["latent"][0] + "@x", "dim": latent_c}
    if video:
        tc = int(duration_s * 8 + 1e-6)
        s["clip.npy"] = npy(rng.normal(size=(tc, clip_d)).astype(np.float16))
        meta["features"]["clip"] = {"encoder": enc["clip"][0], "id": enc["clip"][0] + "@x", "dim": clip_d}
        ts = 8 * ((int(duration_s * 25 + 1e-6) - 16) // 8 + 1)
        s["sync.npy"] = npy(rng.normal(size=(ts, SYNC_D)).astype(np.float16))
        meta["sync_times"] = [round(0.04 * (i + 0.5), 4) for i in range(ts)]
        meta["features"]["sync"] = {"encoder": enc["sync"][0], "id": enc["sync"][0] + "@x", "dim": SYNC_D}
    if voice:
        n = 5
        s["tokens.npy"] = npy(rng.integers(1, 50, n).astype(np.int32))
        meta["transcript"] = "hello there"
        meta["token_starts"] = [0.1 * i for i in range(n)]
        meta["token_ends"] = [0.1 * i + 0.05 for i in range(n)]
    if flac is not None:
        s["flac"] = flac
    s["json"] = json.dumps(meta, sort_keys=True).encode()
    return s


def write_run(run: Path, split: str, shards: list[list[dict]]) -> Path:
    """Write shards `<run>/shards/<split>/<split>-NNNNN.tar` and their index.json."""
    d = run / "shards" / split
    d.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, samples in enumerate(shards):
        path = d / f"{split}-{i:05d}.tar"
        with wds.TarWriter(str(path), encoder=False, mtime=0.0) as sink:
            for s in samples:
                sink.write(s)
        data = path.read_bytes()
        entries.append({"name": path.name, "nsamples": len(samples), "sha256": hashlib.sha256(data).hexdigest(),
                        "bytes": len(data)})
    (d / "index.json").write_text(json.dumps({"split": split, "nsamples": sum(e["nsamples"] for e in entries),
                                              "shards": entries}))
    return run


def simple_run(run: Path, sizes: list[int], corpus: str = "toy", split: str = "train", prefix: str = "k",
               **kw) -> Path:
    """Shards of `sizes` samples, keys f"{prefix}{shard}-{i}", durations cycling 1..4 s."""
    shards = [[make_sample(f"{prefix}{si}-{i:04d}", corpus, duration_s=1.0 + (i % 4), seed=si * 1000 + i, **kw)
               for i in range(n)] for si, n in enumerate(sizes)]
    return write_run(run, split, shards)
