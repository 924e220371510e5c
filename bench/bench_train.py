"""Training benchmark. Loader half: the shard reader's throughput against a raw read of the same shards.

    .venv/bin/python bench/bench_train.py [--shards 160] [--per-shard 16] [--repeats 3] [--workers 0]

`bench_loader` writes (once; reused while the parameters match) synthetic feature shards of
10 s clips with the paper's feature widths into bench/out/train_shards/ (latent [431, 2·40],
CLIP [80, 1280], sync [240, 768] float16, ~120 VoiceBPE ids, the clip record as json), then times,
best of `repeats` interleaved runs with a warm page cache:
  raw      plain sequential reads of the tar files (1 MiB chunks)       — the goal's baseline
  tarfile  the tarfile module reading every member's bytes in order
  webdataset  webdataset's tar reader, samples as undecoded bytes
  loader   ShardDataset decoding every member (json parsed, .npy arrays), one pass, the consumer
           touching every 4 KiB page of every array (the reader maps the files: an array's bytes
           are read when used, so an untouched array would cost nothing; that figure is printed too)
and prints MB/s of the same file bytes and the ratio loader / raw (goal ≥ 0.9). It also times
TrainingData (posterior sample, normalisation, bucketing, collation) in clips/s.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np
import webdataset as wds

from model.encoders.registry import (
    AUDIO_SAMPLE_RATE,
    LATENT_HOP,
    PAPER_ENCODERS,
    feature_spec,
    sync_token_count,
)

OUT = Path(__file__).resolve().parent / "out"
CLIP_SECONDS = 10.0
VOICE_TOKENS = 120  # VoiceBPE ids of a 10 s transcript, about
RAW_CHUNK = 1 << 20
PAGE = 4096
GOAL_RATIO = 0.9


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def make_shards(root: Path, n_shards: int, per_shard: int, seed: int = 0) -> Path:
    """A run folder with `n_shards` train shards of `per_shard` 10 s clips (reused if present)."""
    params = {"n_shards": n_shards, "per_shard": per_shard, "seed": seed, "version": 1}
    marker = root / "bench_params.json"
    if marker.exists() and json.loads(marker.read_text()) == params:
        return root
    rng = np.random.default_rng(seed)
    lat_c = feature_spec(PAPER_ENCODERS["latent"]).dim
    clip_d = feature_spec(PAPER_ENCODERS["clip"]).dim
    sync_spec = feature_spec(PAPER_ENCODERS["sync"])
    T = int(np.ceil(CLIP_SECONDS * AUDIO_SAMPLE_RATE / LATENT_HOP))
    tc, ts = int(CLIP_SECONDS * 8), sync_token_count(CLIP_SECONDS, sync_spec)
    pool = {  # a few random arrays reused: the bytes' values do not matter to a reader
        "latent.npy": [_npy(np.concatenate([rng.standard_normal((T, lat_c)), np.abs(rng.standard_normal((T, lat_c)))],
                                           1).astype(np.float16)) for _ in range(4)],
        "clip.npy": [_npy(rng.standard_normal((tc, clip_d)).astype(np.float16)) for _ in range(4)],
        "sync.npy": [_npy(rng.standard_normal((ts, sync_spec.dim)).astype(np.float16)) for _ in range(4)],
        "tokens.npy": [_npy(rng.integers(1, 1000, VOICE_TOKENS).astype(np.int32)) for _ in range(4)],
    }
    d = root / "shards" / "train"
    d.mkdir(parents=True, exist_ok=True)
    entries = []
    for s in range(n_shards):
        path = d / f"train-{s:05d}.tar"
        with wds.TarWriter(str(path), encoder=False, mtime=0.0) as sink:
            for i in range(per_shard):
                key = f"bench-src{s:05d}x{i:04d}-{i * 10000:09d}"
                meta = {"key": key, "corpus": "bench", "split": "train", "start_s": i * 10.0,
                        "duration_s": CLIP_SECONDS, "true_duration_s": CLIP_SECONDS, "kind": "speech",
                        "caption": "a person speaks in a quiet room", "transcript": "word " * 30,
                        "token_starts": [round(k * CLIP_SECONDS / VOICE_TOKENS, 3) for k in range(VOICE_TOKENS)],
                        "token_ends": [round((k + 1) * CLIP_SECONDS / VOICE_TOKENS, 3) for k in range(VOICE_TOKENS)],
                        "sync_times": [round(0.04 * (k + 0.5), 3) for k in range(ts)],
                        "features": {k: {"encoder": v, "id": f"{v}@bench", "dim": feature_spec(v).dim}
                                     for k, v in PAPER_ENCODERS.items()}}
                sample = {"__key__": key, "json": json.dumps(meta, sort_keys=True).encode()}
                for member, arrays in pool.items():
                    sample[member] = arrays[(s + i) % len(arrays)]
                sink.write(sample)
        data = path.read_bytes()
        entries.append({"name": path.name, "nsamples": per_shard, "sha256": hashlib.sha256(data).hexdigest(),
                        "bytes": len(data)})
    (d / "index.json").write_text(json.dumps({"split": "train", "nsamples": n_shards * per_shard,
                                              "shards": entries}))
    marker.write_text(json.dumps(params))
    return root


def raw_read(urls: list[str]) -> int:
    buf = bytearray(RAW_CHUNK)
    total = 0
    for url in urls:
        with open(url, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return total


def tarfile_read(urls: list[str]) -> int:
    total = 0
    for url in urls:
        with tarfile.open(url, "r|") as tf:
            for m in tf:
                if m.isfile():
                    total += len(tf.extractfile(m).read())
    return total


def webdataset_read(urls: list[str]) -> int:
    """webdataset's own tar reader, samples left undecoded (bytes)."""
    total = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, nodesplitter=None, workersplitter=None):
        total += sum(len(v) for k, v in sample.items() if not k.startswith("__"))
    return total


def loader_read(run: Path, num_workers: int, touch: bool = True) -> int:
    from torch.utils.data import DataLoader

    from pipeline.shard_reader import ShardDataset

    ds = ShardDataset(str(run), members=("json", "latent.npy", "clip.npy", "sync.npy", "tokens.npy"),
                      shuffle_shards=False)
    it = ds if num_workers == 0 else DataLoader(ds, batch_size=None, num_workers=num_workers)
    n = 0
    for s in it:  # touch every page of every array: the bytes really reach the process, as in raw_read
        n += sum(_touch(v) for v in s.values() if touch and isinstance(v, np.ndarray)) >= 0
    return n


def _touch(a: np.ndarray) -> int:
    return int(a.reshape(-1).view(np.uint8)[::PAGE].sum())


def _best(fn, repeats: int) -> float:
    return min(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_loader(n_shards: int = 160, per_shard: int = 16, repeats: int = 3, num_workers: int = 0,
                 root: Path | None = None) -> dict:
    from pipeline.shard_reader import shard_urls

    run = make_shards(root or OUT / "train_shards", n_shards, per_shard)
    urls = shard_urls(run, "train")
    nbytes = sum(Path(u).stat().st_size for u in urls)
    raw_read(urls)  # warm the page cache
    times = {"raw": [], "tarfile": [], "webdataset": [], "loader": [], "loader_untouched": []}
    for _ in range(repeats):  # interleaved, so a noisy neighbour hurts all three alike
        times["raw"].append(_timed(lambda: raw_read(urls)))
        times["tarfile"].append(_timed(lambda: tarfile_read(urls)))
        times["webdataset"].append(_timed(lambda: webdataset_read(urls)))
        times["loader"].append(_timed(lambda: loader_read(run, num_workers)))
        times["loader_untouched"].append(_timed(lambda: loader_read(run, num_workers, touch=False)))
    mbs = {k: nbytes / min(v) / 1e6 for k, v in times.items()}
    result = {"shards": n_shards, "clips": n_shards * per_shard, "MB": nbytes / 1e6, "num_workers": num_workers,
              **{f"{k}_MBps": round(v, 1) for k, v in mbs.items()},
              "loader_over_raw": round(mbs["loader"] / mbs["raw"], 3),
              "loader_over_tarfile": round(mbs["loader"] / mbs["tarfile"], 3),
              "loader_over_webdataset": round(mbs["loader"] / mbs["webdataset"], 3)}
    for w in sorted({0, num_workers}):
        result[f"training_data_clips_per_s_workers{w}"] = round(training_data_rate(run, w), 1)
    return result


def training_data_rate(run: Path, num_workers: int = 0) -> float:
    """Clips/s through TrainingData (one pass): posterior sample, normalising, bucketing, collating."""
    import torch

    from model.training.data import LatentStats, TrainingData

    C = feature_spec(PAPER_ENCODERS["latent"]).dim
    data = TrainingData(str(run), batch_frames=4096, max_batch=16, latent_rate=AUDIO_SAMPLE_RATE / LATENT_HOP,
                        latent_stats=LatentStats(torch.zeros(C), torch.ones(C)), shuffle_buffer=64, seed=0,
                        resampled=False, expected_features=dict(PAPER_ENCODERS), num_workers=num_workers)
    t = time.perf_counter()
    n = sum(b.batch_size for b in data)
    return n / (time.perf_counter() - t)


# ---- trainer half -----------------------------------------------------------------------------

# Dense bf16 peak of the GPUs the MFU figure is quoted against (FLOP/s).
PEAK_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}
TRAINER_T5 = {"cpu": {"width": 128, "layers": 2, "heads": 4}, "cuda": {"width": 768, "layers": 12, "heads": 12}}


def network_train_flops_per_clip(network: str, encoders: dict, text_dim: int, caption_tokens: int = 32) -> float:
    """FLOPs of one training step per 10 s clip: 3 × the MMDiT forward (counted on the meta device)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from model.config import NAMED_CONFIGS, config_for_encoders
    from model.mmdit import MMDiT
    from model.synthetic import synthetic_conditions

    cfg = config_for_encoders(network, encoders, text_dim=text_dim,
                              lyrics={**NAMED_CONFIGS[network].lyrics.model_dump(), "vocab_size": 4096})
    with torch.device("meta"):
        model = MMDiT(cfg)
    cond = synthetic_conditions(cfg, [CLIP_SECONDS], generator=torch.Generator().manual_seed(0),
                                caption_tokens=caption_tokens).to("meta")
    x = torch.zeros(1, cond.latent_mask.shape[1], cfg.latent_dim, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, torch.zeros(1, device="meta"), cond)
    return 3.0 * counter.get_total_flops()


def bench_trainer(network: str = "small", device: str = "cpu", steps: int = 30, warmup: int = 5,
                  max_batch: int = 4, num_workers: int = 1, n_shards: int = 16, per_shard: int = 16) -> dict:
    """The real trainer (jobs.train.train) on the bench shards (10 s clips, the paper's encoders):
    samples/s, latent tokens/s, the data-wait fraction (time blocked on the loader / step time) over
    the steps after `warmup`, and on CUDA the MFU of the MMDiT (3 × forward FLOPs per clip)."""
    import shutil
    import tempfile

    import torch

    from jobs.train import train
    from model.training.config import parse_train_config

    run = make_shards(OUT / "train_shards_trainer", n_shards, per_shard)
    out = Path(tempfile.mkdtemp(prefix="bench_trainer_"))
    t5 = TRAINER_T5["cuda" if device.startswith("cuda") else "cpu"]
    frames = int(np.ceil(CLIP_SECONDS * AUDIO_SAMPLE_RATE / LATENT_HOP))
    cfg = parse_train_config({
        "data": {"sources": [{"run": str(run)}], "val_split": None, "shuffle_buffer": 32, "num_workers": num_workers,
                 "latent_stats_samples": 64},
        "network": network, "encoders": dict(PAPER_ENCODERS), "network_overrides": {"lyrics": {"vocab_size": 4096}},
        "random_text_encoder": {**t5, "dropout": 0.1},
        "optim": {"lr": 1e-4}, "batch": {"batch_frames": max_batch * frames, "max_batch": max_batch,
                                         "effective_batch": max_batch},
        "steps": steps, "checkpoint_every": steps + 1, "save_final": False, "out": str(out),
        "tensorboard": False, "progress": False, "device": "cuda" if device.startswith("cuda") else "cpu",
    }, "bench")
    try:
        train(cfg)
        recs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()][warmup:]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    secs = sum(r["step_s"] for r in recs)
    result = {"network": network, "device": device, "steps_timed": len(recs), "max_batch": max_batch,
              "num_workers": num_workers,
              "samples_per_s": round(sum(r["samples"] for r in recs) / secs, 3),
              "latent_tokens_per_s": round(sum(r["frames"] for r in recs) / secs, 1),
              "data_wait_fraction": round(sum(r["data_wait_s"] for r in recs) / secs, 4),
              "loss_first_last": [recs[0]["loss"], recs[-1]["loss"]]}
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
        flops = network_train_flops_per_clip(network, dict(PAPER_ENCODERS), text_dim=t5["width"])
        achieved = flops * result["samples_per_s"]
        result.update(gpu=name, train_tflops_per_clip=round(flops / 1e12, 3), achieved_tflops=round(achieved / 1e12, 1),
                      mfu=round(achieved / peak, 4) if peak else None,
                      gpu_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 1))
    return result


def print_trainer(r: dict) -> None:
    print(f"trainer: network {r['network']} on {r['device']}, batch {r['max_batch']}, loader workers "
          f"{r['num_workers']}, {r['steps_timed']} steps timed")
    print(f"  samples/s             {r['samples_per_s']:8.2f}")
    print(f"  latent tokens/s       {r['latent_tokens_per_s']:8.1f}")
    ok = "ok" if r["data_wait_fraction"] < 0.05 else "ABOVE GOAL"
    print(f"  data-wait fraction    {r['data_wait_fraction']:8.2%}  (goal < 5%: {ok})")
    if r.get("mfu") is not None:
        ok = "ok" if r["mfu"] >= 0.4 else "BELOW GOAL"
        print(f"  MFU                   {r['mfu']:8.1%}  ({r['achieved_tflops']} TFLOP/s on {r['gpu']}; goal >= 40%: {ok})")
    print(json.dumps(r))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shards", type=int, default=160)
    ap.add_argument("--per-shard", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for the loader run")
    ap.add_argument("--trainer-only", action="store_true", help="skip the loader half")
    ap.add_argument("--device", default="cpu", help="trainer half: cpu (network small) or cuda (network paper)")
    ap.add_argument("--network", default=None, help="trainer half: tiny/small/paper (default: small on CPU, "
                                                     "paper on CUDA)")
    ap.add_argument("--steps", type=int, default=30, help="trainer half: optimiser steps (5 more as warm-up)")
    ap.add_argument("--batch", type=int, default=None, help="trainer half: clips per step (default 4 CPU, 16 CUDA)")
    ap.add_argument("--train-workers", type=int, default=1, help="trainer half: loader worker processes")
    args = ap.parse_args()
    import torch

    cuda = args.device.startswith("cuda")
    if not cuda:
        torch.set_num_threads(1)
    if not args.trainer_only:
        _print_loader(bench_loader(args.shards, args.per_shard, args.repeats, args.workers))
    network = args.network or ("paper" if cuda else "small")
    print_trainer(bench_trainer(network, args.device, steps=args.steps + 5, warmup=5,
                                max_batch=args.batch or (16 if cuda else 4), num_workers=args.train_workers))


def _print_loader(r: dict) -> None:
    print(f"loader: {r['shards']} shards, {r['clips']} clips of {CLIP_SECONDS:g} s, {r['MB']:.0f} MB")
    print(f"  raw sequential read   {r['raw_MBps']:8.1f} MB/s")
    print(f"  tarfile member read   {r['tarfile_MBps']:8.1f} MB/s")
    print(f"  webdataset, undecoded {r['webdataset_MBps']:8.1f} MB/s")
    print(f"  ShardDataset          {r['loader_MBps']:8.1f} MB/s  (workers {r['num_workers']})")
    print(f"  ShardDataset, arrays not touched {r['loader_untouched_MBps']:8.1f} MB/s  (the reader's own cost)")
    ok = "ok" if r["loader_over_raw"] >= GOAL_RATIO else "BELOW GOAL"
    print(f"  loader / raw = {r['loader_over_raw']:.3f} (goal >= {GOAL_RATIO}: {ok}); "
          f"loader / tarfile = {r['loader_over_tarfile']:.3f}; loader / webdataset = {r['loader_over_webdataset']:.3f}")
    for k, v in r.items():
        if k.startswith("training_data_clips_per_s_workers"):
            print(f"  TrainingData          {v:8.1f} clips/s  (workers {k.rsplit('workers', 1)[1]})")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
